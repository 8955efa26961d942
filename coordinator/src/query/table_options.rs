//! Table properties of `CREATE TABLE ... WITH (...)`: the format, location and CSV header of a
//! table over existing files.

use datafusion::sql::sqlparser::ast::{CreateTableOptions, Expr, SqlOption, Value};
use shoal_proto::client::QueryError;

use crate::catalog::TableFormat;
use crate::protocol::errors;
use crate::query::statements::name_of;

/// `WITH (format = 'PARQUET' | 'CSV', location = '...', header = true)`.
#[derive(Debug, Default)]
pub struct TableOptions {
    pub format: Option<TableFormat>,
    pub location: Option<String>,
    pub csv_header: bool,
}

impl TableOptions {
    pub fn from(options: &CreateTableOptions) -> Result<Self, QueryError> {
        let list = match options {
            CreateTableOptions::None => {
                return Ok(TableOptions {
                    csv_header: true,
                    ..Default::default()
                })
            }
            CreateTableOptions::With(list) => list,
            _ => {
                return Err(errors::not_supported(
                    "only WITH (...) table properties are supported",
                ))
            }
        };
        let mut out = TableOptions {
            csv_header: true,
            ..Default::default()
        };
        for option in list {
            let SqlOption::KeyValue { key, value } = option else {
                return Err(errors::syntax(
                    format!("expected key = value, found {option}"),
                    None,
                ));
            };
            let text = match value {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            match name_of(key).as_str() {
                "format" => {
                    out.format = Some(TableFormat::parse(&text).ok_or_else(|| {
                        errors::user(format!("unknown format {text:?}; use PARQUET or CSV"))
                    })?)
                }
                "location" | "external_location" => out.location = Some(text),
                "header" | "skip_header_line_count" => {
                    out.csv_header = text == "true" || text == "1"
                }
                other => return Err(errors::user(format!("unknown table property {other:?}"))),
            }
        }
        Ok(out)
    }
}
