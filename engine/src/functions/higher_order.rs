//! Trino's higher-order functions that DataFusion lacks: `all_match` and `none_match` (a
//! predicate over each array, combined in three-valued logic) and `reduce` (a fold from an
//! initial state, then a final function of the state). They evaluate their lambdas a whole
//! batch at a time and run on stage workers too.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanBuilder, ListArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat, take, take_arrays};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{
    ColumnarValue, HigherOrderFunctionArgs, HigherOrderReturnFieldArgs, HigherOrderSignature,
    HigherOrderUDF, HigherOrderUDFImpl, LambdaArgument, LambdaParametersProgress, ValueOrLambda,
    Volatility,
};

/// The higher-order functions of this module, for sessions and stage workers alike.
pub fn functions() -> Vec<HigherOrderUDF> {
    vec![
        HigherOrderUDF::new_from_impl(Match::new("all_match", Quantifier::All)),
        HigherOrderUDF::new_from_impl(Match::new("none_match", Quantifier::None)),
        HigherOrderUDF::new_from_impl(Reduce::new()),
    ]
}

/// An array argument as the functions here read it: a `List`.
fn list_type(function: &str, data_type: &DataType) -> Result<DataType> {
    match data_type {
        DataType::List(_) => Ok(data_type.clone()),
        DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            Ok(DataType::List(Arc::clone(field)))
        }
        DataType::Null => Ok(DataType::new_list(DataType::Null, true)),
        other => plan_err!("{function} takes an array, not {other}"),
    }
}

/// The field of an array's elements.
fn element_field(function: &str, list: &FieldRef) -> Result<FieldRef> {
    match list.data_type() {
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            Ok(Arc::clone(field))
        }
        DataType::Null => Ok(Arc::new(Field::new("item", DataType::Null, true))),
        other => plan_err!("{function} takes an array, not {other}"),
    }
}

/// A batch's arrays: their elements in one array, where each row's elements are, and the
/// row each element belongs to (to line captured columns up with the elements).
struct Elements {
    lists: ListArray,
    values: ArrayRef,
    starts: Vec<usize>,
}

impl Elements {
    fn of(function: &str, value: &ColumnarValue, rows: usize) -> Result<Self> {
        let array = value.to_array(rows)?;
        let array = match array.data_type() {
            DataType::List(_) => array,
            other => cast(&array, &list_type(function, other)?)?,
        };
        let lists = array.as_list::<i32>().clone();
        let offsets: Vec<usize> = lists.value_offsets().iter().map(|o| *o as usize).collect();
        let first = offsets.first().copied().unwrap_or(0);
        let last = offsets.last().copied().unwrap_or(0);
        let values = lists.values().slice(first, last - first);
        let starts = offsets.iter().map(|o| o - first).collect();
        Ok(Self {
            lists,
            values,
            starts,
        })
    }

    fn rows(&self) -> usize {
        self.lists.len()
    }

    fn range(&self, row: usize) -> Range<usize> {
        self.starts[row]..self.starts[row + 1]
    }

    /// For each element, the row it belongs to.
    fn owners(&self) -> UInt32Array {
        (0..self.rows())
            .flat_map(|row| self.range(row).map(move |_| row as u32))
            .collect()
    }
}

