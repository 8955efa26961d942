//! Trino's `information_schema` of catalog `shoal`, made from a query's catalog snapshot
//! (and of catalog `system`, from its tables):
//! `schemata`, `tables`, `columns` (with Trino's type names, `comment` and `extra_info`, the
//! columns SQLAlchemy, dbt and JDBC tools read) and `views`.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
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

/// The rows of one catalog's `information_schema`, table by table.
struct Builder {
    catalog: String,
    schemata: Rows,
    tables: Rows,
    columns: Rows,
    views: Rows,
}

impl Builder {
    /// The rows for `catalog`, whose schemas are `schemas` (this one is added).
    fn new(catalog: &str, schemas: &[&str]) -> Self {
        let mut builder = Self {
            catalog: catalog.to_string(),
            schemata: Rows::default(),
            tables: Rows::default(),
            columns: Rows::default(),
            views: Rows::default(),
        };
        let mut schemas = schemas.to_vec();
        schemas.push(SCHEMA);
        schemas.sort_unstable();
        schemas.dedup();
        for schema in schemas {
            builder.schemata.push(&[text(catalog), text(schema)]);
        }
        for (name, table_columns) in TABLES {
            let columns = table_columns.iter().map(|column| {
                let data_type = if *column == "ordinal_position" {
                    "bigint"
                } else {
                    "varchar"
                };
                (column.to_string(), true, data_type.to_string())
            });
            builder.table(SCHEMA, name, "BASE TABLE", columns);
        }
        builder
    }

    /// Table (or view) `schema.name` of type `kind` and its columns (name, nullable, Trino
    /// type name).
    fn table(
        &mut self,
        schema: &str,
        name: &str,
        kind: &str,
        columns: impl Iterator<Item = (String, bool, String)>,
    ) {
        let catalog = self.catalog.as_str();
        self.tables
            .push(&[text(catalog), text(schema), text(name), text(kind)]);
        for (position, (column, nullable, data_type)) in columns.enumerate() {
            self.columns.ordinal.push(position as i64 + 1);
            self.columns.push(&[
                text(catalog),
                text(schema),
                text(name),
                text(&column),
                None,
                text(if nullable { "YES" } else { "NO" }),
                text(&data_type),
                None,
                None,
            ]);
        }
    }

    /// The columns of an Arrow schema, with Trino's type names.
    fn fields(schema: &Schema) -> impl Iterator<Item = (String, bool, String)> + '_ {
        schema.fields().iter().map(|field| {
            let data_type = types::sql_name(&types::signature(field.data_type()));
            (field.name().clone(), field.is_nullable(), data_type)
        })
    }

    fn finish(self) -> Result<Arc<dyn SchemaProvider>> {
        let provider = MemorySchemaProvider::new();
        let rows = [self.schemata, self.tables, self.columns, self.views];
        for ((name, table_columns), rows) in TABLES.into_iter().zip(rows) {
            provider.register_table(name.to_string(), table(table_columns, rows)?)?;
        }
        Ok(Arc::new(provider))
    }
}

fn text(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// `information_schema` of catalog `shoal`, for the schemas, tables and views of `snapshot`
/// but the tables of `unlisted`.
pub fn provider(
    snapshot: &CatalogSnapshot,
    unlisted: &BTreeSet<(String, String)>,
) -> Result<Arc<dyn SchemaProvider>> {
    let schemas: Vec<&str> = snapshot.schemas.keys().map(String::as_str).collect();
    let mut builder = Builder::new(CATALOG, &schemas);
    for ((schema, name), record) in &snapshot.tables {
        if unlisted.contains(&(schema.clone(), name.clone())) {
            continue;
        }
        let table_schema = record.schema_ref();
        builder.table(schema, name, "BASE TABLE", Builder::fields(&table_schema));
    }
    for ((schema, name), view) in &snapshot.views {
        let columns = view
            .columns
            .iter()
            .map(|(column, data_type)| (column.clone(), true, data_type.clone()));
        builder.table(schema, name, "VIEW", columns);
        builder
            .views
            .push(&[text(CATALOG), text(schema), text(name), text(&view.sql)]);
    }
    builder.finish()
}

/// `information_schema` of another catalog (such as `system`): its schemas, each with its
/// tables and their Arrow schemas.
pub fn of_tables(
    catalog: &str,
    schemas: &[(&str, Vec<(String, SchemaRef)>)],
) -> Result<Arc<dyn SchemaProvider>> {
    let names: Vec<&str> = schemas.iter().map(|(name, _)| *name).collect();
    let mut builder = Builder::new(catalog, &names);
    for (schema, tables) in schemas {
        for (name, table_schema) in tables {
            builder.table(schema, name, "BASE TABLE", Builder::fields(table_schema));
        }
    }
    builder.finish()
}
