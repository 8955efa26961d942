//! Removing table files nothing needs any more, on the Raft leader: the files of a dropped
//! table once every query that started before the drop has ended, and the write directories of
//! queries that ended without committing (a failed, abandoned or fenced write), and the files
//! a copy-on-write commit replaced once no query that started before it runs. Files a
//! table's current version lists, and files of a query still running, are never touched.

use shoal_state_store::{KeyValue, ReadConsistency, StateStore};
use std::collections::{BTreeMap, BTreeSet};

use shoal_storage::Location;

use super::commit::{CommitMarker, Tombstone};
use super::warehouse::{is_table_id, parse_write_dir_name, write_dir_name, Warehouse};
use super::{
    commit_key, decode, dropped_key, files_prefix, CatalogResult, FileBatch, TableRecord, DROPPED,
    FILES, TABLES,
};
use crate::query::record;

/// What one round removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub dropped_tables: usize,
    pub write_dirs: usize,
    pub replaced_files: usize,
}

/// One round: tombstones first, then directories no table or running query accounts for.
pub async fn sweep(store: &StateStore, warehouse: &Warehouse) -> CatalogResult<Swept> {
    let running = record::unfinished(store).await?;
    let mut swept = Swept::default();
    let tombstones = store.scan(DROPPED, ReadConsistency::Linearizable).await?;
    for kv in &tombstones {
        if collect_dropped(store, warehouse, kv, &running).await? {
            swept.dropped_tables += 1;
        }
    }
    swept.write_dirs = collect_abandoned(store, warehouse, &running).await?;
    swept.replaced_files = collect_replaced(store, warehouse, &running).await?;
    Ok(swept)
}

/// Remove the files copy-on-write commits replaced, once no query that may read them runs:
/// any query recorded before the commit (its record's creation revision is older) could
/// have resolved a version that had them, one recorded after it cannot. The commit's files
/// key then says so, so the next round leaves it.
async fn collect_replaced(
    store: &StateStore,
    warehouse: &Warehouse,
    running: &[(u64, record::QueryRecord)],
) -> CatalogResult<usize> {
    let mut removed = 0;
    for kv in store.scan(FILES, ReadConsistency::Linearizable).await? {
        let mut batch: FileBatch = decode(&kv.value)?;
        if batch.removed.is_empty() || batch.removed_collected {
            continue;
        }
        if running
            .iter()
            .any(|(created, _)| *created < kv.create_revision)
        {
            continue;
        }
        let mut all = true;
        for path in &batch.removed {
            if let Err(e) = warehouse.remove_file(path).await {
                tracing::warn!(file = %path, error = %e, "cannot remove a replaced file");
                all = false;
            }
        }
        if !all {
            continue;
        }
        removed += batch.removed.len();
        batch.removed_collected = true;
        let marked = store
            .txn(shoal_state_store::TxnRequest {
                conditions: vec![shoal_state_store::Condition::ModRevision {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                }],
                success: vec![shoal_state_store::Op::Put {
                    key: kv.key.clone(),
                    value: super::encode(&batch)?,
                }],
                failure: Vec::new(),
            })
            .await?;
        if marked.succeeded {
            tracing::info!(files = batch.removed.len(), commit = %kv.key, "removed the files a rewrite replaced");
        }
    }
    Ok(removed)
}

/// Remove a dropped table's files when no query that may read them runs any more: any query
/// recorded before the drop (its record's creation revision is older) could have resolved the
/// table, one recorded after it cannot.
async fn collect_dropped(
    store: &StateStore,
    warehouse: &Warehouse,
    kv: &KeyValue,
    running: &[(u64, record::QueryRecord)],
) -> CatalogResult<bool> {
    let tombstone: Tombstone = decode(&kv.value)?;
    let dropped_at = kv.create_revision;
    if let Some((_, query)) = running.iter().find(|(created, _)| *created < dropped_at) {
        tracing::debug!(table = %tombstone.table_id, query = %query.id, "dropped table still read by an older query");
        return Ok(false);
    }
    let dir = warehouse
        .table_dir(&tombstone.table_id)
        .map_err(|e| super::CatalogError::Invalid(e.to_string()))?;
    if let Err(e) = warehouse.remove_dir(&dir).await {
        tracing::warn!(table = %tombstone.table_id, error = %e, "cannot remove a dropped table's files");
        return Ok(false);
    }
    store
        .delete_prefix(&files_prefix(&tombstone.table_id))
        .await?;
    store.delete(&dropped_key(&tombstone.table_id)).await?;
    tracing::info!(table = %tombstone.table_id, schema = %tombstone.schema, name = %tombstone.name, "removed a dropped table's files");
    Ok(true)
}

