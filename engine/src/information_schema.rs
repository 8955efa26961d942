//! Trino's `information_schema` of catalog `shoal`, made from a query's catalog snapshot:
//! `schemata`, `tables`, `columns` (with Trino's type names, `comment` and `extra_info`, the
//! columns SQLAlchemy, dbt and JDBC tools read) and `views`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider};
use datafusion::error::Result;

use crate::catalog::CatalogSnapshot;
use crate::provider::CATALOG;
use crate::types;

pub const SCHEMA: &str = "information_schema";

/// The tables of this schema, each with its columns (all text but `ordinal_position`).
const TABLES: [(&str, &[&str]); 4] = [
    ("schemata", &["catalog_name", "schema_name"]),
    (
        "tables",
        &["table_catalog", "table_schema", "table_name", "table_type"],
    ),
    (
        "columns",
        &[
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "ordinal_position",
            "column_default",
            "is_nullable",
            "data_type",
            "comment",
            "extra_info",
        ],
    ),
    (
        "views",
        &[
            "table_catalog",
            "table_schema",
            "table_name",
            "view_definition",
        ],
    ),
];

/// One table's rows, column by column.
#[derive(Default)]
struct Rows {
    text: Vec<Vec<Option<String>>>,
    ordinal: Vec<i64>,
}

impl Rows {
    /// A row of `columns`: column `column`, at `position` (from 0), of table `schema.table`.
    fn column(
        &mut self,
        schema: &str,
        table: &str,
        position: usize,
        column: &str,
        nullable: bool,
        data_type: &str,
    ) {
        let text = |s: &str| Some(s.to_string());
        self.ordinal.push(position as i64 + 1);
        self.push(&[
            text(CATALOG),
            text(schema),
            text(table),
            text(column),
            None,
            text(if nullable { "YES" } else { "NO" }),
            text(data_type),
            None,
            None,
        ]);
    }

    fn push(&mut self, values: &[Option<String>]) {
        if self.text.is_empty() {
            self.text = vec![Vec::new(); values.len()];
        }
        for (column, value) in self.text.iter_mut().zip(values) {
            column.push(value.clone());
        }
    }
}

fn table(columns: &[&str], rows: Rows) -> Result<Arc<MemTable>> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|name| {
            let data_type = if *name == "ordinal_position" {
                DataType::Int64
            } else {
                DataType::Utf8
            };
            Field::new(*name, data_type, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut text = rows.text.into_iter();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|name| -> ArrayRef {
            if *name == "ordinal_position" {
                Arc::new(Int64Array::from(rows.ordinal.clone()))
            } else {
                Arc::new(StringArray::from(text.next().unwrap_or_default()))
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `information_schema` for the schemas and tables of `snapshot`.
pub fn provider(snapshot: &CatalogSnapshot) -> Result<Arc<dyn SchemaProvider>> {
    let text = |s: &str| Some(s.to_string());
    let mut schemata = Rows::default();
    let mut tables = Rows::default();
    let mut columns = Rows::default();
    let mut schemas: Vec<&str> = snapshot.schemas.keys().map(String::as_str).collect();
    schemas.push(SCHEMA);
    schemas.sort_unstable();
    schemas.dedup();
    for schema in &schemas {
        schemata.push(&[text(CATALOG), text(schema)]);
    }
    for (name, table_columns) in TABLES {
        tables.push(&[text(CATALOG), text(SCHEMA), text(name), text("BASE TABLE")]);
        for (position, column) in table_columns.iter().enumerate() {
            let data_type = if *column == "ordinal_position" {
                "bigint"
            } else {
                "varchar"
            };
            columns.column(SCHEMA, name, position, column, true, data_type);
        }
    }
    for ((schema, name), record) in &snapshot.tables {
        tables.push(&[text(CATALOG), text(schema), text(name), text("BASE TABLE")]);
        for (position, field) in record.schema_ref().fields().iter().enumerate() {
            let data_type = types::sql_name(&types::signature(field.data_type()));
            let nullable = field.is_nullable();
            columns.column(schema, name, position, field.name(), nullable, &data_type);
        }
    }
    let mut views = Rows::default();
    for ((schema, name), view) in &snapshot.views {
        tables.push(&[text(CATALOG), text(schema), text(name), text("VIEW")]);
        views.push(&[text(CATALOG), text(schema), text(name), text(&view.sql)]);
        for (position, (column, data_type)) in view.columns.iter().enumerate() {
            columns.column(schema, name, position, column, true, data_type);
        }
    }
    let provider = MemorySchemaProvider::new();
    for ((name, table_columns), rows) in TABLES.into_iter().zip([schemata, tables, columns, views])
    {
        provider.register_table(name.to_string(), table(table_columns, rows)?)?;
    }
    Ok(Arc::new(provider))
}
