//! Cluster-wide admission: at most `query.max-concurrent` queries run and at most
//! `query.max-queued` wait, counted over every coordinator together in one state-store key
//! changed only by compare-and-set. A slot is held by the coordinator that admitted the query
//! and then by the worker driving it; slots of a holder that is gone are released.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;
use shoal_state_store::{CasOutcome, RaftRole, ReadConsistency, StateStore};

use crate::protocol::errors;
use crate::workers::Workers;

const KEY: &str = "admission/slots";
const LIVENESS_RECHECK: Duration = Duration::from_secs(1);
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Who answers for a slot: while it lives, the slot is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Coordinator(u64),
    Worker(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slots {
    /// Running queries and who holds each.
    running: BTreeMap<String, Holder>,
    /// Waiting queries, oldest first by id, and their coordinators.
    queued: BTreeMap<String, Holder>,
}

/// The nodes alive now, for releasing slots of the dead.
pub struct Alive {
    coordinators: BTreeSet<u64>,
    workers: BTreeSet<String>,
}

impl Alive {
    fn holds(&self, holder: &Holder) -> bool {
        match holder {
            Holder::Coordinator(id) => self.coordinators.contains(id),
            Holder::Worker(id) => self.workers.contains(id),
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

/// Coordinators that are members and answer, and the workers in `workers`.
async fn alive(store: &StateStore, workers: &Workers) -> Alive {
    let coordinators = store
        .recent_status()
        .await
        .members
        .into_iter()
        .filter(|m| m.role != RaftRole::Unknown)
        .map(|m| m.id)
        .collect();
    let workers = workers.live().into_iter().map(|w| w.heartbeat.id).collect();
    Alive {
        coordinators,
        workers,
    }
}

/// Wait for a slot for query `id` of coordinator `coordinator`; an error if the queue is full.
pub async fn acquire(
    store: &StateStore,
    limits: Limits,
    id: &str,
    coordinator: u64,
    workers: &Workers,
) -> Result<(), QueryError> {
    let me = Holder::Coordinator(coordinator);
    if limits.max_concurrent == 0 {
        return Ok(());
    }
    loop {
        let (mut slots, revision) = read(store).await?;
        if slots.running.len() >= limits.max_concurrent {
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
        // coordinator that died frees its slots without writing anything.
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
pub async fn hand_over(store: &StateStore, limits: Limits, id: &str, holder: Holder) {
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
pub async fn release(store: &StateStore, limits: Limits, id: &str) {
    change(store, limits, id, |slots| {
        slots.running.remove(id).is_some() | slots.queued.remove(id).is_some()
    })
    .await
}

/// Apply `edit` to the slots by compare-and-set; `edit` returns false when nothing changed.
async fn change(
    store: &StateStore,
    limits: Limits,
    id: &str,
    mut edit: impl FnMut(&mut Slots) -> bool,
) {
    if limits.max_concurrent == 0 {
        return;
    }
    for _ in 0..50 {
        let Ok((mut slots, revision)) = read(store).await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        if !edit(&mut slots) {
            return;
        }
        if let Ok(true) = write(store, &slots, revision).await {
            return;
        }
    }
    tracing::warn!(query = %id, "could not change an admission slot; it is freed when its holder leaves");
}