/// `lambda` evaluated with `params` (arrays of `len` rows each) and the captured columns
/// taken at `rows` (the input row of each of the `len` rows).
fn apply(
    lambda: &LambdaArgument,
    params: &[ArrayRef],
    rows: &UInt32Array,
    len: usize,
) -> Result<ArrayRef> {
    let getters: Vec<Box<dyn Fn() -> Result<ArrayRef> + '_>> = params
        .iter()
        .map(|p| Box::new(move || Ok(Arc::clone(p))) as Box<dyn Fn() -> Result<ArrayRef>>)
        .collect();
    let getters: Vec<&dyn Fn() -> Result<ArrayRef>> = getters.iter().map(|g| g.as_ref()).collect();
    lambda
        .evaluate(&getters, |captures| Ok(take_arrays(captures, rows, None)?))?
        .into_array(len)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Quantifier {
    /// `all_match`: true when no element fails the predicate.
    All,
    /// `none_match`: true when no element passes it.
    None,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Match {
    name: &'static str,
    quantifier: Quantifier,
    signature: HigherOrderSignature,
}

impl Match {
    fn new(name: &'static str, quantifier: Quantifier) -> Self {
        Self {
            name,
            quantifier,
            signature: HigherOrderSignature::exact(
                vec![ValueOrLambda::Value(()), ValueOrLambda::Lambda(())],
                Volatility::Immutable,
            ),
        }
    }
}

impl HigherOrderUDFImpl for Match {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &HigherOrderSignature {
        &self.signature
    }

    fn coerce_value_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [list] => Ok(vec![list_type(self.name, list)?]),
            _ => plan_err!("{} takes an array and a lambda", self.name),
        }
    }

    fn lambda_parameters(
        &self,
        _step: usize,
        fields: &[ValueOrLambda<FieldRef, Option<FieldRef>>],
    ) -> Result<LambdaParametersProgress> {
        let [ValueOrLambda::Value(list), ValueOrLambda::Lambda(_)] = fields else {
            return plan_err!("{} takes an array and a lambda", self.name);
        };
        Ok(LambdaParametersProgress::Complete(vec![vec![
            element_field(self.name, list)?,
        ]]))
    }

    fn return_field_from_args(&self, _args: HigherOrderReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name, DataType::Boolean, true)))
    }

    fn invoke_with_args(&self, args: HigherOrderFunctionArgs) -> Result<ColumnarValue> {
        let [ValueOrLambda::Value(list), ValueOrLambda::Lambda(predicate)] = args.args.as_slice()
        else {
            return exec_err!("{} takes an array and a lambda", self.name);
        };
        let elements = Elements::of(self.name, list, args.number_rows)?;
        let len = elements.values.len();
        let verdicts = apply(
            predicate,
            &[Arc::clone(&elements.values)],
            &elements.owners(),
            len,
        )?;
        let verdicts = cast(&verdicts, &DataType::Boolean)?;
        let verdicts = verdicts.as_boolean();
        // The element value that decides: a failing one for all_match, a passing one for
        // none_match; an undecided (NULL) element leaves the answer NULL.
        let deciding = self.quantifier == Quantifier::None;
        let mut answers = BooleanBuilder::with_capacity(elements.rows());
        for row in 0..elements.rows() {
            if elements.lists.is_null(row) {
                answers.append_null();
                continue;
            }
            let range = elements.range(row);
            if range
                .clone()
                .any(|i| verdicts.is_valid(i) && verdicts.value(i) == deciding)
            {
                answers.append_value(false);
            } else if range.clone().any(|i| verdicts.is_null(i)) {
                answers.append_null();
            } else {
                answers.append_value(true);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(answers.finish())))
    }
}

/// `reduce(array, initial, (state, x) -> state, state -> result)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Reduce {
    signature: HigherOrderSignature,
}

