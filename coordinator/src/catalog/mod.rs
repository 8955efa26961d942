//! The catalog in the state store: schemas, and tables with their format, location, Arrow
//! schema and (for tables Shoal writes) the list of data files of their current version. A
//! table's version changes only by compare-and-set on its key, so concurrent writers from
//! different coordinators never lose each other's files.

pub mod system;
pub mod writer;

use serde::Serialize;
use shoal_state_store::{CasOutcome, ReadConsistency, StateStore};

pub use shoal_engine::catalog::{
    CatalogSnapshot, DataFile, SchemaRecord, TableFormat, TableRecord,
};
pub use shoal_engine::provider;

use crate::error::{CoordinatorError, Result};

const SCHEMAS: &str = "catalog/schemas/";
const TABLES: &str = "catalog/tables/";

/// The schema every catalog has; it cannot be dropped.
pub const DEFAULT_SCHEMA: &str = "default";

fn schema_key(name: &str) -> String {
    format!("{SCHEMAS}{name}")
}

fn table_key(schema: &str, name: &str) -> String {
    format!("{TABLES}{schema}/{name}")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| CoordinatorError::Internal(format!("unreadable catalog entry: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| CoordinatorError::Internal(e.to_string()))
}

fn now_ms() -> u64 {
    shoal_seed_store::publisher::now_ms()
}

/// Read the whole catalog; linearizable, so a DDL that returned anywhere is visible.
pub async fn snapshot(store: &StateStore) -> Result<CatalogSnapshot> {
    let mut snapshot = CatalogSnapshot::default();
    snapshot.schemas.insert(
        DEFAULT_SCHEMA.into(),
        SchemaRecord {
            name: DEFAULT_SCHEMA.into(),
            created_ms: 0,
        },
    );
    for kv in store
        .scan("catalog/", ReadConsistency::Linearizable)
        .await?
    {
        if kv.key.starts_with(SCHEMAS) {
            let record: SchemaRecord = decode(&kv.value)?;
            snapshot.schemas.insert(record.name.clone(), record);
        } else if kv.key.starts_with(TABLES) {
            let record: TableRecord = decode(&kv.value)?;
            snapshot
                .tables
                .insert((record.schema.clone(), record.name.clone()), record);
        }
    }
    Ok(snapshot)
}

/// Create a schema; false if it existed (and `if_not_exists`).
pub async fn create_schema(store: &StateStore, name: &str, if_not_exists: bool) -> Result<bool> {
    if name == DEFAULT_SCHEMA {
        return exists_error(
            if_not_exists,
            format!("Schema 'shoal.{name}' already exists"),
        );
    }
    let record = SchemaRecord {
        name: name.to_string(),
        created_ms: now_ms(),
    };
    match store
        .compare_and_set(&schema_key(name), 0, encode(&record)?)
        .await?
    {
        CasOutcome::Swapped { .. } => Ok(true),
        CasOutcome::Conflict { .. } => exists_error(
            if_not_exists,
            format!("Schema 'shoal.{name}' already exists"),
        ),
    }
}

fn exists_error(tolerated: bool, message: String) -> Result<bool> {
    if tolerated {
        Ok(false)
    } else {
        Err(CoordinatorError::InvalidArgument(message))
    }
}

/// Drop an empty schema; false if it did not exist (and `if_exists`).
pub async fn drop_schema(store: &StateStore, name: &str, if_exists: bool) -> Result<bool> {
    if name == DEFAULT_SCHEMA {
        return Err(CoordinatorError::InvalidArgument(
            "the default schema cannot be dropped".into(),
        ));
    }
    let tables = store
        .scan(&format!("{TABLES}{name}/"), ReadConsistency::Linearizable)
        .await?;
    if !tables.is_empty() {
        return Err(CoordinatorError::InvalidArgument(format!(
            "Cannot drop non-empty schema 'shoal.{name}'"
        )));
    }
    if store.delete(&schema_key(name)).await? {
        Ok(true)
    } else if if_exists {
        Ok(false)
    } else {
        Err(CoordinatorError::NotFound(format!(
            "Schema 'shoal.{name}' does not exist"
        )))
    }
}

/// Create a table; false if it existed (and `if_not_exists`).
pub async fn create_table(
    store: &StateStore,
    record: &TableRecord,
    if_not_exists: bool,
) -> Result<bool> {
    let snapshot = snapshot(store).await?;
    if !snapshot.schemas.contains_key(&record.schema) {
        return Err(CoordinatorError::NotFound(format!(
            "Schema 'shoal.{}' does not exist",
            record.schema
        )));
    }
    let key = table_key(&record.schema, &record.name);
    match store.compare_and_set(&key, 0, encode(record)?).await? {
        CasOutcome::Swapped { .. } => Ok(true),
        CasOutcome::Conflict { .. } => exists_error(
            if_not_exists,
            format!(
                "Table 'shoal.{}.{}' already exists",
                record.schema, record.name
            ),
        ),
    }
}

/// Drop a table; returns its last record if it existed.
pub async fn drop_table(
    store: &StateStore,
    schema: &str,
    name: &str,
) -> Result<Option<TableRecord>> {
    let key = table_key(schema, name);
    let Some(kv) = store.get(&key, ReadConsistency::Linearizable).await? else {
        return Ok(None);
    };
    let record: TableRecord = decode(&kv.value)?;
    store.delete(&key).await?;
    Ok(Some(record))
}

/// Add `files` holding `rows` rows to a table as its next version, retrying on conflicts with
/// concurrent writers until it lands.
pub async fn append_files(
    store: &StateStore,
    schema: &str,
    name: &str,
    files: Vec<DataFile>,
    rows: u64,
) -> Result<u64> {
    let key = table_key(schema, name);
    loop {
        let Some(kv) = store.get(&key, ReadConsistency::Linearizable).await? else {
            return Err(CoordinatorError::NotFound(format!(
                "Table 'shoal.{schema}.{name}' was dropped while being written"
            )));
        };
        let mut record: TableRecord = decode(&kv.value)?;
        record.version += 1;
        record.rows += rows;
        record.bytes += files.iter().map(|f| f.bytes).sum::<u64>();
        record.files.extend(files.iter().cloned());
        match store
            .compare_and_set(&key, kv.mod_revision, encode(&record)?)
            .await?
        {
            CasOutcome::Swapped { .. } => return Ok(record.version),
            CasOutcome::Conflict { .. } => {
                tracing::debug!(table = %key, "concurrent change to the table; retrying the commit");
            }
        }
    }
}
