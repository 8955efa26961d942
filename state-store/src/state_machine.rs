//! The replicated state machine on sled: the key-value space, retained watch events, the
//! applied pointer and the current snapshot (see `snapshot_store`) share the `state_machine`
//! tree so that every apply, and every snapshot install, is one atomic batch.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, Snapshot, StorageIOError,
};
use serde::{Deserialize, Serialize};

use crate::codec::MAX_ENCODED_LEN;
use crate::error::{StoreError, StoreResult};
use crate::keyspace::{KeySpace, Space};
use crate::kv::{Applier, KvSpace};
use crate::snapshot::{snapshot_error, SnapshotBuilder};
use crate::snapshot_store::SnapshotStore;
use crate::types::{
    CommandOutcome, Entry, Event, KeyValue, LogId, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use crate::watch::WatchHub;

/// Where the state machine stands: the last applied log id, membership and revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The store's revision: the number of applied transactions that wrote something.
    pub revision: u64,
    /// The oldest revision whose events are still retained for watches.
    pub oldest_event_revision: u64,
}

pub struct AppliedSpace;
impl KeySpace for AppliedSpace {
    const NAME: &'static str = "applied_state";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'a';
    type Key = String;
    type Value = AppliedState;
}

/// Watch events retained by (revision, position in the revision).
pub struct EventSpace;
impl KeySpace for EventSpace {
    const NAME: &'static str = "events";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'e';
    type Key = (u64, u32);
    type Value = Event;
}

pub(crate) const APPLIED: &str = "applied";

/// State shared between the state machine (driven by openraft) and the store's readers.
pub struct SmShared {
    pub(crate) kv: Space<KvSpace>,
    applied: Space<AppliedSpace>,
    events: Space<EventSpace>,
    pub(crate) snapshots: SnapshotStore,
    pub(crate) hub: WatchHub,
    applied_revision: AtomicU64,
    /// Follows `applied_revision`, for callers waiting to read their own writes.
    revision_changes: tokio::sync::watch::Sender<u64>,
    pub(crate) applied_index: AtomicU64,
    event_retention: u64,
    pub(crate) snapshot_counter: AtomicU64,
    /// Largest record of a snapshot.
    pub(crate) max_encoded_len: u64,
}

impl SmShared {
    pub fn open(db: &sled::Db, event_retention: u64) -> StoreResult<Arc<Self>> {
        Self::open_limited(db, event_retention, MAX_ENCODED_LEN)
    }

    /// [`SmShared::open`] with a lower limit on each snapshot record (and stored chunk), for
    /// tests of snapshots many times that limit.
    #[doc(hidden)]
    pub fn open_limited(
        db: &sled::Db,
        event_retention: u64,
        max_encoded_len: u64,
    ) -> StoreResult<Arc<Self>> {
        let shared = SmShared {
            kv: Space::open(db)?,
            applied: Space::open(db)?,
            events: Space::open(db)?,
            snapshots: SnapshotStore::open(db, max_encoded_len)?,
            hub: WatchHub::new(),
            applied_revision: AtomicU64::new(0),
            revision_changes: tokio::sync::watch::channel(0).0,
            applied_index: AtomicU64::new(0),
            event_retention: event_retention.max(1),
            snapshot_counter: AtomicU64::new(0),
            max_encoded_len,
        };
        let state = shared.applied_state()?;
        shared.set_applied_revision(state.revision);
        shared
            .applied_index
            .store(state.last_applied.map_or(0, |l| l.index), Ordering::SeqCst);
        Ok(Arc::new(shared))
    }

    pub fn applied_state(&self) -> StoreResult<AppliedState> {
        Ok(self.applied.get(&APPLIED.to_string())?.unwrap_or_default())
    }

    /// The revision of the last applied write visible to readers.
    pub fn applied_revision(&self) -> u64 {
        self.applied_revision.load(Ordering::SeqCst)
    }

    pub(crate) fn set_applied_revision(&self, revision: u64) {
        self.applied_revision.store(revision, Ordering::SeqCst);
        self.revision_changes.send_replace(revision);
    }

