//! Trino's `listagg(value, separator) WITHIN GROUP (ORDER BY key)`: the group's non-NULL
//! values as text, in the order of `key`, joined by `separator` (NULL for a group without
//! one). DataFusion hands an aggregate that takes WITHIN GROUP its ordering key as the first
//! argument; the accumulator keeps every (key, value) pair and sorts them when it answers, so
//! partial states from several workers merge in any order.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ListAgg {
    signature: Signature,
}

impl ListAgg {
    pub fn new() -> Self {
        ListAgg {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Immutable,
            ),
        }
    }
}

/// The (key type, value position) of the arguments: with WITHIN GROUP the key comes first.
fn key_type(types: &[DataType]) -> Option<&DataType> {
    (types.len() == 3).then(|| &types[0])
}

impl AggregateUDFImpl for ListAgg {
    fn name(&self) -> &str {
        "listagg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        // The accumulator sorts by itself; sorted input is merely welcome.
        AggregateOrderSensitivity::Beneficial
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        _: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        // Sorted input or not, the accumulator answers the same.
        Ok(Some(self))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> = args
            .input_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let key = key_type(&types).cloned().unwrap_or(DataType::Null);
        Ok(vec![
            Arc::new(Field::new_list(
                "keys",
                Field::new_list_field(key, true),
                true,
            )),
            Arc::new(Field::new_list(
                "values",
                Field::new_list_field(DataType::Utf8, true),
                true,
            )),
            Arc::new(Field::new("separator", DataType::Utf8, true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let types = args
            .exprs
            .iter()
            .map(|e| e.data_type(args.schema))
            .collect::<Result<Vec<_>>>()?;
        let options = args
            .order_bys
            .first()
            .map(|sort| sort.options)
            .unwrap_or_default();
        Ok(Box::new(ListAggAccumulator {
            key_type: key_type(&types).cloned().unwrap_or(DataType::Null),
            keyed: types.len() == 3,
            options,
            pairs: Vec::new(),
            separator: None,
        }))
    }
}

#[derive(Debug)]
struct ListAggAccumulator {
    key_type: DataType,
    keyed: bool,
    options: SortOptions,
    pairs: Vec<(ScalarValue, String)>,
    separator: Option<String>,
}

fn text(value: &ScalarValue) -> Result<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    match value.cast_to(&DataType::Utf8)? {
        ScalarValue::Utf8(text) => Ok(text),
        other => exec_err!("listagg cannot read {other} as text"),
    }
}

impl ListAggAccumulator {
    fn order(&self, a: &ScalarValue, b: &ScalarValue) -> Ordering {
        match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if self.options.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if self.options.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => {
                let ordering = a.partial_cmp(b).unwrap_or(Ordering::Equal);
                if self.options.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            }
        }
    }
}

impl Accumulator for ListAggAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Columns of the ordering DataFusion may append come after the arguments.
        let (keys, items, separators) = match values {
            [keys, items, separators, ..] if self.keyed => (Some(keys), items, separators),
            [items, separators, ..] if !self.keyed => (None, items, separators),
            _ => return exec_err!("listagg takes a value and a separator"),
        };
        for row in 0..items.len() {
            if self.separator.is_none() {
                self.separator = text(&ScalarValue::try_from_array(separators, row)?)?;
            }
            let Some(item) = text(&ScalarValue::try_from_array(items, row)?)? else {
                continue;
            };
            let key = match keys {
                Some(keys) => ScalarValue::try_from_array(keys, row)?,
                None => ScalarValue::Null,
            };
            self.pairs.push((key, item));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [keys, items, separators, ..] = states else {
            return exec_err!("listagg merges keys, values and a separator");
        };
        let (keys, items) = (keys.as_list::<i32>(), items.as_list::<i32>());
        for row in 0..items.len() {
            if self.separator.is_none() {
                self.separator = text(&ScalarValue::try_from_array(separators, row)?)?;
            }
            let (row_keys, row_items) = (keys.value(row), items.value(row));
            for at in 0..row_items.len() {
                let Some(item) = text(&ScalarValue::try_from_array(&row_items, at)?)? else {
                    continue;
                };
                let key = if self.keyed {
                    ScalarValue::try_from_array(&row_keys, at)?
                } else {
                    ScalarValue::Null
                };
                self.pairs.push((key, item));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let keys: Vec<ScalarValue> = if self.keyed {
            self.pairs.iter().map(|(k, _)| k.clone()).collect()
        } else {
            vec![ScalarValue::Null; self.pairs.len()]
        };
        let items: Vec<ScalarValue> = self
            .pairs
            .iter()
            .map(|(_, v)| ScalarValue::Utf8(Some(v.clone())))
            .collect();
        let key_type = if self.keyed {
            self.key_type.clone()
        } else {
            DataType::Null
        };
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&keys, &key_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Utf8)),
            ScalarValue::Utf8(self.separator.clone()),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.pairs.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        let mut pairs = std::mem::take(&mut self.pairs);
        if self.keyed {
            pairs.sort_by(|a, b| self.order(&a.0, &b.0));
        }
        let separator = self.separator.clone().unwrap_or_default();
        let joined = pairs
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(&separator);
        self.pairs = pairs;
        Ok(ScalarValue::Utf8(Some(joined)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .pairs
                .iter()
                .map(|(k, v)| k.size() + v.len())
                .sum::<usize>()
    }
}
