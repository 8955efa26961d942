//! Arrow values as the Trino protocol encodes them in JSON: numbers as numbers, decimals and
//! 64-bit unsigned integers as strings, NaN and infinities as strings, dates, times and
//! timestamps as text, varbinary as base64, arrays as lists, maps as objects, rows as lists.

use base64::Engine;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, GenericListArray, MapArray, OffsetSizeTrait,
    StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimeUnit, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

/// The rows of `batch`, each a list of column values.
pub fn batch_rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, ArrowError> {
    let columns: Vec<Vec<Value>> = batch
        .columns()
        .iter()
        .map(encode)
        .collect::<Result<_, _>>()?;
    let mut rows = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
    for column in columns {
        for (row, value) in rows.iter_mut().zip(column) {
            row.push(value);
        }
    }
    Ok(rows)
}

fn nulls_or(array: &dyn Array, mut value: impl FnMut(usize) -> Value) -> Vec<Value> {
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                Value::Null
            } else {
                value(i)
            }
        })
        .collect()
}

fn float(value: f64) -> Value {
    if value.is_nan() {
        Value::String("NaN".into())
    } else if value.is_infinite() {
        Value::String(if value > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

/// Timestamp, timestamp-with-zone and time formats for a column of `data_type`.
fn formats(data_type: &DataType) -> (&'static str, &'static str, &'static str) {
    match data_type {
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S %:z", ""),
            TimeUnit::Millisecond => ("%Y-%m-%d %H:%M:%S%.3f", "%Y-%m-%d %H:%M:%S%.3f %:z", ""),
            TimeUnit::Microsecond => ("%Y-%m-%d %H:%M:%S%.6f", "%Y-%m-%d %H:%M:%S%.6f %:z", ""),
            TimeUnit::Nanosecond => ("%Y-%m-%d %H:%M:%S%.9f", "%Y-%m-%d %H:%M:%S%.9f %:z", ""),
        },
        DataType::Time32(unit) | DataType::Time64(unit) => match unit {
            TimeUnit::Second => ("", " %:z", "%H:%M:%S"),
            TimeUnit::Millisecond => ("", " %:z", "%H:%M:%S%.3f"),
            TimeUnit::Microsecond => ("", " %:z", "%H:%M:%S%.6f"),
            TimeUnit::Nanosecond => ("", " %:z", "%H:%M:%S%.9f"),
        },
        _ => ("", " %:z", ""),
    }
}

/// The text of values of dates, times, timestamps, decimals and intervals, in formats the
/// Trino clients parse.
pub(crate) struct Formatter<'a>(ArrayFormatter<'a>);

impl<'a> Formatter<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Self, ArrowError> {
        let (timestamp, timestamp_tz, time) = formats(array.data_type());
        let options = FormatOptions::new()
            .with_date_format(Some("%Y-%m-%d"))
            .with_timestamp_format(Some(timestamp))
            .with_timestamp_tz_format(Some(timestamp_tz))
            .with_time_format(Some(time));
        Ok(Formatter(ArrayFormatter::try_new(array, &options)?))
    }

    /// Append the text of value `i` to `out`.
    pub(crate) fn write(&self, i: usize, out: &mut String) -> std::fmt::Result {
        use std::fmt::Write;
        write!(out, "{}", self.0.value(i))
    }
}

/// Render each value as text with formats the Trino clients parse.
fn formatted(array: &dyn Array) -> Result<Vec<Value>, ArrowError> {
    let formatter = Formatter::new(array)?;
    let mut failed = false;
    let values = nulls_or(array, |i| {
        let mut text = String::new();
        failed |= formatter.write(i, &mut text).is_err();
        Value::String(text)
    });
    match failed {
        true => Err(ArrowError::CastError(format!(
            "cannot write a value of type {} as text",
            array.data_type()
        ))),
        false => Ok(values),
    }
}

fn list<O: OffsetSizeTrait>(array: &GenericListArray<O>) -> Result<Vec<Value>, ArrowError> {
    let values = encode(array.values())?;
    let offsets = array.value_offsets();
    Ok(nulls_or(array, |i| {
        let (start, end) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
        Value::Array(values[start..end].to_vec())
    }))
}

fn fixed_size_list(array: &FixedSizeListArray) -> Result<Vec<Value>, ArrowError> {
    let values = encode(array.values())?;
    let size = array.value_length() as usize;
    Ok(nulls_or(array, |i| {
        Value::Array(values[i * size..(i + 1) * size].to_vec())
    }))
}

