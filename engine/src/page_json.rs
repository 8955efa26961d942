//! Result pages as JSON text written straight from Arrow arrays: the same text as the rows of
//! [`crate::values::batch_rows`] serialized, without a `serde_json::Value` for each cell of
//! the common types (numbers, booleans, strings, binary, dates, times, timestamps, decimals).
//! Nested values (arrays, maps, rows) still go through [`crate::values::encode`].

use std::ops::Range;

use base64::Engine;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

/// A page being written: `[[…],[…],…]`, one inner list per row.
#[derive(Debug, Default)]
pub struct PageJson {
    json: Vec<u8>,
    rows: usize,
}

impl PageJson {
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The page's JSON and row count; the writer is empty again.
    pub fn take(&mut self) -> Result<(String, u64), ArrowError> {
        let mut json = std::mem::take(&mut self.json);
        if json.is_empty() {
            json.push(b'[');
        }
        json.push(b']');
        let rows = std::mem::take(&mut self.rows) as u64;
        let json = String::from_utf8(json).map_err(|e| ArrowError::JsonError(e.to_string()))?;
        Ok((json, rows))
    }

    /// Append rows `range` of the batch `cells` writes.
    pub fn push(&mut self, cells: &mut Cells<'_>, range: Range<usize>) -> Result<(), ArrowError> {
        for row in range {
            self.json.push(if self.rows == 0 { b'[' } else { b',' });
            self.json.push(b'[');
            for (i, column) in cells.columns.iter_mut().enumerate() {
                if i > 0 {
                    self.json.push(b',');
                }
                if column.array.is_null(row) {
                    self.json.extend_from_slice(b"null");
                } else {
                    (column.write)(row, &mut self.json).map_err(json_error)?;
                }
            }
            self.json.push(b']');
            self.rows += 1;
        }
        Ok(())
    }
}

fn json_error(e: serde_json::Error) -> ArrowError {
    ArrowError::JsonError(e.to_string())
}

type Write1<'a> = Box<dyn FnMut(usize, &mut Vec<u8>) -> Result<(), serde_json::Error> + 'a>;

struct Column<'a> {
    array: &'a dyn Array,
    write: Write1<'a>,
}

/// How each column of one batch writes a non-null value.
pub struct Cells<'a> {
    columns: Vec<Column<'a>>,
}

impl<'a> Cells<'a> {
    pub fn new(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        let columns = batch
            .columns()
            .iter()
            .map(|array| {
                Ok(Column {
                    array: array.as_ref(),
                    write: writer(array)?,
                })
            })
            .collect::<Result<_, ArrowError>>()?;
        Ok(Cells { columns })
    }
}

fn to<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, value)
}

fn float(out: &mut Vec<u8>, value: f64) -> Result<(), serde_json::Error> {
    if value.is_nan() {
        to(out, "NaN")
    } else if value.is_infinite() {
        to(out, if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        to(out, &value)
    }
}

fn custom(e: impl std::fmt::Display) -> serde_json::Error {
    <serde_json::Error as serde::ser::Error>::custom(e)
}

/// The writer of a column of integers, as JSON numbers.
fn number<T>(array: &dyn Array) -> Write1<'_>
where
    T: datafusion::arrow::datatypes::ArrowPrimitiveType,
    T::Native: serde::Serialize,
{
    let values = array.as_primitive::<T>();
    Box::new(move |i, out| to(out, &values.value(i)))
}

/// The writer of `array`'s values at an index (never called for a null one).
fn writer(array: &ArrayRef) -> Result<Write1<'_>, ArrowError> {
    let a = array.as_ref();
    let engine = base64::engine::general_purpose::STANDARD;
    Ok(match array.data_type() {
        DataType::Null => Box::new(|_, out| to(out, &())),
        DataType::Boolean => {
            let values = a.as_boolean();
            Box::new(move |i, out| to(out, &values.value(i)))
        }
        DataType::Int8 => number::<Int8Type>(a),
        DataType::Int16 => number::<Int16Type>(a),
        DataType::Int32 => number::<Int32Type>(a),
        DataType::Int64 => number::<Int64Type>(a),
        DataType::UInt8 => number::<UInt8Type>(a),
        DataType::UInt16 => number::<UInt16Type>(a),
        DataType::UInt32 => number::<UInt32Type>(a),
        // Beyond what a JSON number keeps exactly in every client: a string, as Trino does.
        DataType::UInt64 => {
            let values = a.as_primitive::<UInt64Type>();
            Box::new(move |i, out| to(out, &values.value(i).to_string()))
        }
        DataType::Float16 => {
            let values = a.as_primitive::<Float16Type>();
            Box::new(move |i, out| float(out, f64::from(values.value(i))))
        }
        DataType::Float32 => {
            let values = a.as_primitive::<Float32Type>();
            Box::new(move |i, out| float(out, f64::from(values.value(i))))
        }
        DataType::Float64 => {
            let values = a.as_primitive::<Float64Type>();
            Box::new(move |i, out| float(out, values.value(i)))
        }
        DataType::Utf8 => {
            let values = a.as_string::<i32>();
            Box::new(move |i, out| to(out, values.value(i)))
        }
        DataType::LargeUtf8 => {
            let values = a.as_string::<i64>();
            Box::new(move |i, out| to(out, values.value(i)))
        }
        DataType::Utf8View => {
            let values = a.as_string_view();
            Box::new(move |i, out| to(out, values.value(i)))
        }
        DataType::Binary => {
            let values = a.as_binary::<i32>();
            Box::new(move |i, out| to(out, &engine.encode(values.value(i))))
        }
        DataType::LargeBinary => {
            let values = a.as_binary::<i64>();
            Box::new(move |i, out| to(out, &engine.encode(values.value(i))))
        }
        DataType::BinaryView => {
            let values = a.as_binary_view();
            Box::new(move |i, out| to(out, &engine.encode(values.value(i))))
        }
        DataType::FixedSizeBinary(_) => {
            let values = a.as_fixed_size_binary();
            Box::new(move |i, out| to(out, &engine.encode(values.value(i))))
        }
        // Nested values, dictionaries and run-end encoded arrays: as `values` encodes them.
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Map(_, _)
        | DataType::Struct(_)
        | DataType::Dictionary(_, _)
        | DataType::RunEndEncoded(_, _) => {
            let values: Vec<Value> = crate::values::encode(array)?;
            Box::new(move |i, out| to(out, &values[i]))
        }
        // Dates, times, timestamps, decimals, intervals: their text.
        _ => {
            let formatter = crate::values::Formatter::new(a)?;
            let mut text = String::new();
            Box::new(move |i, out| {
                text.clear();
                formatter.write(i, &mut text).map_err(custom)?;
                to(out, text.as_str())
            })
        }
    })
}

