//! Every change to the catalog, each one transaction of the state store with the conditions
//! that make it safe: a schema or table is created only where none is, a table is dropped only
//! in the version that was read (leaving a tombstone for its files), and a write's files commit
//! together with a marker keyed by its query, so a query's write applies exactly once: a
//! second commit by a retrying client, a re-run or a stale owner finds the marker. A commit
//! whose outcome is unknown is settled before anyone is told: the marker is read back, after a
//! fence that keeps a late copy of the commit from ever applying.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_state_store::{Condition, Op, ReadConsistency, StateStore, TxnRequest, TxnResponse};

use super::{
    check_name, commit_key, decode, dropped_key, dropping_key, encode, files_key, now_ms,
    schema_key, table_key, tables_of, CatalogError, CatalogResult, FileBatch, SchemaRecord,
    TableRecord, DEFAULT_SCHEMA,
};
use crate::error::CoordinatorError;

/// How long an unknown outcome is worked on before the statement fails saying so.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// Whose write a commit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub query_id: String,
    pub attempt: u32,
}

/// The marker of a query's write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommitMarker {
    Committed {
        attempt: u32,
        table_id: String,
        version: u64,
        rows: u64,
    },
    /// The write was settled as not committed; it never will be.
    Fenced { attempt: u32 },
}

/// A dropped managed table whose files wait for the queries that may still read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub table_id: String,
    pub schema: String,
    pub name: String,
    pub dropped_ms: u64,
}

pub(super) fn txn(conditions: Vec<Condition>, success: Vec<Op>) -> TxnRequest {
    TxnRequest {
        conditions,
        success,
        failure: Vec::new(),
    }
}

pub(super) fn put(key: String, value: Vec<u8>) -> Op {
    Op::Put { key, value }
}

fn absent(key: String) -> Condition {
    Condition::ModRevision { key, revision: 0 }
}

/// Run a commit's transaction. Failpoints let tests lose a commit on its way to the store, or
/// the reply of an applied one.
pub(super) async fn submit(
    store: &StateStore,
    request: TxnRequest,
) -> Result<TxnResponse, CoordinatorError> {
    fail::fail_point!("catalog-commit-request-lost", |_| {
        Err(CoordinatorError::Store(
            shoal_state_store::StoreError::OutcomeUnknown {
                reason: "failpoint catalog-commit-request-lost".into(),
            },
        ))
    });
    let response = store.txn(request).await?;
    fail::fail_point!("catalog-commit-reply-lost", |_| {
        Err(CoordinatorError::Store(
            shoal_state_store::StoreError::OutcomeUnknown {
                reason: "failpoint catalog-commit-reply-lost".into(),
            },
        ))
    });
    Ok(response)
}

/// Create a schema; false if it existed and `if_not_exists`.
pub async fn create_schema(
    store: &StateStore,
    name: &str,
    if_not_exists: bool,
) -> CatalogResult<bool> {
    check_name("schema", name)?;
    let exists = || exists_or(if_not_exists, CatalogError::SchemaExists(name.to_string()));
    if name == DEFAULT_SCHEMA {
        return exists();
    }
    let record = SchemaRecord {
        name: name.to_string(),
        created_ms: now_ms(),
    };
    let key = schema_key(name);
    let request = txn(vec![absent(key.clone())], vec![put(key, encode(&record)?)]);
    if store.txn(request).await?.succeeded {
        Ok(true)
    } else {
        exists()
    }
}

