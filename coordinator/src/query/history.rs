//! The query history: which finished records a coordinator may remove, and when. A record
//! goes only once its client read the last page or abandoned the query, so trimming never
//! cuts a reader; each coordinator trims after every eighth of `query.max-history` of its
//! completions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use shoal_state_store::{Op, ReadConsistency, StateStore, TxnRequest};

use crate::error::{CoordinatorError, Result};
use crate::node::Coordinator;
use crate::query::record::{key, now_ms, QueryState, PREFIX};
use crate::registry;

/// This coordinator's side of the history: when it trims next, and the clients that read
/// pages through it.
#[derive(Debug)]
pub struct History {
    trim: HistoryTrim,
    /// Per query: when its client last asked here, and whether it got the last page.
    readers: Mutex<HashMap<String, (Instant, bool)>>,
}

impl History {
    pub fn new(max_history: usize) -> Self {
        History {
            trim: HistoryTrim::new(max_history),
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// A client of query `id` was just answered; `last` when that was the end of its results.
    pub fn note_read(&self, id: &str, last: bool) {
        if let Ok(mut readers) = self.readers.lock() {
            readers.insert(id.to_string(), (Instant::now(), last));
        }
    }

    /// The client of query `id` is still there (a heartbeat), having read what it read.
    pub fn note_alive(&self, id: &str) {
        if let Ok(mut readers) = self.readers.lock() {
            let done = readers.get(id).is_some_and(|(_, done)| *done);
            readers.insert(id.to_string(), (Instant::now(), done));
        }
    }

    /// What this coordinator knows of the client of query `id`.
    pub fn reader(&self, id: &str, client_timeout: Duration) -> Option<Reader> {
        let readers = self.readers.lock().ok()?;
        let (last_asked, done) = readers.get(id)?;
        Some(if *done {
            Reader::Done
        } else if last_asked.elapsed() > client_timeout {
            Reader::Idle
        } else {
            Reader::Active
        })
    }

    fn forget(&self, ids: &[String]) {
        if let Ok(mut readers) = self.readers.lock() {
            for id in ids {
                readers.remove(id);
            }
        }
    }

    /// Forget readers not heard from for `max_idle`: those of queries another coordinator
    /// trimmed.
    pub fn forget_idle(&self, max_idle: Duration) {
        if let Ok(mut readers) = self.readers.lock() {
            readers.retain(|_, (last_asked, _)| last_asked.elapsed() <= max_idle);
        }
    }
}

/// One query of this coordinator ended: trim the history when it is time, as far as
/// [`TrimRule`] allows.
pub async fn ended(node: &Coordinator) {
    if !node.history.trim.completed() {
        return;
    }
    let timeout = node.config.query_client_timeout;
    let rule = TrimRule {
        me: node.id(),
        my_incarnation: node.started_at_ms,
        now_ms: now_ms(),
        client_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        live: registry::live_starts(&node.store).await,
    };
    let may_go = |brief: &Brief| rule.may_go(brief, node.history.reader(&brief.id, timeout));
    match trim_history(&node.store, node.config.max_query_history, may_go).await {
        Ok(gone) => node.history.forget(&gone),
        Err(e) => tracing::debug!(error = %e, "cannot trim query history"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::record::{list, put, sample, QueryRecord};

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
