//! The catalog in the state store, under typed key spaces:
//!
//! - `catalog/schemas/<schema>`: a schema;
//! - `catalog/tables/<schema>/<table>`: a table's record (id, format, location, Arrow schema,
//!   version, row and byte counts), small and of fixed size whatever the table holds;
//! - `catalog/files/<table id>/<version>`: the data files one commit added to a managed table;
//! - `catalog/commits/<query id>`: that a query's write committed (or was fenced off), so a
//!   commit applies exactly once;
//! - `catalog/dropped/<table id>`: a dropped managed table whose files are still to be removed;
//! - `catalog/dropping/<schema>`: a schema being dropped (no table may be created in it).
//!
//! Names are data: each is one key segment with `%` and `/` escaped, never a path. Every
//! change goes through [`commit`]; reads resolve only the tables a statement uses.

pub mod alter;
pub mod cleanup;
pub mod commit;
pub mod error;
pub mod jdbc;
pub mod rewrite;
pub mod system;
pub mod views;
pub mod warehouse;
pub mod writer;

use serde::{Deserialize, Serialize};
use shoal_state_store::{ReadConsistency, StateStore};

pub use shoal_engine::catalog::{
    CatalogSnapshot, DataFile, SchemaRecord, TableFormat, TableRecord,
};
pub use shoal_engine::provider;

pub use error::{CatalogError, CatalogResult};

use crate::error::{CoordinatorError, Result};

const SCHEMAS: &str = "catalog/schemas/";
const TABLES: &str = "catalog/tables/";
const FILES: &str = "catalog/files/";
const COMMITS: &str = "catalog/commits/";
const DROPPED: &str = "catalog/dropped/";
const DROPPING: &str = "catalog/dropping/";

/// The schema every catalog has; it cannot be dropped.
pub const DEFAULT_SCHEMA: &str = "default";

/// The longest schema or table name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// Refuse names no table or schema may have: empty, with NUL, or longer than
/// [`MAX_NAME_BYTES`]. Anything else (`/`, `..`, spaces, any letters) is a fine name.
pub fn check_name(kind: &str, name: &str) -> CatalogResult<()> {
    let refuse = |why: &str| Err(CatalogError::Invalid(format!("invalid {kind} name: {why}")));
    if name.is_empty() {
        return refuse("a name must not be empty");
    }
    if name.contains('\0') {
        return refuse("a name must not contain the NUL character");
    }
    if name.len() > MAX_NAME_BYTES {
        return refuse(&format!(
            "a name may have at most {MAX_NAME_BYTES} bytes, this one has {}",
            name.len()
        ));
    }
    Ok(())
}

/// `name` as one key segment: `%` and `/` escaped, so no two names share a key.
fn segment(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn schema_key(name: &str) -> String {
    format!("{SCHEMAS}{}", segment(name))
}

fn tables_of(schema: &str) -> String {
    format!("{TABLES}{}/", segment(schema))
}

fn table_key(schema: &str, name: &str) -> String {
    format!("{}{}", tables_of(schema), segment(name))
}

fn files_prefix(table_id: &str) -> String {
    format!("{FILES}{table_id}/")
}

fn files_key(table_id: &str, version: u64) -> String {
    format!("{}{version:020}", files_prefix(table_id))
}

fn commit_key(query_id: &str) -> String {
    format!("{COMMITS}{query_id}")
}

/// Present while a schema is being dropped: no table may be created in it then.
fn dropping_key(schema: &str) -> String {
    format!("{DROPPING}{}", segment(schema))
}

fn dropped_key(table_id: &str) -> String {
    format!("{DROPPED}{table_id}")
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

/// The files one commit added to a managed table, written by one attempt of one query, and
/// (a DELETE, UPDATE or MERGE: copy-on-write) the files of earlier commits it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBatch {
    pub version: u64,
    pub query_id: String,
    pub attempt: u32,
    pub files: Vec<DataFile>,
    pub rows: u64,
    pub bytes: u64,
    /// Paths of earlier files this version no longer has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The `removed` files are deleted from the warehouse (see `cleanup`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed_collected: bool,
}

/// What a statement reads: every table's record (for `information_schema`, SHOW, DESCRIBE),
/// and the tables whose data it scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub all_tables: bool,
    pub tables: Vec<(String, String)>,
    /// It also reads another catalog (`system`), which only coordinators have.
    pub system: bool,
}

