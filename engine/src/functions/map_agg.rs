//! Trino's `map_agg(key, value)`: a map of the group's key/value pairs. Rows whose key is NULL
//! are left out; of pairs with the same key the first one seen is kept. Partial states are the
//! keys and the values as two lists, so the aggregate runs in distributed stages too.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, Array, ArrayRef, AsArray, MapArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MapAgg {
    signature: Signature,
}

impl MapAgg {
    pub fn new() -> Self {
        MapAgg {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }
}

fn entries(key: &DataType, value: &DataType) -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", key.clone(), false),
            Field::new("value", value.clone(), true),
        ])),
        false,
    ))
}

impl AggregateUDFImpl for MapAgg {
    fn name(&self) -> &str {
        "map_agg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [key, value] => Ok(DataType::Map(entries(key, value), false)),
            _ => exec_err!("map_agg takes a key and a value"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let [key, value] = args.input_fields else {
            return exec_err!("map_agg takes a key and a value");
        };
        Ok(vec![
            Arc::new(Field::new_list(
                "keys",
                Field::new_list_field(key.data_type().clone(), true),
                true,
            )),
            Arc::new(Field::new_list(
                "values",
                Field::new_list_field(value.data_type().clone(), true),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let [key, value] = args.exprs else {
            return exec_err!("map_agg takes a key and a value");
        };
        Ok(Box::new(MapAggAccumulator {
            key_type: key.data_type(args.schema)?,
            value_type: value.data_type(args.schema)?,
            seen: HashSet::new(),
            keys: Vec::new(),
            values: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct MapAggAccumulator {
    key_type: DataType,
    value_type: DataType,
    seen: HashSet<ScalarValue>,
    keys: Vec<ScalarValue>,
    values: Vec<ScalarValue>,
}

impl MapAggAccumulator {
    fn add(&mut self, key: ScalarValue, value: ScalarValue) {
        if key.is_null() || self.seen.contains(&key) {
            return;
        }
        self.seen.insert(key.clone());
        self.keys.push(key);
        self.values.push(value);
    }

    fn array(values: &[ScalarValue], data_type: &DataType) -> Result<ArrayRef> {
        if values.is_empty() {
            return Ok(new_empty_array(data_type));
        }
        ScalarValue::iter_to_array(values.iter().cloned())
    }
}

impl Accumulator for MapAggAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [keys, values] = values else {
            return exec_err!("map_agg takes a key and a value");
        };
        for row in 0..keys.len() {
            self.add(
                ScalarValue::try_from_array(keys, row)?,
                ScalarValue::try_from_array(values, row)?,
            );
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [keys, values] = states else {
            return exec_err!("map_agg merges keys and values");
        };
        let (keys, values) = (keys.as_list::<i32>(), values.as_list::<i32>());
        for row in 0..keys.len() {
            if keys.is_null(row) {
                continue;
            }
            let (row_keys, row_values) = (keys.value(row), values.value(row));
            for at in 0..row_keys.len() {
                self.add(
                    ScalarValue::try_from_array(&row_keys, at)?,
                    ScalarValue::try_from_array(&row_values, at)?,
                );
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&self.keys, &self.key_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(
                &self.values,
                &self.value_type,
            )),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let field = entries(&self.key_type, &self.value_type);
        let DataType::Struct(fields) = field.data_type() else {
            return exec_err!("map entries are a struct");
        };
        let keys = Self::array(&self.keys, &self.key_type)?;
        let values = Self::array(&self.values, &self.value_type)?;
        let pairs = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
        let offsets = OffsetBuffer::new(vec![0i32, self.keys.len() as i32].into());
        let map = MapArray::try_new(field, offsets, pairs, None, false)?;
        Ok(ScalarValue::Map(Arc::new(map)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .keys
                .iter()
                .chain(&self.values)
                .map(ScalarValue::size)
                .sum::<usize>()
            + self.seen.len() * std::mem::size_of::<ScalarValue>()
    }
}
