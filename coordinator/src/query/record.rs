//! Query records in the state store: every query's id, text, user, coordinator, driver, state,
//! times, rows and error, readable from any coordinator and kept after the query ends.

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use shoal_state_store::{CasOutcome, Op, ReadConsistency, StateStore, TxnRequest};

use crate::error::{CoordinatorError, Result};

const PREFIX: &str = "queries/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
}

impl QueryState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
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
    pub error: Option<QueryError>,
}

fn key(id: &str) -> String {
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

/// When a coordinator trims the query history: after every `every` of its completions, an
/// eighth of `query.max-history` (at least one). Each trim reads the history once, so a
/// completion costs a constant share of a scan however long the history is, and the history
/// holds at most about `max_history` plus `every` finished records per coordinator.
#[derive(Debug)]
pub struct HistoryTrim {
    since: AtomicUsize,
    every: usize,
}

impl HistoryTrim {
    pub fn new(max_history: usize) -> Self {
        HistoryTrim {
            since: AtomicUsize::new(0),
            every: (max_history / 8).max(1),
        }
    }

    /// Count one completion; true when it is time to trim.
    pub fn completed(&self) -> bool {
        let since = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        if since >= self.every {
            self.since.store(0, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// The part of a record that trimming reads (the rest is skipped, not decoded).
#[derive(Debug, Deserialize)]
pub struct Brief {
    pub id: String,
    pub state: QueryState,
    pub coordinator: u64,
    #[serde(default)]
    pub owner_incarnation: u64,
    pub ended_ms: Option<u64>,
}

/// What a coordinator knows of the client of one of its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The client read the last page (or its error).
    Done,
    /// The client read a page within `query.client.timeout`.
    Active,
    /// The client has not come back for `query.client.timeout`: it abandoned the query.
    Idle,
}

/// Which finished records a coordinator may trim: never one whose client may still read it.
/// A coordinator trims its own queries once their client read the last page or abandoned
/// them, and queries of coordinators that are gone (or restarted since) once they ended
/// `query.client.timeout` ago; queries of other live coordinators are theirs to trim.
#[derive(Debug, Clone)]
pub struct TrimRule {
    pub me: u64,
    pub my_incarnation: u64,
    pub now_ms: u64,
    pub client_timeout_ms: u64,
    /// Coordinators that are members and answer, with the start their registry record
    /// names (None where it has none yet).
    pub live: BTreeMap<u64, Option<u64>>,
}

impl TrimRule {
    pub fn may_go(&self, brief: &Brief, reader: Option<Reader>) -> bool {
        let long_ended = brief
            .ended_ms
            .unwrap_or(0)
            .saturating_add(self.client_timeout_ms)
            <= self.now_ms;
        let of_this_start =
            brief.owner_incarnation == 0 || brief.owner_incarnation == self.my_incarnation;
        if brief.coordinator == self.me && of_this_start {
            return match reader {
                Some(Reader::Done | Reader::Idle) => true,
                Some(Reader::Active) => false,
                // No client read it here (or not since this start): by the clock alone.
                None => long_ended,
            };
        }
        let owner_live = match self.live.get(&brief.coordinator) {
            Some(Some(start)) => brief.owner_incarnation == 0 || *start <= brief.owner_incarnation,
            Some(None) => true,
            None => false,
        };
        !owner_live && long_ended
    }
}

/// Remove the oldest finished records beyond `max_history`.
pub async fn trim_history(
    store: &StateStore,
    max_history: usize,
    may_go: impl Fn(&Brief) -> bool,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for kv in store.scan(PREFIX, ReadConsistency::Local).await? {
        let brief: Brief = serde_json::from_slice(&kv.value)
            .map_err(|e| CoordinatorError::Internal(format!("unreadable query record: {e}")))?;
        if brief.state.is_done() {
            done.push(brief);
        }
    }
    if done.len() <= max_history {
        return Ok(Vec::new());
    }
    let excess = done.len() - max_history;
    // The oldest of those that may go.
    let done: Vec<String> = done
        .into_iter()
        .filter(|brief| may_go(brief))
        .take(excess)
        .map(|brief| brief.id)
        .collect();
    if done.is_empty() {
        return Ok(done);
    }
    let deletes = done.iter().map(|id| Op::Delete { key: key(id) }).collect();
    store
        .txn(TxnRequest {
            success: deletes,
            ..TxnRequest::default()
        })
        .await?;
    crate::catalog::commit::forget_commits(store, &done)
        .await
        .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
    Ok(done)
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
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: QueryState) -> QueryRecord {
        QueryRecord {
            state,
            ..sample(id)
        }
    }

    #[tokio::test]
    async fn trimming_keeps_the_newest_finished_records_and_every_unfinished_one() {
        let (_dir, store) = crate::test_store::one_member_store().await;
        for n in 0..20 {
            let state = if n % 5 == 0 {
                QueryState::Running
            } else {
                QueryState::Finished
            };
            put(&store, &record(&format!("q{n:02}"), state))
                .await
                .expect("put");
        }
        trim_history(&store, 6, |_| true).await.expect("trim");
        let kept: Vec<String> = list(&store)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            kept,
            ["q00", "q05", "q10", "q13", "q14", "q15", "q16", "q17", "q18", "q19"]
        );
        store.shutdown().await.expect("shutdown");
    }

    fn brief(coordinator: u64, owner_incarnation: u64, ended_ms: u64) -> Brief {
        Brief {
            id: "q".into(),
            state: QueryState::Finished,
            coordinator,
            owner_incarnation,
            ended_ms: Some(ended_ms),
        }
    }

    #[test]
    fn no_record_is_trimmed_while_its_client_may_read_it() {
        let rule = TrimRule {
            me: 1,
            my_incarnation: 100,
            now_ms: 10_000,
            client_timeout_ms: 5_000,
            live: BTreeMap::from([(1, Some(100)), (2, Some(200)), (3, None)]),
        };
        // Own queries: by what the client did here, else by the clock.
        assert!(rule.may_go(&brief(1, 100, 9_999), Some(Reader::Done)));
        assert!(rule.may_go(&brief(1, 100, 9_999), Some(Reader::Idle)));
        assert!(!rule.may_go(&brief(1, 100, 1_000), Some(Reader::Active)));
        assert!(!rule.may_go(&brief(1, 100, 9_000), None));
        assert!(rule.may_go(&brief(1, 100, 4_000), None));
        // An earlier start of this coordinator is a gone owner: by the clock.
        assert!(!rule.may_go(&brief(1, 50, 9_000), Some(Reader::Done)));
        assert!(rule.may_go(&brief(1, 50, 4_000), None));
        // Another live coordinator's queries are its own to trim, however old.
        assert!(!rule.may_go(&brief(2, 200, 0), None));
        assert!(!rule.may_go(&brief(3, 7, 0), None));
        // A restarted or gone owner's: once they ended a client timeout ago.
        assert!(rule.may_go(&brief(2, 150, 4_000), None));
        assert!(!rule.may_go(&brief(2, 150, 6_000), None));
        assert!(rule.may_go(&brief(9, 1, 4_000), None));
        assert!(!rule.may_go(&brief(9, 1, 6_000), None));
    }

    #[test]
    fn a_trim_comes_every_eighth_of_the_history() {
        let trim = HistoryTrim::new(1000);
        let due: Vec<usize> = (1..=400).filter(|_| trim.completed()).collect();
        assert_eq!(due.len(), 3, "125 completions apart");
        let every_time = HistoryTrim::new(3);
        assert!((0..5).all(|_| every_time.completed()));
    }
}
