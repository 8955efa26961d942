//! Trino's `try(expression)`: the expression's value, or NULL for a row where evaluating it
//! fails (division by zero, a bad cast, an overflow, a bad argument). The planner rewrites
//! `try(e)` into a higher-order call whose lambda is `e`, so that `e` is evaluated by the
//! function itself (a batch at a time, then row by row once the batch fails) instead of
//! before it.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result};
use datafusion::logical_expr::expr::{HigherOrderFunction, Lambda};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, HigherOrderFunctionArgs, HigherOrderReturnFieldArgs, HigherOrderSignature,
    HigherOrderUDF, HigherOrderUDFImpl, LambdaArgument, LambdaParametersProgress,
    ScalarFunctionArgs, ScalarUDFImpl, Signature, ValueOrLambda, Volatility,
};

/// The name of the higher-order function `try` becomes.
const EVALUATE: &str = "try_evaluate";

/// `try(e)` as the client writes it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Try {
    signature: Signature,
}

impl Try {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The function `try(e)` is rewritten to; stage workers know it too.
pub fn evaluate() -> HigherOrderUDF {
    HigherOrderUDF::new_from_impl(TryEvaluate::new())
}

impl ScalarUDFImpl for Try {
    fn name(&self) -> &str {
        "try"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [value] => Ok(value.clone()),
            _ => plan_err!("try takes one expression"),
        }
    }

    /// Reached only where the planner did not rewrite the call: the argument was evaluated
    /// without an error, so it is the value.
    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.pop() {
            Some(value) if args.args.is_empty() => Ok(value),
            _ => exec_err!("try takes one expression"),
        }
    }

    fn simplify(&self, mut args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let Some(expression) = args.pop().filter(|_| args.is_empty()) else {
            return plan_err!("try takes one expression");
        };
        // The lambda's one parameter only carries the row count; the body never reads it.
        let body = Expr::Lambda(Lambda::new(vec!["try_row".into()], expression));
        Ok(ExprSimplifyResult::Simplified(Expr::HigherOrderFunction(
            HigherOrderFunction::new(Arc::new(evaluate()), vec![body]),
        )))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TryEvaluate {
    signature: HigherOrderSignature,
}

impl TryEvaluate {
    fn new() -> Self {
        Self {
            signature: HigherOrderSignature::exact(
                vec![ValueOrLambda::Lambda(())],
                Volatility::Immutable,
            ),
        }
    }
}

/// Whether `try` answers NULL for this error: errors of the data, not of the system (a
/// memory limit or a lost connection still fails the query).
fn caught(error: &DataFusionError) -> bool {
    match error {
        DataFusionError::ResourcesExhausted(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::External(_) => false,
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => caught(inner),
        DataFusionError::Shared(inner) => caught(inner),
        _ => true,
    }
}

/// The body of `lambda` for `rows` rows, with the captured columns `pick` chooses.
fn run(
    lambda: &LambdaArgument,
    rows: usize,
    pick: impl FnOnce(&[ArrayRef]) -> Vec<ArrayRef>,
) -> Result<ArrayRef> {
    let row_count = move || Ok(new_null_array(&DataType::Null, rows));
    lambda
        .evaluate(&[&row_count], |captures| Ok(pick(captures)))?
        .into_array(rows)
}

impl HigherOrderUDFImpl for TryEvaluate {
    fn name(&self) -> &str {
        EVALUATE
    }

    fn signature(&self) -> &HigherOrderSignature {
        &self.signature
    }

    fn coerce_value_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types.to_vec())
    }

    fn lambda_parameters(
        &self,
        _step: usize,
        _fields: &[ValueOrLambda<FieldRef, Option<FieldRef>>],
    ) -> Result<LambdaParametersProgress> {
        Ok(LambdaParametersProgress::Complete(vec![vec![Arc::new(
            Field::new("try_row", DataType::Null, true),
        )]]))
    }

    fn return_field_from_args(&self, args: HigherOrderReturnFieldArgs) -> Result<FieldRef> {
        let [ValueOrLambda::Lambda(body)] = args.arg_fields else {
            return plan_err!("try takes one expression");
        };
        Ok(Arc::new(Field::new("try", body.data_type().clone(), true)))
    }

    fn short_circuits(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: HigherOrderFunctionArgs) -> Result<ColumnarValue> {
        let [ValueOrLambda::Lambda(body)] = args.args.as_slice() else {
            return exec_err!("try takes one expression");
        };
        let rows = args.number_rows;
        let data_type = args.return_type().clone();
        let error = match run(body, rows, |captures| captures.to_vec()) {
            Ok(values) => return Ok(ColumnarValue::Array(cast(&values, &data_type)?)),
            Err(e) => e,
        };
        if !caught(&error) {
            return Err(error);
        }
        // Some row failed: each row on its own, NULL where it fails.
        let mut parts = Vec::with_capacity(rows);
        for row in 0..rows {
            let one = |captures: &[ArrayRef]| captures.iter().map(|c| c.slice(row, 1)).collect();
            parts.push(match run(body, 1, one) {
                Ok(value) => cast(&value, &data_type)?,
                Err(e) if caught(&e) => new_null_array(&data_type, 1),
                Err(e) => return Err(e),
            });
        }
        let parts: Vec<&dyn datafusion::arrow::array::Array> =
            parts.iter().map(|p| p.as_ref()).collect();
        if parts.is_empty() {
            return Ok(ColumnarValue::Array(new_null_array(&data_type, 0)));
        }
        Ok(ColumnarValue::Array(concat(&parts)?))
    }
}
