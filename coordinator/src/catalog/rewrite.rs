//! The commit of a copy-on-write change (DELETE, UPDATE, MERGE): the statement read one
//! version of a table, wrote new files for the files it changes, and commits the next version
//! without those files and with the new ones, as long as every file it replaces is still in
//! the table (a concurrent rewrite of one of them is a conflict; concurrent appends are not:
//! snapshot isolation, as table formats with copy-on-write give it). Like every write it
//! commits with its query's marker, so it applies exactly once.

use std::collections::BTreeSet;

use shoal_state_store::{Condition, ReadConsistency, StateStore};

use super::commit::{already_committed, put, settle, submit, txn, CommitMarker, Committed, Writer};
use super::{
    commit_key, decode, encode, files_key, files_of, table_key, CatalogError, CatalogResult,
    DataFile, FileBatch, TableRecord,
};

/// What a copy-on-write statement changes in one table.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub schema: String,
    pub name: String,
    pub table_id: String,
    /// The version the statement read.
    pub base_version: u64,
    /// The files it replaces, and how many rows they held.
    pub replaced: Vec<DataFile>,
    pub replaced_rows: u64,
    /// The files it wrote (their version is set here).
    pub batch: FileBatch,
    /// The statement's update count: rows deleted, updated or merged.
    pub affected: u64,
}

/// How a rewrite ended that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// This commit, or an earlier one of the same query, applied; the update count.
    Applied { rows: u64 },
    /// Another write replaced a file the statement replaces: nothing was committed, the
    /// statement may run again on the new version.
    Conflict,
}

/// Commit `change` as the next version of its table, if every file it replaces is still in it.
pub async fn rewrite(
    store: &StateStore,
    change: &Rewrite,
    writer: &Writer,
) -> CatalogResult<Rewritten> {
    let key = table_key(&change.schema, &change.name);
    let applied = |done: Committed| match done {
        Committed::Applied { rows } => Rewritten::Applied { rows },
        Committed::AlreadyExists => Rewritten::Conflict,
    };
    loop {
        let current = store.get(&key, ReadConsistency::Linearizable).await?;
        let record = match &current {
            Some(kv) => Some(decode::<TableRecord>(&kv.value)?),
            None => None,
        };
        let (Some(kv), Some(mut record)) = (current, record) else {
            return match already_committed(store, writer).await? {
                Some(done) => Ok(applied(done)),
                None => Err(dropped(change)),
            };
        };
        if record.id != change.table_id {
            return match already_committed(store, writer).await? {
                Some(done) => Ok(applied(done)),
                None => Err(dropped(change)),
            };
        }
        // Writes since the version read that left every replaced file in place (appends, or
        // rewrites of other files) do not conflict: the statement applies to the rows it
        // read, as if it ran before them.
        if record.version != change.base_version {
            let current: BTreeSet<String> = files_of(store, &record, ReadConsistency::Local)
                .await?
                .into_iter()
                .map(|f| f.path)
                .collect();
            if !change.replaced.iter().all(|f| current.contains(&f.path)) {
                return match already_committed(store, writer).await? {
                    Some(done) => Ok(applied(done)),
                    None => Ok(Rewritten::Conflict),
                };
            }
        }
        let replaced_bytes: u64 = change.replaced.iter().map(|f| f.bytes).sum();
        record.version += 1;
        record.rows = record.rows.saturating_sub(change.replaced_rows) + change.batch.rows;
        record.bytes = record.bytes.saturating_sub(replaced_bytes) + change.batch.bytes;
        let mut batch = change.batch.clone();
        batch.version = record.version;
        batch.removed = change.replaced.iter().map(|f| f.path.clone()).collect();
        let marker = CommitMarker::Committed {
            attempt: writer.attempt,
            table_id: change.table_id.clone(),
            version: record.version,
            rows: change.affected,
        };
        let request = txn(
            vec![
                Condition::ModRevision {
                    key: key.clone(),
                    revision: kv.mod_revision,
                },
                Condition::ModRevision {
                    key: commit_key(&writer.query_id),
                    revision: 0,
                },
            ],
            vec![
                put(key.clone(), encode(&record)?),
                put(files_key(&change.table_id, record.version), encode(&batch)?),
                put(commit_key(&writer.query_id), encode(&marker)?),
            ],
        );
        match submit(store, request).await {
            Ok(response) if response.succeeded => {
                return Ok(Rewritten::Applied {
                    rows: change.affected,
                })
            }
            Ok(_) => {
                if let Some(done) = already_committed(store, writer).await? {
                    return Ok(applied(done));
                }
                tracing::debug!(table = %key, "concurrent change to the table; reading it again");
            }
            Err(e) => return settle(store, writer, e).await.map(applied),
        }
    }
}

fn dropped(change: &Rewrite) -> CatalogError {
    CatalogError::DroppedWhileWriting(change.schema.clone(), change.name.clone())
}
