//! Query records in the state store: every query's id, text, user, coordinator, driver, state,
//! times, rows and error, readable from any coordinator and kept after the query ends.

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;
use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use shoal_state_store::{CasOutcome, ReadConsistency, StateStore};

use crate::error::{CoordinatorError, Result};

pub(crate) const PREFIX: &str = "queries/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    Queued,
    /// Admitted (it holds an admission slot) and on its way to a driver. Only when
    /// `query.max-concurrent` limits the cluster: without a limit a query goes from QUEUED
    /// straight to RUNNING.
    Dispatching,
    Running,
    Finished,
    Failed,
}

impl QueryState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
            QueryState::Dispatching => "DISPATCHING",
            QueryState::Running => "RUNNING",
            QueryState::Finished => "FINISHED",
            QueryState::Failed => "FAILED",
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, QueryState::Finished | QueryState::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    pub id: String,
    /// Unguessable part of the query's URIs.
    pub slug: String,
    pub sql: String,
    pub user: String,
    pub source: Option<String>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    /// The session properties the client set, so that an adopted or re-run query runs as
    /// its client asked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The client's time zone header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The coordinator that accepted the query (or adopted it).
    pub coordinator: u64,
    /// That coordinator's incarnation (its start time): a restarted coordinator is a new one.
    /// 0 where unknown (records of an older version).
    #[serde(default)]
    pub owner_incarnation: u64,
    /// Internal URL of the node holding the query's result pages; empty until a driver has it.
    pub driver_url: String,
    /// The driver's incarnation (its start time); 0 where unknown.
    #[serde(default)]
    pub driver_incarnation: u64,
    /// Which run of the query this is; a re-run after its driver died counts up.
    #[serde(default)]
    pub attempt: u32,
    /// The client has received rows, so the query can no longer be run again.
    #[serde(default)]
    pub delivered: bool,
    pub state: QueryState,
    pub created_ms: u64,
    pub ended_ms: Option<u64>,
    pub rows: u64,
    pub bytes: u64,
    /// Pages of results the finished run produced: tokens below it hold rows (only its
    /// driver has them), the token equal to it is the end of the results.
    #[serde(default)]
    pub pages: u64,
    /// The spool holding every page of the finished result, when it was spooled: any
    /// coordinator serves the pages from it once the driver is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<String>,
    /// The client reads the result as segments of this encoding (Trino's spooling
    /// protocol); None for `data` arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<shoal_proto::segments::Encoding>,
    pub error: Option<QueryError>,
}

/// Milliseconds since the Unix epoch, as records keep times.
pub(crate) fn now_ms() -> u64 {
    shoal_seed_store::publisher::now_ms()
}

pub(crate) fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn encode(record: &QueryRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| CoordinatorError::Internal(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<QueryRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| CoordinatorError::Internal(format!("unreadable query record: {e}")))
}

pub async fn put(store: &StateStore, record: &QueryRecord) -> Result<()> {
    store.put(&key(&record.id), encode(record)?).await?;
    Ok(())
}

/// Write a new query's record, retrying for up to `within` while the store has no leader or a
/// write's outcome is unknown (the leader died under it): writing the same new record twice
/// is harmless, and a client should not see a leader change as a failed query.
pub async fn put_new(store: &StateStore, record: &QueryRecord, within: Duration) -> Result<()> {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        match put(store, record).await {
            Err(CoordinatorError::Store(e))
                if e.is_retryable() && tokio::time::Instant::now() < give_up =>
            {
                tracing::debug!(query_id = %record.id, error = %e, "retrying a new query's record");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// A query's record: this coordinator's copy if it has one, else the cluster's latest.
pub async fn get(store: &StateStore, id: &str) -> Result<Option<QueryRecord>> {
    if let Some(kv) = store.get(&key(id), ReadConsistency::Local).await? {
        return decode(&kv.value).map(Some);
    }
    match store.get(&key(id), ReadConsistency::Linearizable).await? {
        Some(kv) => decode(&kv.value).map(Some),
        None => Ok(None),
    }
}

/// A query's record as the cluster has it now (a linearizable read).
pub async fn get_latest(store: &StateStore, id: &str) -> Result<Option<QueryRecord>> {
    match store.get(&key(id), ReadConsistency::Linearizable).await? {
        Some(kv) => decode(&kv.value).map(Some),
        None => Ok(None),
    }
}

/// Every recorded query, oldest first (ids begin with their creation time).
pub async fn list(store: &StateStore) -> Result<Vec<QueryRecord>> {
    store
        .scan(PREFIX, ReadConsistency::Local)
        .await?
        .iter()
        .map(|kv| decode(&kv.value))
        .collect()
}

/// Every query that has not ended, with the revision its record was created at, read
/// linearizably (so a query recorded before any acknowledged write is among them).
pub async fn unfinished(store: &StateStore) -> Result<Vec<(u64, QueryRecord)>> {
    let mut out = Vec::new();
    for kv in store.scan(PREFIX, ReadConsistency::Linearizable).await? {
        let record = decode(&kv.value)?;
        if !record.state.is_done() {
            out.push((kv.create_revision, record));
        }
    }
    Ok(out)
}

/// Change query `id`'s record with `change` by compare-and-set, reading it again on conflicts.
/// `change` returns false to leave the record as it is. Returns the record as written, or
/// None if the record does not exist or `change` declined.
pub async fn update(
    store: &StateStore,
    id: &str,
    mut change: impl FnMut(&mut QueryRecord) -> bool,
) -> Result<Option<QueryRecord>> {
    loop {
        let Some(kv) = store.get(&key(id), ReadConsistency::Linearizable).await? else {
            return Ok(None);
        };
        let mut record = decode(&kv.value)?;
        if !change(&mut record) {
            return Ok(None);
        }
        match store
            .compare_and_set(&key(id), kv.mod_revision, encode(&record)?)
            .await?
        {
            CasOutcome::Swapped { .. } => return Ok(Some(record)),
            CasOutcome::Conflict { .. } => {
                tracing::debug!(query = %id, "concurrent change to a query record; retrying");
            }
        }
    }
}

/// Wait up to `wait` for query `id`'s record to change after `record` was read.
pub async fn wait_for_change(store: &StateStore, id: &str, wait: Duration) -> Result<()> {
    let revision = match store.get(&key(id), ReadConsistency::Local).await? {
        Some(kv) => kv.mod_revision,
        None => return Ok(()),
    };
    let mut changes = store.watch(&key(id), revision + 1)?;
    let _ = tokio::time::timeout(wait, changes.next()).await;
    Ok(())
}

/// A QUEUED record of coordinator 1 (incarnation 100), for unit tests.
#[cfg(test)]
pub(crate) fn sample(id: &str) -> QueryRecord {
    QueryRecord {
        id: id.to_string(),
        slug: "s".into(),
        sql: "SELECT 1".into(),
        user: "u".into(),
        source: None,
        catalog: None,
        schema: None,
        properties: BTreeMap::new(),
        time_zone: None,
        coordinator: 1,
        owner_incarnation: 100,
        driver_url: String::new(),
        driver_incarnation: 0,
        attempt: 0,
        delivered: false,
        state: QueryState::Queued,
        created_ms: 0,
        ended_ms: None,
        rows: 0,
        bytes: 0,
        pages: 0,
        spool: None,
        encoding: None,
        error: None,
    }
}
