//! Rows of a segment written as CSV straight from its JSON text (`[[…],…]`), without a
//! `serde_json::Value` for each cell: the same lines as [`super::output::Printer`] writes
//! for the decoded rows, so a large result costs one pass over its bytes.

use std::fmt;
use std::io::Write;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::output::write_csv_value;

/// Append the CSV lines of the rows in `json` to `out`; returns how many rows there were.
pub fn rows_to_csv(json: &[u8], out: &mut Vec<u8>) -> Result<u64, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let rows = Rows { out }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(rows)
}

struct Rows<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<u64, A::Error> {
        let mut count = 0;
        while rows.next_element_seed(Row { out: self.out })?.is_some() {
            self.out.push(b'\n');
            count += 1;
        }
        Ok(count)
    }
}

struct Row<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row: a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut cells: A) -> Result<(), A::Error> {
        let mut first = true;
        loop {
            if !first {
                // The separator goes before the next cell; one too many is taken back below.
                self.out.push(b',');
            }
            if cells.next_element_seed(Cell { out: self.out })?.is_none() {
                if !first {
                    self.out.pop();
                }
                return Ok(());
            }
            first = false;
        }
    }
}

/// One value, written as its CSV field.
struct Cell<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Cell<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Cell<'_> {
    fn value<E: serde::de::Error>(self, value: &Value) -> Result<(), E> {
        write_csv_value(self.out, value).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for Cell<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        write!(self.out, "{v}").map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        write!(self.out, "{v}").map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => write!(self.out, "{n}").map_err(E::custom),
            None => Ok(()),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if v.contains([',', '"', '\n', '\r']) {
            self.out.push(b'"');
            for part in v.split('"').enumerate() {
                if part.0 > 0 {
                    self.out.extend_from_slice(b"\"\"");
                }
                self.out.extend_from_slice(part.1.as_bytes());
            }
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(v.as_bytes());
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let value: Value =
            serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        self.value(&value)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let value: Value =
            serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.value(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::output::{Format, Printer};

    /// What the printer writes for the decoded rows.
    fn printed(json: &str) -> String {
        let rows: Vec<Vec<Value>> = serde_json::from_str(json).expect("rows");
        let mut printer = Printer::new(Format::Csv, Vec::new());
        printer.rows(&rows).expect("printed");
        String::from_utf8(printer.into_inner()).expect("utf-8")
    }

    #[test]
    fn csv_from_json_is_what_the_printer_writes_for_the_decoded_rows() {
        let json = r#"[[1,-2,18446744073709551615,0.1,1e300,-0.0,true,false,null],
            ["plain","with, comma","with \"quotes\"","line\nbreak","esc\\aped \u00e9 \u2713",""],
            [[1,[2,"a,b"]],{"k":"v","n":null},[],{}],
            [],
            ["2024-01-02","12.50","1970-01-01 00:00:00.000 +02:00"]]"#;
        let mut out = Vec::new();
        assert_eq!(rows_to_csv(json.as_bytes(), &mut out).expect("csv"), 5);
        assert_eq!(String::from_utf8(out).expect("utf-8"), printed(json));
    }

    #[test]
    fn an_empty_segment_has_no_rows_and_bad_json_is_an_error() {
        let mut out = Vec::new();
        assert_eq!(rows_to_csv(b"[]", &mut out).expect("csv"), 0);
        assert!(out.is_empty());
        assert!(rows_to_csv(b"[[1]", &mut out).is_err());
        assert!(rows_to_csv(b"[[1]] x", &mut out).is_err());
        assert!(rows_to_csv(b"[1]", &mut out).is_err());
    }
}
