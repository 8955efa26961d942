//! Cluster-wide admission: at most `query.max-concurrent` queries run and at most
//! `query.max-queued` wait, counted over every coordinator together in one state-store key
//! changed only by compare-and-set. Slots held by a coordinator that is gone are released.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;
use shoal_state_store::{CasOutcome, RaftRole, ReadConsistency, StateStore};

use crate::protocol::errors;

const KEY: &str = "admission/slots";
const LIVENESS_RECHECK: Duration = Duration::from_secs(1);
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slots {
    /// Running queries and the coordinator that admitted each.
    running: BTreeMap<String, u64>,
    /// Waiting queries, oldest first by id, and their coordinators.
    queued: BTreeMap<String, u64>,
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

/// Coordinators that are members and answer; slots of any other are released.
async fn live_coordinators(store: &StateStore) -> BTreeSet<u64> {
    store
        .status()
        .await
        .members
        .into_iter()
        .filter(|m| m.role != RaftRole::Unknown)
        .map(|m| m.id)
        .collect()
}

/// Wait for a slot for query `id` of coordinator `coordinator`; an error if the queue is full.
pub async fn acquire(
    store: &StateStore,
    limits: Limits,
    id: &str,
    coordinator: u64,
) -> Result<(), QueryError> {
    if limits.max_concurrent == 0 {
        return Ok(());
    }
    loop {
        let (mut slots, revision) = read(store).await?;
        if slots.running.len() >= limits.max_concurrent && !slots.queued.contains_key(id) {
            let live = live_coordinators(store).await;
            slots.running.retain(|_, c| live.contains(c));
            slots.queued.retain(|_, c| live.contains(c));
        }
        let first_waiting = slots.queued.keys().next().is_none_or(|first| first == id);
        if slots.running.len() < limits.max_concurrent && first_waiting {
            slots.queued.remove(id);
            slots.running.insert(id.to_string(), coordinator);
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
            slots.queued.insert(id.to_string(), coordinator);
            if !write(store, &slots, revision).await? {
                continue;
            }
        }
        // Wake on the next change of the slots; look again after a while anyway, since a
        // coordinator that died frees its slots without writing anything.
        let _ = tokio::time::timeout(LIVENESS_RECHECK, changes.next()).await;
    }
}

/// Give back query `id`'s slot (running or queued).
pub async fn release(store: &StateStore, limits: Limits, id: &str) {
    if limits.max_concurrent == 0 {
        return;
    }
    for _ in 0..50 {
        let Ok((mut slots, revision)) = read(store).await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        if slots.running.remove(id).is_none() && slots.queued.remove(id).is_none() {
            return;
        }
        if let Ok(true) = write(store, &slots, revision).await {
            return;
        }
    }
    tracing::warn!(query = %id, "could not release an admission slot; it is freed when its coordinator leaves");
}