fn map(array: &MapArray) -> Result<Vec<Value>, ArrowError> {
    let keys = encode(array.keys())?;
    let values = encode(array.values())?;
    let offsets = array.value_offsets();
    Ok(nulls_or(array, |i| {
        let mut object = Map::new();
        for entry in offsets[i] as usize..offsets[i + 1] as usize {
            let key = match &keys[entry] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            object.insert(key, values[entry].clone());
        }
        Value::Object(object)
    }))
}

fn row(array: &StructArray) -> Result<Vec<Value>, ArrowError> {
    let fields: Vec<Vec<Value>> = array
        .columns()
        .iter()
        .map(encode)
        .collect::<Result<_, _>>()?;
    Ok(nulls_or(array, |i| {
        Value::Array(fields.iter().map(|f| f[i].clone()).collect())
    }))
}

/// Every value of `array`, encoded.
pub fn encode(array: &ArrayRef) -> Result<Vec<Value>, ArrowError> {
    let a = array.as_ref();
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; a.len()],
        DataType::Boolean => {
            let values = a.as_boolean();
            nulls_or(a, |i| Value::Bool(values.value(i)))
        }
        DataType::Int8 => ints(a.as_primitive::<Int8Type>(), i64::from),
        DataType::Int16 => ints(a.as_primitive::<Int16Type>(), i64::from),
        DataType::Int32 => ints(a.as_primitive::<Int32Type>(), i64::from),
        DataType::Int64 => ints(a.as_primitive::<Int64Type>(), |v| v),
        DataType::UInt8 => ints(a.as_primitive::<UInt8Type>(), i64::from),
        DataType::UInt16 => ints(a.as_primitive::<UInt16Type>(), i64::from),
        DataType::UInt32 => ints(a.as_primitive::<UInt32Type>(), i64::from),
        DataType::UInt64 => {
            let values = a.as_primitive::<UInt64Type>();
            nulls_or(a, |i| Value::String(values.value(i).to_string()))
        }
        DataType::Float16 => {
            let values = a.as_primitive::<Float16Type>();
            nulls_or(a, |i| float(f64::from(values.value(i))))
        }
        DataType::Float32 => {
            let values = a.as_primitive::<Float32Type>();
            nulls_or(a, |i| float(f64::from(values.value(i))))
        }
        DataType::Float64 => {
            let values = a.as_primitive::<Float64Type>();
            nulls_or(a, |i| float(values.value(i)))
        }
        DataType::Utf8 => strings(a, |i| a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => strings(a, |i| a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => strings(a, |i| a.as_string_view().value(i).to_string()),
        DataType::Binary => binary(a, |i| a.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => binary(a, |i| a.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => binary(a, |i| a.as_binary_view().value(i).to_vec()),
        DataType::FixedSizeBinary(_) => binary(a, |i| a.as_fixed_size_binary().value(i).to_vec()),
        DataType::List(_) => list(a.as_list::<i32>())?,
        DataType::LargeList(_) => list(a.as_list::<i64>())?,
        DataType::FixedSizeList(_, _) => fixed_size_list(a.as_fixed_size_list())?,
        DataType::ListView(item) | DataType::LargeListView(item) => {
            let as_list = cast(a, &DataType::LargeList(item.clone()))?;
            list(as_list.as_list::<i64>())?
        }
        DataType::Map(_, _) => map(a.as_map())?,
        DataType::Struct(_) => row(a.as_struct())?,
        DataType::Dictionary(_, value) => encode(&cast(a, value)?)?,
        DataType::RunEndEncoded(_, values) => encode(&cast(a, values.data_type())?)?,
        _ => formatted(a)?,
    })
}

fn ints<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    values: &datafusion::arrow::array::PrimitiveArray<T>,
    widen: impl Fn(T::Native) -> i64,
) -> Vec<Value> {
    nulls_or(values, |i| {
        Value::Number(Number::from(widen(values.value(i))))
    })
}

fn strings(array: &dyn Array, value: impl Fn(usize) -> String) -> Vec<Value> {
    nulls_or(array, |i| Value::String(value(i)))
}

fn binary(array: &dyn Array, value: impl Fn(usize) -> Vec<u8>) -> Vec<Value> {
    let engine = base64::engine::general_purpose::STANDARD;
    nulls_or(array, |i| Value::String(engine.encode(value(i))))
}
