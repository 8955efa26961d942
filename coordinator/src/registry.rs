//! The coordinator registry in the state store: each coordinator's URLs and whether it takes
//! new queries (active) or only serves what it has (backup).

use serde::{Deserialize, Serialize};
use shoal_state_store::{CasOutcome, ReadConsistency, StateStore};

use crate::error::{CoordinatorError, Result};

const PREFIX: &str = "cluster/coordinators/";

/// Whether a coordinator accepts new queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Active,
    Backup,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Active => "active",
            Mode::Backup => "backup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorRecord {
    pub id: u64,
    pub client_url: String,
    pub internal_url: String,
    pub mode: Mode,
    pub started_at_ms: u64,
}

fn key(id: u64) -> String {
    format!("{PREFIX}{id:020}")
}

fn decode(value: &[u8]) -> Result<CoordinatorRecord> {
    serde_json::from_slice(value)
        .map_err(|e| CoordinatorError::Internal(format!("unreadable coordinator record: {e}")))
}

fn encode(record: &CoordinatorRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| CoordinatorError::Internal(e.to_string()))
}

pub async fn get(
    store: &StateStore,
    id: u64,
    consistency: ReadConsistency,
) -> Result<Option<CoordinatorRecord>> {
    match store.get(&key(id), consistency).await? {
        Some(kv) => Ok(Some(decode(&kv.value)?)),
        None => Ok(None),
    }
}

pub async fn list(
    store: &StateStore,
    consistency: ReadConsistency,
) -> Result<Vec<CoordinatorRecord>> {
    store
        .scan(PREFIX, consistency)
        .await?
        .iter()
        .map(|kv| decode(&kv.value))
        .collect()
}

/// The registry as of now when a quorum answers, else as this coordinator last saw it.
pub async fn list_freshest(store: &StateStore) -> Result<Vec<CoordinatorRecord>> {
    if store.current_leader().is_none() {
        return list(store, ReadConsistency::Local).await;
    }
    match list(store, ReadConsistency::Linearizable).await {
        Ok(records) => Ok(records),
        Err(e) => {
            tracing::debug!(error = %e, "linearizable read failed; using this coordinator's view");
            list(store, ReadConsistency::Local).await
        }
    }
}

/// Record this coordinator's URLs and start time, keeping the mode it had.
pub async fn register(
    store: &StateStore,
    mut record: CoordinatorRecord,
) -> Result<CoordinatorRecord> {
    loop {
        let current = store
            .get(&key(record.id), ReadConsistency::Linearizable)
            .await?;
        let expected = current.as_ref().map_or(0, |kv| kv.mod_revision);
        if let Some(kv) = &current {
            record.mode = decode(&kv.value)?.mode;
        }
        if let CasOutcome::Swapped { .. } = store
            .compare_and_set(&key(record.id), expected, encode(&record)?)
            .await?
        {
            return Ok(record);
        }
    }
}

/// Change a coordinator's mode; returns the updated record.
pub async fn set_mode(store: &StateStore, id: u64, mode: Mode) -> Result<CoordinatorRecord> {
    loop {
        let Some(kv) = store.get(&key(id), ReadConsistency::Linearizable).await? else {
            return Err(CoordinatorError::NotFound(format!(
                "coordinator {id} is not registered"
            )));
        };
        let mut record = decode(&kv.value)?;
        record.mode = mode;
        if let CasOutcome::Swapped { .. } = store
            .compare_and_set(&key(id), kv.mod_revision, encode(&record)?)
            .await?
        {
            return Ok(record);
        }
    }
}

/// Coordinators that are members and answer now (the store's recent status), each with the
/// start (incarnation) its registry record names, None where it has no record yet.
pub async fn live_starts(store: &StateStore) -> std::collections::BTreeMap<u64, Option<u64>> {
    let started: std::collections::BTreeMap<u64, u64> = list(store, ReadConsistency::Local)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id, r.started_at_ms))
        .collect();
    store
        .recent_status()
        .await
        .members
        .into_iter()
        .filter(|m| m.role != shoal_state_store::RaftRole::Unknown)
        .map(|m| (m.id, started.get(&m.id).copied()))
        .collect()
}

pub async fn remove(store: &StateStore, id: u64) -> Result<()> {
    store.delete(&key(id)).await?;
    Ok(())
}