fn exists_or(tolerated: bool, error: CatalogError) -> CatalogResult<bool> {
    if tolerated {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Drop an empty schema; false if it did not exist and `if_exists`. The schema is marked as
/// being dropped first, so no table can be created in it between the check that it is empty
/// and its deletion.
pub async fn drop_schema(store: &StateStore, name: &str, if_exists: bool) -> CatalogResult<bool> {
    if name == DEFAULT_SCHEMA {
        return Err(CatalogError::DefaultSchema);
    }
    let key = schema_key(name);
    let Some(schema) = store.get(&key, ReadConsistency::Linearizable).await? else {
        return if if_exists {
            Ok(false)
        } else {
            Err(CatalogError::SchemaNotFound(name.to_string()))
        };
    };
    let mark = dropping_key(name);
    store
        .txn(txn(Vec::new(), vec![put(mark.clone(), Vec::new())]))
        .await?;
    let tables = store
        .scan(&tables_of(name), ReadConsistency::Linearizable)
        .await;
    let empty = matches!(&tables, Ok(t) if t.is_empty());
    let mut ops = vec![Op::Delete { key: mark.clone() }];
    if empty {
        ops.push(Op::Delete { key: key.clone() });
    }
    let condition = Condition::ModRevision {
        key,
        revision: schema.mod_revision,
    };
    let dropped = store.txn(txn(vec![condition], ops)).await?.succeeded && empty;
    if !dropped {
        store.delete(&mark).await?;
    }
    tables?;
    if dropped {
        Ok(true)
    } else if !empty {
        Err(CatalogError::SchemaNotEmpty(name.to_string()))
    } else {
        Err(CatalogError::SchemaNotFound(name.to_string()))
    }
}

/// The conditions that `schema` exists and is not being dropped (the default schema always
/// exists).
fn schema_exists(schema: &str) -> Vec<Condition> {
    if schema == DEFAULT_SCHEMA {
        Vec::new()
    } else {
        vec![
            Condition::Exists {
                key: schema_key(schema),
                exists: true,
            },
            Condition::Exists {
                key: dropping_key(schema),
                exists: false,
            },
        ]
    }
}

async fn schema_missing(store: &StateStore, schema: &str) -> CatalogResult<bool> {
    if schema == DEFAULT_SCHEMA {
        return Ok(false);
    }
    let read = |key: String| async move { store.get(&key, ReadConsistency::Linearizable).await };
    Ok(read(schema_key(schema)).await?.is_none() || read(dropping_key(schema)).await?.is_some())
}

/// Create a table without data; false if it existed and `if_not_exists`.
pub async fn create_table(
    store: &StateStore,
    record: &TableRecord,
    if_not_exists: bool,
) -> CatalogResult<bool> {
    check_name("schema", &record.schema)?;
    check_name("table", &record.name)?;
    let key = table_key(&record.schema, &record.name);
    let mut conditions = schema_exists(&record.schema);
    conditions.push(absent(key.clone()));
    // A table and a view never share a name.
    conditions.push(absent(super::views::key(&record.schema, &record.name)));
    if store
        .txn(txn(conditions, vec![put(key, encode(record)?)]))
        .await?
        .succeeded
    {
        return Ok(true);
    }
    if schema_missing(store, &record.schema).await? {
        return Err(CatalogError::SchemaNotFound(record.schema.clone()));
    }
    exists_or(
        if_not_exists,
        CatalogError::TableExists(record.schema.clone(), record.name.clone()),
    )
}

/// What became of a write's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// This call committed it, or an earlier one of the same query did.
    Applied { rows: u64 },
    /// CREATE TABLE IF NOT EXISTS AS found the table there: nothing was written.
    AlreadyExists,
}

/// Publish a new table and its data in one commit (CREATE TABLE AS): the table appears with
/// its rows or not at all.
pub async fn create_table_with_data(
    store: &StateStore,
    record: &TableRecord,
    batch: &FileBatch,
    writer: &Writer,
    if_not_exists: bool,
) -> CatalogResult<Committed> {
    check_name("schema", &record.schema)?;
    check_name("table", &record.name)?;
    let key = table_key(&record.schema, &record.name);
    let mut published = record.clone();
    published.version = batch.version;
    published.rows = batch.rows;
    published.bytes = batch.bytes;
    published.files = Vec::new();
    let mut conditions = schema_exists(&record.schema);
    conditions.push(absent(key.clone()));
    conditions.push(absent(super::views::key(&record.schema, &record.name)));
    conditions.push(absent(commit_key(&writer.query_id)));
    let marker = CommitMarker::Committed {
        attempt: writer.attempt,
        table_id: record.id.clone(),
        version: batch.version,
        rows: batch.rows,
    };
    let request = txn(
        conditions,
        vec![
            put(key, encode(&published)?),
            put(files_key(&record.id, batch.version), encode(batch)?),
            put(commit_key(&writer.query_id), encode(&marker)?),
        ],
    );
    match submit(store, request).await {
        Ok(response) if response.succeeded => Ok(Committed::Applied { rows: batch.rows }),
        Ok(_) => {
            if let Some(done) = already_committed(store, writer).await? {
                return Ok(done);
            }
            if schema_missing(store, &record.schema).await? {
                return Err(CatalogError::SchemaNotFound(record.schema.clone()));
            }
            if if_not_exists {
                Ok(Committed::AlreadyExists)
            } else {
                Err(CatalogError::TableExists(
                    record.schema.clone(),
                    record.name.clone(),
                ))
            }
        }
        Err(e) => settle(store, writer, e).await,
    }
}

/// Add `batch` to table `schema.name` as its next version, as long as it is still the table
/// `table_id` the write started on; retried over concurrent writers' commits.
pub async fn append(
    store: &StateStore,
    schema: &str,
    name: &str,
    table_id: &str,
    mut batch: FileBatch,
    writer: &Writer,
) -> CatalogResult<Committed> {
    let key = table_key(schema, name);
    loop {
        let current = store.get(&key, ReadConsistency::Linearizable).await?;
        let Some(kv) = current else {
            return match already_committed(store, writer).await? {
                Some(done) => Ok(done),
                None => Err(CatalogError::DroppedWhileWriting(
                    schema.into(),
                    name.into(),
                )),
            };
        };
        let mut record: TableRecord = decode(&kv.value)?;
        if record.id != table_id {
            return match already_committed(store, writer).await? {
                Some(done) => Ok(done),
                None => Err(CatalogError::DroppedWhileWriting(
                    schema.into(),
                    name.into(),
                )),
            };
        }
        record.version += 1;
        record.rows += batch.rows;
        record.bytes += batch.bytes;
        batch.version = record.version;
        let marker = CommitMarker::Committed {
            attempt: writer.attempt,
            table_id: table_id.to_string(),
            version: record.version,
            rows: batch.rows,
        };
        let request = txn(
            vec![
                Condition::ModRevision {
                    key: key.clone(),
                    revision: kv.mod_revision,
                },
                absent(commit_key(&writer.query_id)),
            ],
            vec![
                put(key.clone(), encode(&record)?),
                put(files_key(table_id, record.version), encode(&batch)?),
                put(commit_key(&writer.query_id), encode(&marker)?),
            ],
        );
        match submit(store, request).await {
            Ok(response) if response.succeeded => {
                return Ok(Committed::Applied { rows: batch.rows })
            }
            Ok(_) => {
                if let Some(done) = already_committed(store, writer).await? {
                    return Ok(done);
                }
                tracing::debug!(table = %key, "concurrent change to the table; retrying the commit");
            }
            Err(e) => return settle(store, writer, e).await,
        }
    }
}

async fn marker(store: &StateStore, query_id: &str) -> CatalogResult<Option<CommitMarker>> {
    match store
        .get(&commit_key(query_id), ReadConsistency::Linearizable)
        .await?
    {
        Some(kv) => Ok(Some(decode(&kv.value)?)),
        None => Ok(None),
    }
}

/// The query's write if it committed already; an error if it was fenced off.
pub(super) async fn already_committed(
    store: &StateStore,
    writer: &Writer,
) -> CatalogResult<Option<Committed>> {
    match marker(store, &writer.query_id).await? {
        None => Ok(None),
        Some(CommitMarker::Committed { rows, .. }) => Ok(Some(Committed::Applied { rows })),
        Some(CommitMarker::Fenced { .. }) => Err(CatalogError::OutcomeUnknown {
            query: writer.query_id.clone(),
            reason: "an earlier commit of this query was settled as not applied".into(),
        }),
    }
}

/// Settle a commit whose reply was lost: fence the query's marker (so a copy of the commit
/// still on its way can never apply), then read what the marker says.
pub(super) async fn settle(
    store: &StateStore,
    writer: &Writer,
    cause: CoordinatorError,
) -> CatalogResult<Committed> {
    tracing::warn!(query = %writer.query_id, error = %cause, "commit outcome unknown; settling it");
    let give_up = tokio::time::Instant::now() + SETTLE_WITHIN;
    let key = commit_key(&writer.query_id);
    let fence = encode(&CommitMarker::Fenced {
        attempt: writer.attempt,
    })?;
    let mut last_error = cause.to_string();
    while tokio::time::Instant::now() < give_up {
        let fenced = store
            .txn(txn(
                vec![absent(key.clone())],
                vec![put(key.clone(), fence.clone())],
            ))
            .await;
        match fenced {
            Ok(_) => match marker(store, &writer.query_id).await {
                Ok(Some(CommitMarker::Committed { rows, .. })) => {
                    tracing::info!(query = %writer.query_id, "commit settled: it applied");
                    return Ok(Committed::Applied { rows });
                }
                Ok(Some(CommitMarker::Fenced { .. })) => {
                    tracing::info!(query = %writer.query_id, "commit settled: it did not apply");
                    return Err(CatalogError::Store(CoordinatorError::Unavailable(format!(
                        "the write of query {} did not commit ({last_error}); nothing was written",
                        writer.query_id
                    ))));
                }
                Ok(None) => last_error = "the fence is not visible yet".into(),
                Err(e) => last_error = e.to_string(),
            },
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CatalogError::OutcomeUnknown {
        query: writer.query_id.clone(),
        reason: last_error,
    })
}

/// Settle the write of attempt `attempt` of query `query_id` whose driver died: fence its
/// marker (a commit still on its way can then never apply) and read what the marker says.
/// `Some(rows)` when the write committed, `None` when it never will.
pub async fn settle_lost(
    store: &StateStore,
    query_id: &str,
    attempt: u32,
) -> CatalogResult<Option<u64>> {
    let key = commit_key(query_id);
    let fence = encode(&CommitMarker::Fenced { attempt })?;
    store
        .txn(txn(vec![absent(key.clone())], vec![put(key, fence)]))
        .await?;
    match marker(store, query_id).await? {
        Some(CommitMarker::Committed { rows, .. }) => Ok(Some(rows)),
        Some(_) => Ok(None),
        None => Err(CatalogError::OutcomeUnknown {
            query: query_id.to_string(),
            reason: "the fence is not visible yet".into(),
        }),
    }
}

/// Drop table `schema.name` in the version read, leaving a tombstone for a managed table's
/// files. Returns the dropped record, None if there was no such table.
pub async fn drop_table(
    store: &StateStore,
    schema: &str,
    name: &str,
) -> CatalogResult<Option<TableRecord>> {
    let key = table_key(schema, name);
    loop {
        let Some(kv) = store.get(&key, ReadConsistency::Linearizable).await? else {
            return Ok(None);
        };
        let record: TableRecord = decode(&kv.value)?;
        let mut success = vec![Op::Delete { key: key.clone() }];
        if record.managed {
            let tombstone = Tombstone {
                table_id: record.id.clone(),
                schema: schema.to_string(),
                name: name.to_string(),
                dropped_ms: now_ms(),
            };
            success.push(put(dropped_key(&record.id), encode(&tombstone)?));
        }
        let condition = Condition::ModRevision {
            key: key.clone(),
            revision: kv.mod_revision,
        };
        match store.txn(txn(vec![condition], success)).await {
            Ok(response) if response.succeeded => return Ok(Some(record)),
            Ok(_) => {
                tracing::debug!(table = %key, "the table changed while being dropped; reading it again")
            }
            Err(e) => {
                // Settle it: the table is either gone (dropped, by this or another statement)
                // or still there in some version, which the next round drops.
                tracing::warn!(table = %key, error = %e, "drop outcome unknown; reading the table again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                match store.get(&key, ReadConsistency::Linearizable).await {
                    Ok(None) => return Ok(Some(record)),
                    Ok(Some(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Forget the commit markers of queries that left the history.
pub async fn forget_commits(store: &StateStore, query_ids: &[String]) -> CatalogResult<()> {
    if query_ids.is_empty() {
        return Ok(());
    }
    let success = query_ids
        .iter()
        .map(|id| Op::Delete {
            key: commit_key(id),
        })
        .collect();
    store.txn(txn(Vec::new(), success)).await?;
    Ok(())
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