impl Reads {
    pub fn everything() -> Self {
        Reads {
            all_tables: true,
            ..Reads::default()
        }
    }
}

/// The catalog a statement sees: every schema, the tables of `reads` with the data files of
/// their current version, and (if asked) every other table's record without its files. One
/// linearizable barrier, so a DDL that returned anywhere is visible, then local reads.
pub async fn resolve(store: &StateStore, reads: &Reads) -> Result<CatalogSnapshot> {
    store.revision(ReadConsistency::Linearizable).await?;
    let local = ReadConsistency::Local;
    let mut snapshot = CatalogSnapshot::default();
    snapshot.schemas.insert(
        DEFAULT_SCHEMA.into(),
        SchemaRecord {
            name: DEFAULT_SCHEMA.into(),
            created_ms: 0,
        },
    );
    for kv in store.scan(SCHEMAS, local).await? {
        let record: SchemaRecord = decode(&kv.value)?;
        snapshot.schemas.insert(record.name.clone(), record);
    }
    if reads.all_tables {
        for kv in store.scan(TABLES, local).await? {
            let record: TableRecord = decode(&kv.value)?;
            snapshot
                .tables
                .insert((record.schema.clone(), record.name.clone()), record);
        }
        for view in views::all(store, local).await? {
            snapshot.views.insert(
                (view.schema.clone(), view.name.clone()),
                shoal_engine::catalog::ViewDefinition {
                    sql: view.sql,
                    columns: view.columns,
                },
            );
        }
    }
    for (schema, name) in &reads.tables {
        let record = match snapshot.tables.remove(&(schema.clone(), name.clone())) {
            Some(record) => Some(record),
            None => match store.get(&table_key(schema, name), local).await? {
                Some(kv) => Some(decode::<TableRecord>(&kv.value)?),
                None => None,
            },
        };
        let Some(mut record) = record else { continue };
        if record.managed {
            record.files = files_of(store, &record, local).await?;
        }
        snapshot
            .tables
            .insert((record.schema.clone(), record.name.clone()), record);
    }
    Ok(snapshot)
}

/// The data files of `table`'s version: those every commit up to it added, less those a
/// later one of them replaced (commits are scanned in version order).
pub(crate) async fn files_of(
    store: &StateStore,
    table: &TableRecord,
    consistency: ReadConsistency,
) -> Result<Vec<DataFile>> {
    let mut files = Vec::new();
    for kv in store.scan(&files_prefix(&table.id), consistency).await? {
        let batch: FileBatch = decode(&kv.value)?;
        if batch.version <= table.version {
            if !batch.removed.is_empty() {
                let removed: std::collections::BTreeSet<&str> =
                    batch.removed.iter().map(String::as_str).collect();
                files.retain(|f: &DataFile| !removed.contains(f.path.as_str()));
            }
            files.extend(batch.files);
        }
    }
    Ok(files)
}

/// One table's record as the cluster has it now, if it exists.
pub async fn table(store: &StateStore, schema: &str, name: &str) -> Result<Option<TableRecord>> {
    match store
        .get(&table_key(schema, name), ReadConsistency::Linearizable)
        .await?
    {
        Some(kv) => decode(&kv.value).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_share_a_key() {
        let pairs = [("a/b", "c"), ("a", "b/c"), ("a%2Fb", "c"), ("a", "b%2Fc")];
        let keys: std::collections::BTreeSet<String> =
            pairs.iter().map(|(s, t)| table_key(s, t)).collect();
        assert_eq!(keys.len(), pairs.len(), "{keys:?}");
        assert!(!table_key("a", "b").starts_with(&tables_of("a/b")));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_name("table", "").is_err());
        assert!(check_name("table", "a\0b").is_err());
        assert!(check_name("table", &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        for fine in [
            "/srv/precious",
            "..",
            "../..",
            "a/b",
            ".",
            "Grüße 🐟",
            "UPPER",
        ] {
            assert!(check_name("table", fine).is_ok(), "{fine}");
        }
    }
}