/// Write directories of ended queries that no commit lists, and table directories of no
/// table at all.
async fn collect_abandoned(
    store: &StateStore,
    warehouse: &Warehouse,
    running: &[(u64, record::QueryRecord)],
) -> CatalogResult<usize> {
    let live: BTreeMap<String, TableRecord> = store
        .scan(TABLES, ReadConsistency::Linearizable)
        .await?
        .iter()
        .map(|kv| decode::<TableRecord>(&kv.value).map(|t| (t.id.clone(), t)))
        .collect::<crate::error::Result<_>>()?;
    let dropped: BTreeSet<String> = store
        .scan(DROPPED, ReadConsistency::Local)
        .await?
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(DROPPED).map(str::to_string))
        .collect();
    let running: BTreeSet<&str> = running.iter().map(|(_, r)| r.id.as_str()).collect();
    let mut removed = 0;
    let tables = match warehouse.root().list_dirs().await {
        Ok(tables) => tables,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the warehouse");
            return Ok(0);
        }
    };
    for id in tables {
        if !is_table_id(&id) || dropped.contains(&id) {
            continue;
        }
        let committed = if live.contains_key(&id) {
            committed_dirs(store, &id).await?
        } else {
            BTreeSet::new()
        };
        let Ok(table_dir) = warehouse.table_dir(&id) else {
            continue;
        };
        let mut kept = 0;
        let writes = match table_dir.list_dirs().await {
            Ok(writes) => writes,
            Err(e) => {
                tracing::warn!(table = %id, error = %e, "cannot list a table's directory");
                continue;
            }
        };
        for name in writes {
            let keep = match parse_write_dir_name(&name) {
                Some((query, attempt)) => {
                    committed.contains(&name)
                        || still_running(store, &running, query).await?
                        || committed_elsewhere(store, query, attempt).await?
                }
                None => true,
            };
            let removed_now = !keep
                && match table_dir.child(&name) {
                    Ok(write) => remove(warehouse, &write).await,
                    Err(_) => false,
                };
            if removed_now {
                removed += 1;
            } else {
                kept += 1;
            }
        }
        if kept == 0 && !live.contains_key(&id) && remove(warehouse, &table_dir).await {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether `query` may still be writing: running when the round began, or recorded since and
/// not ended (its record is read again, so a write that started during the round is safe).
async fn still_running(
    store: &StateStore,
    running: &BTreeSet<&str>,
    query: &str,
) -> CatalogResult<bool> {
    if running.contains(query) {
        return Ok(true);
    }
    Ok(record::get_latest(store, query)
        .await?
        .is_some_and(|r| !r.state.is_done()))
}

/// Write directories the commits of table `id` list.
async fn committed_dirs(store: &StateStore, id: &str) -> CatalogResult<BTreeSet<String>> {
    let mut dirs = BTreeSet::new();
    for kv in store
        .scan(&files_prefix(id), ReadConsistency::Local)
        .await?
    {
        let batch: FileBatch = decode(&kv.value)?;
        dirs.insert(write_dir_name(&batch.query_id, batch.attempt));
    }
    Ok(dirs)
}

/// Whether the query's marker says this attempt committed (a table whose record is not
/// readable here yet, e.g. a CREATE TABLE AS that just published).
async fn committed_elsewhere(store: &StateStore, query: &str, attempt: u32) -> CatalogResult<bool> {
    Ok(
        match store
            .get(&commit_key(query), ReadConsistency::Linearizable)
            .await?
        {
            Some(kv) => matches!(
                decode::<CommitMarker>(&kv.value)?,
                CommitMarker::Committed { attempt: a, .. } if a == attempt
            ),
            None => false,
        },
    )
}

async fn remove(warehouse: &Warehouse, dir: &Location) -> bool {
    match warehouse.remove_dir(dir).await {
        Ok(()) => {
            tracing::info!(dir = %dir.url(), "removed files no commit lists");
            true
        }
        Err(e) => {
            tracing::warn!(dir = %dir.url(), error = %e, "cannot remove files no commit lists");
            false
        }
    }
}
