//! Catalog `system`, schema `jdbc`: the tables Trino's JDBC driver reads to answer
//! `DatabaseMetaData` (catalogs, schemas, tables, columns, table types, types, and the empty
//! ones it also asks for), built from the catalog as the user may see it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use crate::catalog::CatalogSnapshot;
use crate::protocol::types::{signature, sql_name};

/// A column of a metadata table: its name and whether it holds numbers.
type Columns<'a> = &'a [(&'a str, bool)];

/// One cell: text or a number.
enum Cell {
    Text(Option<String>),
    Number(Option<i64>),
}

fn t(text: &str) -> Cell {
    Cell::Text(Some(text.to_string()))
}

fn n(number: i64) -> Cell {
    Cell::Number(Some(number))
}

const NULL_TEXT: Cell = Cell::Text(None);
const NULL_NUMBER: Cell = Cell::Number(None);

fn table(columns: Columns, rows: Vec<Vec<Cell>>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, number)| {
                let kind = if *number {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                Field::new(*name, kind, true)
            })
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, number))| {
            if *number {
                Arc::new(Int64Array::from(
                    rows.iter()
                        .map(|r| match &r[i] {
                            Cell::Number(v) => *v,
                            Cell::Text(_) => None,
                        })
                        .collect::<Vec<_>>(),
                )) as ArrayRef
            } else {
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| match &r[i] {
                            Cell::Text(v) => v.clone(),
                            Cell::Number(_) => None,
                        })
                        .collect::<Vec<_>>(),
                ))
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// The JDBC type code of a Trino type name (`java.sql.Types`).
fn jdbc_type(name: &str) -> i64 {
    let base = name.split('(').next().unwrap_or(name);
    match base {
        "boolean" => 16,
        "tinyint" => -6,
        "smallint" => 5,
        "integer" => 4,
        "bigint" => -5,
        "real" => 7,
        "double" => 8,
        "decimal" => 3,
        "varchar" => 12,
        "char" => 1,
        "varbinary" => -3,
        "date" => 91,
        "time" => 92,
        "timestamp" if name.contains("with time zone") => 2014,
        "timestamp" => 93,
        "array" => 2003,
        _ => 2000,
    }
}

const TYPES: [&str; 13] = [
    "boolean",
    "tinyint",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double",
    "decimal",
    "varchar",
    "varbinary",
    "date",
    "time",
    "timestamp",
];

