//! Cluster-wide admission: at most `query.max-concurrent` queries run and at most
//! `query.max-queued` wait, counted over every coordinator together in one state-store key
//! changed only by compare-and-set. A slot is a lease of one incarnation of its holder (the
//! coordinator that admitted the query, then the worker driving it), named by the holder's
//! start time as its seed, registry record and heartbeats carry it: slots of a holder that is
//! gone or restarted since are released, by a restarted coordinator at once, by anyone who
//! needs the room, and by the Raft leader's sweep for queries that ended without giving back.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;
use shoal_state_store::{CasOutcome, ReadConsistency, StateStore};

use crate::protocol::errors;
use crate::registry;
use crate::workers::Workers;

/// Format 2 of the slots (holders with incarnations); format 1 was `admission/slots`.
const KEY: &str = "admission/leases";
const LIVENESS_RECHECK: Duration = Duration::from_secs(1);
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a change of the slots is retried before it is reported as failed.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);

/// Who answers for a slot: while this incarnation of it lives, the slot is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Coordinator { id: u64, incarnation: u64 },
    Worker { id: String, incarnation: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slots {
    /// Running queries and who holds each.
    running: BTreeMap<String, Holder>,
    /// Waiting queries, oldest first by id, and their coordinators.
    queued: BTreeMap<String, Holder>,
}

/// The nodes alive now and the incarnation of each, for releasing slots of the dead.
pub struct Alive {
    /// Coordinators that are members and answer; `None` where no registry record says which
    /// start it is (a coordinator between joining and registering).
    coordinators: BTreeMap<u64, Option<u64>>,
    workers: BTreeMap<String, u64>,
}

impl Alive {
    /// A slot of an earlier incarnation than the live one is stale (incarnations are start
    /// times, so a later one is the live one or newer than what this node has heard yet).
    fn holds(&self, holder: &Holder) -> bool {
        match holder {
            Holder::Coordinator { id, incarnation } => match self.coordinators.get(id) {
                Some(Some(live)) => incarnation >= live,
                Some(None) => true,
                None => false,
            },
            Holder::Worker { id, incarnation } => {
                self.workers.get(id).is_some_and(|live| incarnation >= live)
            }
        }
    }
}

/// The limits; `max_concurrent == 0` admits everything at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_queued: usize,
}

fn unavailable(e: impl std::fmt::Display) -> QueryError {
    errors::unavailable(format!("admission is unavailable: {e}"))
}

async fn read(store: &StateStore) -> Result<(Slots, u64), QueryError> {
    match store
        .get(KEY, ReadConsistency::Linearizable)
        .await
        .map_err(unavailable)?
    {
        Some(kv) => {
            let slots = serde_json::from_slice(&kv.value).map_err(unavailable)?;
            Ok((slots, kv.mod_revision))
        }
        None => Ok((Slots::default(), 0)),
    }
}

async fn write(store: &StateStore, slots: &Slots, expected: u64) -> Result<bool, QueryError> {
    let value = serde_json::to_vec(slots).map_err(unavailable)?;
    let outcome = store
        .compare_and_set(KEY, expected, value)
        .await
        .map_err(unavailable)?;
    Ok(matches!(outcome, CasOutcome::Swapped { .. }))
}

/// Coordinators that are members and answer, and the workers in `workers`, with the
/// incarnation of each.
async fn alive(store: &StateStore, workers: &Workers) -> Alive {
    let coordinators = registry::live_starts(store).await;
    let workers = workers
        .live()
        .into_iter()
        .map(|w| (w.heartbeat.id, w.heartbeat.started_at_ms))
        .collect();
    Alive {
        coordinators,
        workers,
    }
}

/// This incarnation of this coordinator, as an admission slot's holder.
pub fn holder(node: &crate::node::Coordinator) -> Holder {
    Holder::Coordinator {
        id: node.id(),
        incarnation: node.started_at_ms,
    }
}

pub fn limits(node: &crate::node::Coordinator) -> Limits {
    Limits {
        max_concurrent: node.config.max_concurrent_queries,
        max_queued: node.config.max_queued_queries,
    }
}

/// Wait for a slot for query `id`, held by `me`; an error if the queue is full.
pub async fn acquire(
    store: &StateStore,
    limits: Limits,
    id: &str,
    me: Holder,
    workers: &Workers,
) -> Result<(), QueryError> {
    if limits.max_concurrent == 0 {
        return Ok(());
    }
    loop {
        let (mut slots, revision) = read(store).await?;
        // Room taken or a queue head other than this query: whatever the dead hold is free.
        let other_first = slots.queued.keys().next().is_some_and(|first| first != id);
        if slots.running.len() >= limits.max_concurrent || other_first {
            let alive = alive(store, workers).await;
            slots.running.retain(|_, holder| alive.holds(holder));
            slots.queued.retain(|_, holder| alive.holds(holder));
        }
        let first_waiting = slots.queued.keys().next().is_none_or(|first| first == id);
        if slots.running.len() < limits.max_concurrent && first_waiting {
            slots.queued.remove(id);
            slots.running.insert(id.to_string(), me.clone());
            if write(store, &slots, revision).await? {
                return Ok(());
            }
            continue;
        }
        // Any change to the slots after this read wakes the wait below.
        let mut changes = store.watch(KEY, revision + 1).map_err(unavailable)?;
        if !slots.queued.contains_key(id) {
            if slots.queued.len() >= limits.max_queued {
                return Err(errors::queue_full(format!(
                    "too many queued queries: {} are running and {} waiting in the cluster",
                    slots.running.len(),
                    slots.queued.len()
                )));
            }
            slots.queued.insert(id.to_string(), me.clone());
            if !write(store, &slots, revision).await? {
                continue;
            }
        }
        // Wake on the next change of the slots; look again after a while anyway, since a
        // holder that died frees its slots without writing anything.
        let _ = tokio::time::timeout(LIVENESS_RECHECK, changes.next()).await;
    }
}

