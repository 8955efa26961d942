//! Functions whose value is fixed for the session: `current_timezone()`, `current_user`,
//! `current_catalog`, `current_schema`. The simplifier turns each into its value while the
//! query is planned.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// A function of no arguments answering one value of the session.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Constant {
    name: &'static str,
    value: String,
    signature: Signature,
}

impl Constant {
    pub fn text(name: &'static str, value: String) -> Self {
        Constant {
            name,
            value,
            signature: Signature::exact(Vec::new(), Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn simplify(&self, _: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(lit(self.value.clone())))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.value.clone(),
        ))))
    }
}