/// Schema `jdbc` of catalog `system` over `snapshot` (what the user may see).
pub fn schema(snapshot: &CatalogSnapshot, catalogs: &[&str]) -> Result<Arc<MemorySchemaProvider>> {
    let schema = MemorySchemaProvider::new();
    let catalog_rows = catalogs.iter().map(|c| vec![t(c)]).collect();
    schema.register_table(
        "catalogs".into(),
        table(&[("table_cat", false)], catalog_rows)?,
    )?;
    let mut schema_rows: Vec<Vec<Cell>> = snapshot
        .schemas
        .keys()
        .map(|s| vec![t(s), t("shoal")])
        .collect();
    schema_rows.push(vec![t("information_schema"), t("shoal")]);
    schema.register_table(
        "schemas".into(),
        table(
            &[("table_schem", false), ("table_catalog", false)],
            schema_rows,
        )?,
    )?;
    let names = snapshot
        .tables
        .keys()
        .map(|key| (key, "TABLE"))
        .chain(snapshot.views.keys().map(|key| (key, "VIEW")));
    let table_rows = names
        .map(|((schema, name), kind)| {
            vec![
                t("shoal"),
                t(schema),
                t(name),
                t(kind),
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
            ]
        })
        .collect();
    schema.register_table(
        "tables".into(),
        table(
            &[
                ("table_cat", false),
                ("table_schem", false),
                ("table_name", false),
                ("table_type", false),
                ("remarks", false),
                ("type_cat", false),
                ("type_schem", false),
                ("type_name", false),
                ("self_referencing_col_name", false),
                ("ref_generation", false),
            ],
            table_rows,
        )?,
    )?;
    let mut column_rows = Vec::new();
    for record in snapshot.tables.values() {
        for (position, field) in record.arrow_schema.fields().iter().enumerate() {
            let type_name = sql_name(&signature(field.data_type()));
            let nullable = if field.is_nullable() { 1 } else { 0 };
            column_rows.push(vec![
                t("shoal"),
                t(&record.schema),
                t(&record.name),
                t(field.name()),
                n(jdbc_type(&type_name)),
                t(&type_name),
                NULL_NUMBER,
                NULL_NUMBER,
                NULL_NUMBER,
                n(10),
                n(nullable),
                NULL_TEXT,
                NULL_TEXT,
                NULL_NUMBER,
                NULL_NUMBER,
                NULL_NUMBER,
                n(position as i64 + 1),
                t(if field.is_nullable() { "YES" } else { "NO" }),
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
                NULL_NUMBER,
                t("NO"),
                t("NO"),
            ]);
        }
    }
    schema.register_table(
        "columns".into(),
        table(
            &[
                ("table_cat", false),
                ("table_schem", false),
                ("table_name", false),
                ("column_name", false),
                ("data_type", true),
                ("type_name", false),
                ("column_size", true),
                ("buffer_length", true),
                ("decimal_digits", true),
                ("num_prec_radix", true),
                ("nullable", true),
                ("remarks", false),
                ("column_def", false),
                ("sql_data_type", true),
                ("sql_datetime_sub", true),
                ("char_octet_length", true),
                ("ordinal_position", true),
                ("is_nullable", false),
                ("scope_catalog", false),
                ("scope_schema", false),
                ("scope_table", false),
                ("source_data_type", true),
                ("is_autoincrement", false),
                ("is_generatedcolumn", false),
            ],
            column_rows,
        )?,
    )?;
    schema.register_table(
        "table_types".into(),
        table(
            &[("table_type", false)],
            vec![vec![t("TABLE")], vec![t("VIEW")]],
        )?,
    )?;
    let type_rows = TYPES
        .iter()
        .map(|name| {
            vec![
                t(name),
                n(jdbc_type(name)),
                NULL_NUMBER,
                NULL_TEXT,
                NULL_TEXT,
                NULL_TEXT,
                n(1),
                t(if *name == "varchar" { "true" } else { "false" }),
                n(3),
                t("false"),
                t("false"),
                t("false"),
                NULL_TEXT,
                NULL_NUMBER,
                NULL_NUMBER,
                NULL_NUMBER,
                NULL_NUMBER,
                NULL_NUMBER,
            ]
        })
        .collect();
    schema.register_table(
        "types".into(),
        table(
            &[
                ("type_name", false),
                ("data_type", true),
                ("precision", true),
                ("literal_prefix", false),
                ("literal_suffix", false),
                ("create_params", false),
                ("nullable", true),
                ("case_sensitive", false),
                ("searchable", true),
                ("unsigned_attribute", false),
                ("fixed_prec_scale", false),
                ("auto_increment", false),
                ("local_type_name", false),
                ("minimum_scale", true),
                ("maximum_scale", true),
                ("sql_data_type", true),
                ("sql_datetime_sub", true),
                ("num_prec_radix", true),
            ],
            type_rows,
        )?,
    )?;
    // Asked for by DatabaseMetaData too; Shoal has none of these.
    for (name, columns) in [
        (
            "procedures",
            &[
                ("procedure_cat", false),
                ("procedure_schem", false),
                ("procedure_name", false),
                ("remarks", false),
                ("procedure_type", true),
                ("specific_name", false),
            ][..],
        ),
        (
            "pseudo_columns",
            &[
                ("table_cat", false),
                ("table_schem", false),
                ("table_name", false),
                ("column_name", false),
            ][..],
        ),
        (
            "udts",
            &[
                ("type_cat", false),
                ("type_schem", false),
                ("type_name", false),
                ("class_name", false),
                ("data_type", true),
                ("remarks", false),
                ("base_type", true),
            ][..],
        ),
        (
            "super_tables",
            &[
                ("table_cat", false),
                ("table_schem", false),
                ("table_name", false),
                ("supertable_name", false),
            ][..],
        ),
    ] {
        schema.register_table(name.into(), table(columns, Vec::new())?)?;
    }
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_type_codes_are_javas() {
        assert_eq!(jdbc_type("bigint"), -5);
        assert_eq!(jdbc_type("varchar"), 12);
        assert_eq!(jdbc_type("decimal(10,2)"), 3);
        assert_eq!(jdbc_type("timestamp(3)"), 93);
        assert_eq!(jdbc_type("timestamp(3) with time zone"), 2014);
        assert_eq!(jdbc_type("map(varchar,bigint)"), 2000);
    }
}
