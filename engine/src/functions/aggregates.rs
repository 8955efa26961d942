//! Trino's aggregates that are another DataFusion aggregate with Trino's meaning, rewritten by
//! the simplifier while the query is planned: `count_if(c)` is `count(*)` of the rows where `c`
//! holds, `max_by(x, y)` / `min_by(x, y)` the `x` of the row with the largest / smallest `y`
//! (rows where `y` is NULL do not count).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification};
use datafusion::logical_expr::{
    lit, Accumulator, AggregateUDFImpl, Expr, Signature, TypeSignature, Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CountIf,
    MaxBy,
    MinBy,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AggregateRewrite {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl AggregateRewrite {
    pub fn new(name: &'static str, kind: Kind) -> Self {
        let arity = if kind == Kind::CountIf { 1 } else { 2 };
        AggregateRewrite {
            name,
            kind,
            signature: Signature::new(TypeSignature::Any(arity), Volatility::Immutable),
        }
    }
}

/// `filter`, and `condition` too.
fn and(filter: Option<Box<Expr>>, condition: Expr) -> Option<Box<Expr>> {
    Some(Box::new(match filter {
        Some(filter) => filter.and(condition),
        None => condition,
    }))
}

impl AggregateUDFImpl for AggregateRewrite {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::CountIf => DataType::Int64,
            Kind::MaxBy | Kind::MinBy => args[0].clone(),
        })
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        exec_err!("{} is rewritten while the query is planned", self.name)
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let kind = self.kind;
        Some(Box::new(move |aggregate: AggregateFunction, _| {
            let AggregateFunctionParams {
                mut args,
                filter,
                order_by,
                ..
            } = aggregate.params;
            let rewritten = match kind {
                Kind::CountIf => AggregateFunction::new_udf(
                    count_udaf(),
                    vec![lit(1i64)],
                    false,
                    and(filter, args.remove(0)),
                    order_by,
                    None,
                ),
                Kind::MaxBy | Kind::MinBy => {
                    let by = args.remove(1);
                    let value = args.remove(0);
                    let ascending = kind == Kind::MinBy;
                    AggregateFunction::new_udf(
                        first_value_udaf(),
                        vec![value],
                        false,
                        and(filter, by.clone().is_not_null()),
                        vec![by.sort(ascending, false)],
                        None,
                    )
                }
            };
            Ok(Expr::AggregateFunction(rewritten))
        }))
    }
}
