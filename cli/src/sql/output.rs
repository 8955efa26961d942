//! Printing results: an aligned table (buffered, to size the columns), or CSV, TSV and JSON
//! lines streamed as pages arrive.

use std::io::Write;

use serde_json::Value;
use shoal_proto::client::Column;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
}

/// Writes one statement's result in a format.
pub struct Printer<W: Write> {
    format: Format,
    out: W,
    columns: Vec<String>,
    header_done: bool,
    /// Table rows, kept until the end to size the columns.
    table: Vec<Vec<String>>,
}

/// A value as text: strings as they are, NULL for null (empty in CSV/TSV), JSON otherwise.
fn text(value: &Value, null: &str) -> String {
    match value {
        Value::Null => null.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// One CSV field, written without building it first (results can have millions of rows).
pub(crate) fn write_csv_value<W: Write>(out: &mut W, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Number(n) => write!(out, "{n}"),
        Value::String(s) if !s.contains([',', '"', '\n', '\r']) => out.write_all(s.as_bytes()),
        other => out.write_all(csv_field(&text(other, "")).as_bytes()),
    }
}

fn tsv_field(field: &str) -> String {
    field
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Printer {
            format,
            out,
            columns: Vec::new(),
            header_done: false,
            table: Vec::new(),
        }
    }

    pub fn columns(&mut self, columns: &[Column]) -> std::io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        self.columns = columns.iter().map(|c| c.name.clone()).collect();
        match self.format {
            Format::Csv => {
                let line: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
                writeln!(self.out, "{}", line.join(","))
            }
            Format::Tsv => {
                let line: Vec<String> = self.columns.iter().map(|c| tsv_field(c)).collect();
                writeln!(self.out, "{}", line.join("\t"))
            }
            Format::Table | Format::Json => Ok(()),
        }
    }

    pub fn rows(&mut self, rows: &[Vec<Value>]) -> std::io::Result<()> {
        for row in rows {
            match self.format {
                Format::Table => self
                    .table
                    .push(row.iter().map(|v| text(v, "NULL")).collect()),
                Format::Csv => {
                    for (i, value) in row.iter().enumerate() {
                        if i > 0 {
                            self.out.write_all(b",")?;
                        }
                        write_csv_value(&mut self.out, value)?;
                    }
                    self.out.write_all(b"\n")?;
                }
                Format::Tsv => {
                    let line: Vec<String> = row.iter().map(|v| tsv_field(&text(v, ""))).collect();
                    writeln!(self.out, "{}", line.join("\t"))?;
                }
                Format::Json => {
                    // Written by hand to keep the columns in their order.
                    let fields: Vec<String> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(name, value)| format!("{}:{value}", Value::from(name.as_str())))
                        .collect();
                    writeln!(self.out, "{{{}}}", fields.join(","))?;
                }
            }
        }
        Ok(())
    }

    /// Rows already written as CSV lines (by [`super::csv::rows_to_csv`]).
    pub fn csv_lines(&mut self, text: &[u8]) -> std::io::Result<()> {
        self.out.write_all(text)
    }

    /// End the result: the table is drawn now, with the row count.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.format == Format::Table && !self.columns.is_empty() {
            self.draw_table()?;
        }
        self.out.flush()
    }

    fn draw_table(&mut self) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.table {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!(" {cell:<width$} "))
                .collect::<Vec<_>>()
                .join("|")
        };
        writeln!(self.out, "{}", line(&self.columns).trim_end())?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        writeln!(self.out, "{}", rule.join("+"))?;
        for row in &self.table {
            writeln!(self.out, "{}", line(row).trim_end())?;
        }
        let count = self.table.len();
        writeln!(
            self.out,
            "({count} row{})",
            if count == 1 { "" } else { "s" }
        )?;
        self.table.clear();
        Ok(())
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::client::TypeSignature;

    fn columns(names: &[&str]) -> Vec<Column> {
        names
            .iter()
            .map(|name| Column {
                name: name.to_string(),
                type_name: "varchar".into(),
                type_signature: TypeSignature {
                    raw_type: "varchar".into(),
                    arguments: Vec::new(),
                },
            })
            .collect()
    }

    fn print(format: Format, rows: Vec<Vec<Value>>) -> String {
        let mut printer = Printer::new(format, Vec::new());
        printer.columns(&columns(&["id", "name"])).expect("columns");
        printer.rows(&rows).expect("rows");
        printer.finish().expect("finish");
        String::from_utf8(printer.into_inner()).expect("utf-8")
    }

    fn sample() -> Vec<Vec<Value>> {
        vec![
            vec![Value::from(1), Value::from("a, \"b\"")],
            vec![Value::from(22), Value::Null],
        ]
    }

    #[test]
    fn table_aligns_columns_and_counts_rows() {
        assert_eq!(
            print(Format::Table, sample()),
            " id | name\n----+--------\n 1  | a, \"b\"\n 22 | NULL\n(2 rows)\n"
        );
    }

    #[test]
    fn csv_quotes_and_leaves_null_empty() {
        assert_eq!(
            print(Format::Csv, sample()),
            "id,name\n1,\"a, \"\"b\"\"\"\n22,\n"
        );
    }

    #[test]
    fn tsv_and_json_lines() {
        assert_eq!(
            print(Format::Tsv, sample()),
            "id\tname\n1\ta, \"b\"\n22\t\n"
        );
        assert_eq!(
            print(Format::Json, sample()),
            "{\"id\":1,\"name\":\"a, \\\"b\\\"\"}\n{\"id\":22,\"name\":null}\n"
        );
    }
}