/// Queries holding a slot and queries waiting for one, as this coordinator's copy has them.
pub async fn counts(store: &StateStore) -> (usize, usize) {
    match store.get(KEY, ReadConsistency::Local).await {
        Ok(Some(kv)) => serde_json::from_slice::<Slots>(&kv.value)
            .map(|s| (s.running.len(), s.queued.len()))
            .unwrap_or((0, 0)),
        _ => (0, 0),
    }
}

/// Query `id`'s running slot is held by `holder` from now on.
pub async fn hand_over(
    store: &StateStore,
    limits: Limits,
    id: &str,
    holder: Holder,
) -> Result<(), QueryError> {
    change(store, limits, id, |slots| match slots.running.get_mut(id) {
        Some(current) if *current != holder => {
            *current = holder.clone();
            true
        }
        _ => false,
    })
    .await
}

/// Give back query `id`'s slot (running or queued).
pub async fn release(store: &StateStore, limits: Limits, id: &str) -> Result<(), QueryError> {
    change(store, limits, id, |slots| {
        slots.running.remove(id).is_some() | slots.queued.remove(id).is_some()
    })
    .await
}

/// Give back every slot of earlier incarnations of coordinator `id` (it restarted as
/// `incarnation`): their queries were taken over or failed by the others meanwhile.
pub async fn release_earlier(
    store: &StateStore,
    limits: Limits,
    id: u64,
    incarnation: u64,
) -> Result<(), QueryError> {
    let earlier = |holder: &Holder| {
        matches!(holder, Holder::Coordinator { id: held, incarnation: at }
            if *held == id && *at < incarnation)
    };
    change(store, limits, "earlier incarnations", |slots| {
        let before = slots.running.len() + slots.queued.len();
        slots.running.retain(|_, holder| !earlier(holder));
        slots.queued.retain(|_, holder| !earlier(holder));
        slots.running.len() + slots.queued.len() != before
    })
    .await
}

/// On the Raft leader: give back the slots of queries whose record says they ended (or that
/// have no record), which a holder could not give back itself. Returns how many.
pub async fn sweep(store: &StateStore, limits: Limits) -> Result<usize, QueryError> {
    if limits.max_concurrent == 0 {
        return Ok(0);
    }
    let (slots, _) = read(store).await?;
    let mut ended = Vec::new();
    for id in slots.running.keys().chain(slots.queued.keys()) {
        match crate::query::record::get(store, id).await {
            Ok(Some(record)) if !record.state.is_done() => {}
            Ok(_) => ended.push(id.clone()),
            Err(e) => return Err(unavailable(e)),
        }
    }
    if ended.is_empty() {
        return Ok(0);
    }
    change(store, limits, "ended queries", |slots| {
        let before = slots.running.len() + slots.queued.len();
        for id in &ended {
            slots.running.remove(id);
            slots.queued.remove(id);
        }
        slots.running.len() + slots.queued.len() != before
    })
    .await?;
    Ok(ended.len())
}

/// Apply `edit` to the slots by compare-and-set, retrying conflicts and store errors for up
/// to [`CHANGE_DEADLINE`]; `edit` returns false when nothing changed. `what` names the change
/// in the error.
async fn change(
    store: &StateStore,
    limits: Limits,
    what: &str,
    mut edit: impl FnMut(&mut Slots) -> bool,
) -> Result<(), QueryError> {
    if limits.max_concurrent == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + CHANGE_DEADLINE;
    let mut last_error = String::from("every compare-and-set conflicted");
    while tokio::time::Instant::now() < deadline {
        let (mut slots, revision) = match read(store).await {
            Ok(read) => read,
            Err(e) => {
                last_error = e.message;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if !edit(&mut slots) {
            return Ok(());
        }
        match write(store, &slots, revision).await {
            Ok(true) => return Ok(()),
            // Someone else changed the slots: read again at once.
            Ok(false) => {}
            Err(e) => {
                last_error = e.message;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    tracing::error!(query = %what, error = %last_error, "could not change the admission slots");
    Err(unavailable(format!(
        "could not change the admission slots ({what}) within {CHANGE_DEADLINE:?}: {last_error}"
    )))
}