    /// Wait (at most `timeout`) until revision `revision` is applied here; false if it was not.
    pub async fn wait_for_revision(&self, revision: u64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.revision_changes.subscribe();
        loop {
            if *changes.borrow_and_update() >= revision {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::SeqCst)
    }

    pub fn oldest_event_revision(&self) -> StoreResult<u64> {
        Ok(self.applied_state()?.oldest_event_revision.max(1))
    }

    pub fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        Ok(self
            .kv
            .get(&key.to_string())?
            .map(|v| v.into_key_value(key.to_string())))
    }

    pub fn scan(&self, prefix: &str) -> StoreResult<Vec<KeyValue>> {
        self.kv
            .scan_prefix_bytes(prefix.as_bytes())
            .map(|item| item.map(|(key, value)| value.into_key_value(key)))
            .collect()
    }

    /// Retained events with revisions in `from..=to`, in order.
    pub fn events_between(&self, from: u64, to: u64) -> StoreResult<Vec<Event>> {
        let oldest = self.oldest_event_revision()?;
        if from < oldest {
            return Err(StoreError::Compacted {
                requested: from,
                oldest,
            });
        }
        let mut out = Vec::new();
        for item in self.events.range_from(&(from, 0)) {
            let ((revision, _), event) = item?;
            if revision > to {
                break;
            }
            out.push(event);
        }
        Ok(out)
    }

    pub(crate) fn apply_entries(&self, entries: Vec<Entry>) -> StoreResult<Vec<CommandOutcome>> {
        let mut state = self.applied_state()?;
        let mut applier = Applier::new(&self.kv, state.revision);
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let mut outcome = CommandOutcome::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    crate::failpoints::stall_apply(&command);
                    for txn in &command.txns {
                        outcome.responses.push(applier.apply_txn(txn)?);
                    }
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            outcomes.push(outcome);
        }
        state.revision = applier.revision();
        let mut batch = sled::Batch::default();
        let events = applier.finish(&mut batch)?;
        self.add_events(&mut batch, &events, &mut state)?;
        Space::<AppliedSpace>::batch_insert(&mut batch, &APPLIED.to_string(), &state)?;
        self.kv.apply_batch(batch)?;
        self.applied_index
            .store(state.last_applied.map_or(0, |l| l.index), Ordering::SeqCst);
        self.set_applied_revision(state.revision);
        self.hub.publish(events);
        Ok(outcomes)
    }

    /// Record `events` and drop the ones that fell out of the retention window.
    fn add_events(
        &self,
        batch: &mut sled::Batch,
        events: &[Event],
        state: &mut AppliedState,
    ) -> StoreResult<()> {
        let mut position = 0u32;
        let mut last_revision = 0;
        for event in events {
            if event.revision() != last_revision {
                position = 0;
                last_revision = event.revision();
            }
            Space::<EventSpace>::batch_insert(batch, &(event.revision(), position), event)?;
            position += 1;
        }
        state.oldest_event_revision = state.oldest_event_revision.max(1);
        let keep_from = state.revision.saturating_sub(self.event_retention) + 1;
        if keep_from > state.oldest_event_revision {
            for item in self.events.iter() {
                let ((revision, position), _) = item?;
                if revision >= keep_from {
                    break;
                }
                Space::<EventSpace>::batch_remove(batch, &(revision, position));
            }
            state.oldest_event_revision = keep_from;
        }
        Ok(())
    }

    /// Number of keys in the key-value space.
    pub fn key_count(&self) -> StoreResult<u64> {
        let mut count = 0;
        for item in self.kv.iter() {
            item?;
            count += 1;
        }
        Ok(count)
    }
}

fn sm_error(verb: ErrorVerb, e: &StoreError) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(e)).into()
}

/// The state machine handed to openraft.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<SmShared>,
}

impl StateMachineStore {
    pub fn new(shared: Arc<SmShared>) -> Self {
        StateMachineStore { shared }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self
            .shared
            .applied_state()
            .map_err(|e| sm_error(ErrorVerb::Read, &e))?;
        Ok((state.last_applied, state.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.shared
            .apply_entries(entries)
            .map_err(|e| sm_error(ErrorVerb::Write, &e))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.shared.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.shared
            .install(meta, snapshot.into_inner())
            .map_err(|e| snapshot_error(ErrorVerb::Write, &e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.shared
            .current_snapshot()
            .map_err(|e| snapshot_error(ErrorVerb::Read, &e))
    }
}