impl Reduce {
    fn new() -> Self {
        Self {
            signature: HigherOrderSignature::exact(
                vec![
                    ValueOrLambda::Value(()),
                    ValueOrLambda::Value(()),
                    ValueOrLambda::Lambda(()),
                    ValueOrLambda::Lambda(()),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// The state's type: the initial value's, widened to what the input function returns for
/// it (an integer state summing doubles is a double). Decimals get the widest precision, so
/// that a sum's growing precision does not change the state's type from one step to the next.
fn state_type(initial: &DataType, step_result: Option<&DataType>) -> DataType {
    let common = match step_result {
        Some(result) if result != initial && *initial != DataType::Null => {
            comparison_coercion(initial, result).unwrap_or_else(|| result.clone())
        }
        Some(result) if *initial == DataType::Null => result.clone(),
        _ => initial.clone(),
    };
    match common {
        DataType::Decimal128(_, scale) => DataType::Decimal128(38, scale),
        DataType::Decimal256(_, scale) => DataType::Decimal256(76, scale),
        other => other,
    }
}

impl HigherOrderUDFImpl for Reduce {
    fn name(&self) -> &str {
        "reduce"
    }

    fn signature(&self) -> &HigherOrderSignature {
        &self.signature
    }

    fn coerce_value_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [list, initial] => Ok(vec![list_type("reduce", list)?, initial.clone()]),
            _ => plan_err!("reduce takes an array, an initial state and two lambdas"),
        }
    }

    fn lambda_parameters(
        &self,
        _step: usize,
        fields: &[ValueOrLambda<FieldRef, Option<FieldRef>>],
    ) -> Result<LambdaParametersProgress> {
        let [ValueOrLambda::Value(list), ValueOrLambda::Value(initial), ValueOrLambda::Lambda(step_result), ValueOrLambda::Lambda(_)] =
            fields
        else {
            return plan_err!("reduce takes an array, an initial state and two lambdas");
        };
        let element = element_field("reduce", list)?;
        match step_result {
            // First the input function's type for the initial value's type.
            None => Ok(LambdaParametersProgress::Partial(vec![
                Some(vec![Arc::clone(initial), element]),
                None,
            ])),
            Some(result) => {
                let state = Arc::new(Field::new(
                    "state",
                    state_type(initial.data_type(), Some(result.data_type())),
                    true,
                ));
                Ok(LambdaParametersProgress::Complete(vec![
                    vec![Arc::clone(&state), element],
                    vec![state],
                ]))
            }
        }
    }

    fn coerce_values_for_lambdas(
        &self,
        fields: &[ValueOrLambda<DataType, DataType>],
    ) -> Result<Option<Vec<DataType>>> {
        let [ValueOrLambda::Value(list), ValueOrLambda::Value(initial), ValueOrLambda::Lambda(step_result), _] =
            fields
        else {
            return plan_err!("reduce takes an array, an initial state and two lambdas");
        };
        Ok(Some(vec![
            list.clone(),
            state_type(initial, Some(step_result)),
        ]))
    }

    fn return_field_from_args(&self, args: HigherOrderReturnFieldArgs) -> Result<FieldRef> {
        let Some(ValueOrLambda::Lambda(result)) = args.arg_fields.get(3) else {
            return plan_err!("reduce takes an array, an initial state and two lambdas");
        };
        Ok(Arc::new(Field::new(
            "reduce",
            result.data_type().clone(),
            true,
        )))
    }

    fn invoke_with_args(&self, args: HigherOrderFunctionArgs) -> Result<ColumnarValue> {
        let [ValueOrLambda::Value(list), ValueOrLambda::Value(initial), ValueOrLambda::Lambda(input), ValueOrLambda::Lambda(output)] =
            args.args.as_slice()
        else {
            return exec_err!("reduce takes an array, an initial state and two lambdas");
        };
        let rows = args.number_rows;
        let elements = Elements::of("reduce", list, rows)?;
        let mut states = initial.to_array(rows)?;
        let state_type = states.data_type().clone();
        let longest = (0..rows)
            .map(|r| elements.range(r).len())
            .max()
            .unwrap_or(0);
        // Step k folds the k-th element of every array that has one into its row's state.
        for k in 0..longest {
            let active: UInt32Array = (0..rows as u32)
                .filter(|r| elements.range(*r as usize).len() > k)
                .collect();
            let at: UInt32Array = active
                .values()
                .iter()
                .map(|r| (elements.range(*r as usize).start + k) as u32)
                .collect();
            let folded = apply(
                input,
                &[
                    take(&states, &active, None)?,
                    take(&elements.values, &at, None)?,
                ],
                &active,
                active.len(),
            )?;
            let folded = cast(&folded, &state_type)?;
            // Each active row takes its new state (after the old ones), the others keep theirs.
            let mut next: Vec<u32> = (0..rows as u32).collect();
            for (j, r) in active.values().iter().enumerate() {
                next[*r as usize] = (rows + j) as u32;
            }
            states = take(
                &concat(&[states.as_ref(), folded.as_ref()])?,
                &UInt32Array::from(next),
                None,
            )?;
        }
        // The output function runs for the rows whose array is not NULL; a NULL array
        // reduces to NULL.
        let present: UInt32Array = (0..rows as u32)
            .filter(|r| elements.lists.is_valid(*r as usize))
            .collect();
        let results = apply(
            output,
            &[take(&states, &present, None)?],
            &present,
            present.len(),
        )?;
        let result_type = args.return_type().clone();
        let results = cast(&results, &result_type)?;
        if present.len() == rows {
            return Ok(ColumnarValue::Array(results));
        }
        if present.is_empty() {
            return Ok(ColumnarValue::Array(new_null_array(&result_type, rows)));
        }
        let mut place = Vec::with_capacity(rows);
        let mut j = 0u32;
        for r in 0..rows {
            if elements.lists.is_valid(r) {
                place.push(Some(j));
                j += 1;
            } else {
                place.push(None);
            }
        }
        Ok(ColumnarValue::Array(take(
            &results,
            &UInt32Array::from(place),
            None,
        )?))
    }
}