/// Write rows `range` of `batch` as one page's JSON (for tests and one-off pages).
pub fn page(batch: &RecordBatch, range: Range<usize>) -> Result<(String, u64), ArrowError> {
    let mut page = PageJson::default();
    let mut cells = Cells::new(batch)?;
    page.push(&mut cells, range)?;
    page.take()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array,
        Float64Array, Int32Array, Int64Array, ListArray, StringArray, StringViewArray, StructArray,
        Time64MicrosecondArray, TimestampMillisecondArray, UInt64Array,
    };
    use datafusion::arrow::datatypes::{Field, Int32Type};

    use super::*;

    fn batch() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(-7), None, Some(i64::MAX)])),
            ),
            ("n", Arc::new(Int32Array::from(vec![1, 2, 3]))),
            ("u", Arc::new(UInt64Array::from(vec![u64::MAX, 0, 5]))),
            (
                "f",
                Arc::new(Float64Array::from(vec![f64::NAN, f64::NEG_INFINITY, 0.1])),
            ),
            (
                "g",
                Arc::new(Float32Array::from(vec![0.1, f32::INFINITY, 1e30])),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("quote \" back \\ tab\t"),
                    None,
                    Some("zürich ✓ \u{1}"),
                ])),
            ),
            (
                "v",
                Arc::new(StringViewArray::from(vec![
                    "a long string beyond twelve bytes",
                    "",
                    "x",
                ])),
            ),
            (
                "x",
                Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..], b"", b"abc"])),
            ),
            ("d", Arc::new(Date32Array::from(vec![0, 19000, -1]))),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![
                    0,
                    1_700_000_000_123,
                    -1,
                ])),
            ),
            (
                "z",
                Arc::new(
                    TimestampMillisecondArray::from(vec![0, 1_700_000_000_123, -1])
                        .with_timezone("+02:00"),
                ),
            ),
            (
                "h",
                Arc::new(Time64MicrosecondArray::from(vec![
                    0,
                    3_600_000_001,
                    86_399_999_999,
                ])),
            ),
            (
                "m",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .expect("a decimal type"),
                ),
            ),
            (
                "l",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(1), None]),
                    None,
                    Some(vec![]),
                ])),
            ),
            (
                "r",
                Arc::new(StructArray::from(vec![(
                    Arc::new(Field::new("a", DataType::Utf8, true)),
                    Arc::new(StringArray::from(vec![Some("p"), None, Some("\"q\"")])) as ArrayRef,
                )])),
            ),
            (
                "e",
                Arc::new(DictionaryArray::<Int32Type>::from_iter([
                    "red", "green", "red",
                ])),
            ),
        ];
        RecordBatch::try_from_iter(columns).expect("a batch")
    }

    #[test]
    fn pages_are_the_text_of_the_encoded_values() {
        let batch = batch();
        let expected =
            serde_json::to_string(&crate::values::batch_rows(&batch).expect("rows")).expect("json");
        assert_eq!(page(&batch, 0..3).expect("a page"), (expected, 3));
        let rows = crate::values::batch_rows(&batch).expect("rows");
        let middle = serde_json::to_string(&rows[1..3]).expect("json");
        assert_eq!(page(&batch, 1..3).expect("a page"), (middle, 2));
    }

    #[test]
    fn a_page_gathers_rows_of_several_batches_and_starts_again_when_taken() {
        let batch = batch();
        let rows = crate::values::batch_rows(&batch).expect("rows");
        let mut page = PageJson::default();
        let mut cells = Cells::new(&batch).expect("cells");
        page.push(&mut cells, 0..2).expect("rows");
        let mut again = Cells::new(&batch).expect("cells");
        page.push(&mut again, 2..3).expect("rows");
        page.push(&mut again, 0..1).expect("rows");
        let mut four = rows.clone();
        four.push(rows[0].clone());
        assert_eq!(
            page.take().expect("json"),
            (serde_json::to_string(&four).expect("json"), 4)
        );
        assert_eq!(page.rows(), 0);
        assert_eq!(page.take().expect("json"), ("[]".to_string(), 0));
    }
}
