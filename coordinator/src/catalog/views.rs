//! Views in the replicated catalog: each is its query as the client wrote it and the columns
//! it answers with, under `catalog/views/<schema>/<name>`. A view shares its schema's names
//! with the tables: there is never a table and a view of one name.

use serde::{Deserialize, Serialize};
use shoal_state_store::{Condition, Op, ReadConsistency, StateStore, TxnRequest};

use super::{
    check_name, decode, encode, schema_key, segment, table_key, CatalogError, CatalogResult,
};

const VIEWS: &str = "catalog/views/";

/// Whose privileges a view's query runs with (`SECURITY DEFINER | INVOKER`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewSecurity {
    /// Its owner's, Trino's default: a reader needs only the right to read the view.
    #[default]
    Definer,
    /// The reader's: a reader needs the right to read the view and what it reads.
    Invoker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    pub schema: String,
    pub name: String,
    /// The view's query, as written.
    pub sql: String,
    /// Its columns: name and Trino type name.
    pub columns: Vec<(String, String)>,
    pub owner: String,
    pub created_ms: u64,
    /// Views recorded before views had a security mode are DEFINER views, Trino's default.
    #[serde(default)]
    pub security: ViewSecurity,
}

/// The key of view `schema.name` (tables' creation requires it absent).
pub(crate) fn key(schema: &str, name: &str) -> String {
    view_key(schema, name)
}

fn view_key(schema: &str, name: &str) -> String {
    format!("{VIEWS}{}/{}", segment(schema), segment(name))
}

/// Create view `record` (or replace the one of its name, `or_replace`).
pub async fn create_view(
    store: &StateStore,
    record: &ViewRecord,
    or_replace: bool,
) -> CatalogResult<()> {
    check_name("schema", &record.schema)?;
    check_name("view", &record.name)?;
    let key = view_key(&record.schema, &record.name);
    let mut conditions = vec![
        Condition::Exists {
            key: schema_key(&record.schema),
            exists: true,
        },
        Condition::Exists {
            key: table_key(&record.schema, &record.name),
            exists: false,
        },
    ];
    if !or_replace {
        conditions.push(Condition::Exists {
            key: key.clone(),
            exists: false,
        });
    }
    let request = TxnRequest {
        conditions,
        success: vec![Op::Put {
            key: key.clone(),
            value: encode(record)?,
        }],
        failure: Vec::new(),
    };
    if store.txn(request).await?.succeeded {
        return Ok(());
    }
    let linearizable = ReadConsistency::Linearizable;
    if store
        .get(&schema_key(&record.schema), linearizable)
        .await?
        .is_none()
    {
        return Err(CatalogError::SchemaNotFound(record.schema.clone()));
    }
    Err(CatalogError::TableExists(
        record.schema.clone(),
        record.name.clone(),
    ))
}

/// Drop view `schema.name`; false when there is none.
pub async fn drop_view(store: &StateStore, schema: &str, name: &str) -> CatalogResult<bool> {
    let key = view_key(schema, name);
    let request = TxnRequest {
        conditions: vec![Condition::Exists {
            key: key.clone(),
            exists: true,
        }],
        success: vec![Op::Delete { key }],
        failure: Vec::new(),
    };
    Ok(store.txn(request).await?.succeeded)
}

/// View `schema.name` as this node has it (after the caller's barrier, as the cluster has it).
pub async fn view(
    store: &StateStore,
    schema: &str,
    name: &str,
    consistency: ReadConsistency,
) -> CatalogResult<Option<ViewRecord>> {
    match store.get(&view_key(schema, name), consistency).await? {
        Some(kv) => Ok(Some(decode(&kv.value)?)),
        None => Ok(None),
    }
}

/// Whether this node has a table `schema.name` (a name that is no view).
pub async fn table_here(store: &StateStore, schema: &str, name: &str) -> CatalogResult<bool> {
    Ok(store
        .get(&table_key(schema, name), ReadConsistency::Local)
        .await?
        .is_some())
}

/// Every view, as this node has it.
pub async fn all(
    store: &StateStore,
    consistency: ReadConsistency,
) -> crate::error::Result<Vec<ViewRecord>> {
    store
        .scan(VIEWS, consistency)
        .await?
        .iter()
        .map(|kv| decode(&kv.value))
        .collect()
}
