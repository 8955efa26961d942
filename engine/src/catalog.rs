//! The catalog's records as every role sees them: schemas, and tables with their format,
//! location, Arrow schema and data files. A query carries the records it resolved, so the node
//! that runs it reads exactly the versions the coordinator saw.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    Parquet,
    Csv,
}

impl TableFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "parquet" => Some(TableFormat::Parquet),
            "csv" => Some(TableFormat::Csv),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Parquet => ".parquet",
            TableFormat::Csv => ".csv",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub name: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub schema: String,
    pub name: String,
    pub format: TableFormat,
    /// A directory (or file) of existing data for external tables; the table's warehouse
    /// directory for tables Shoal writes.
    pub location: String,
    /// Shoal writes the table's files and lists them in `files`.
    pub managed: bool,
    pub csv_header: bool,
    pub arrow_schema: Schema,
    pub files: Vec<DataFile>,
    pub version: u64,
    pub rows: u64,
    pub bytes: u64,
    pub created_ms: u64,
}

impl TableRecord {
    pub fn schema_ref(&self) -> SchemaRef {
        SchemaRef::new(self.arrow_schema.clone())
    }
}

/// The catalog as of one moment: what a query resolves its tables against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogSnapshot {
    pub schemas: BTreeMap<String, SchemaRecord>,
    pub tables: BTreeMap<(String, String), TableRecord>,
}

impl CatalogSnapshot {
    /// The snapshot as plain lists, for sending it to another node.
    pub fn to_parts(&self) -> (Vec<SchemaRecord>, Vec<TableRecord>) {
        (
            self.schemas.values().cloned().collect(),
            self.tables.values().cloned().collect(),
        )
    }

    pub fn from_parts(schemas: Vec<SchemaRecord>, tables: Vec<TableRecord>) -> Self {
        CatalogSnapshot {
            schemas: schemas.into_iter().map(|s| (s.name.clone(), s)).collect(),
            tables: tables
                .into_iter()
                .map(|t| ((t.schema.clone(), t.name.clone()), t))
                .collect(),
        }
    }
}
