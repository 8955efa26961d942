//! Building and installing snapshots of the state machine. A snapshot is captured as a stream of
//! records in the apply task (so it is consistent), stored in chunks, and handed to openraft,
//! which sends it in pieces; an incoming snapshot is checked whole, then installed together with
//! the state it brings in one atomic batch, so a crash never leaves half of it.

use std::io::Cursor;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::{AnyError, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageIOError};

use crate::error::{StoreError, StoreResult};
use crate::keyspace::{KeySpace, Space};
use crate::kv::KvSpace;
use crate::snapshot_format::{SnapshotStream, StreamWriter};
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::{AppliedSpace, AppliedState, SmShared, APPLIED};
use crate::types::{SnapshotMeta, StorageError, TypeConfig};

pub(crate) fn snapshot_error(verb: ErrorVerb, e: &StoreError) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(e)).into()
}

/// A copy of the state machine as a snapshot stream, with the state it was taken at.
pub(crate) struct Captured {
    state: AppliedState,
    data: Vec<u8>,
    entries: u64,
}

impl SmShared {
    /// Stream the key-value space as it stands; call it where no apply runs meanwhile.
    pub(crate) fn capture_snapshot(&self) -> StoreResult<Captured> {
        let state = self.applied_state()?;
        let mut writer = StreamWriter::new(state.revision, self.max_encoded_len);
        let mut entries = 0;
        for item in self.kv.iter() {
            let (key, value) = item?;
            writer.push(&key, &value)?;
            entries += 1;
        }
        Ok(Captured {
            state,
            data: writer.finish(),
            entries,
        })
    }

    /// Replace the state machine by the snapshot `data`, refused whole if it is damaged.
    pub(crate) fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> StoreResult<()> {
        let stream = SnapshotStream::open(&data, self.max_encoded_len, &meta.snapshot_id)?;
        let header = stream.header();
        let _guard = self.snapshots.lock();
        let manifest = self.snapshots.stage(meta, &data)?;
        let mut batch = sled::Batch::default();
        // Everything in the tree goes: keys, events, the applied state and the old manifest.
        for item in self.kv.tree().iter().keys() {
            batch.remove(item.map_err(|e| StoreError::sled(KvSpace::NAME, e))?);
        }
        stream.for_each_entry(|key, value| {
            Space::<KvSpace>::batch_insert(&mut batch, &key, &value)
        })?;
        let state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            revision: header.revision,
            oldest_event_revision: header.revision + 1,
        };
        Space::<AppliedSpace>::batch_insert(&mut batch, &APPLIED.to_string(), &state)?;
        SnapshotStore::commit_into(&mut batch, &manifest)?;
        self.kv.apply_batch(batch)?;
        self.kv.flush()?;
        self.snapshots.remove_stale_chunks()?;
        self.applied_index
            .store(meta.last_log_id.map_or(0, |l| l.index), Ordering::SeqCst);
        self.set_applied_revision(header.revision);
        self.hub.reset(header.revision);
        tracing::info!(
            snapshot = %meta.snapshot_id,
            revision = header.revision,
            entries = header.entries,
            bytes = data.len(),
            chunks = manifest.chunks,
            "installed snapshot"
        );
        Ok(())
    }

    pub fn current_snapshot_id(&self) -> StoreResult<Option<String>> {
        Ok(self.snapshots.manifest()?.map(|m| m.meta.snapshot_id))
    }

    pub(crate) fn current_snapshot(&self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.snapshots.current()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// A consistent copy of the state machine, taken in the apply task, written out as a snapshot.
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
    captured: Option<StoreResult<Captured>>,
}

impl SnapshotBuilder {
    pub(crate) fn new(shared: Arc<SmShared>) -> Self {
        let captured = Some(shared.capture_snapshot());
        SnapshotBuilder { shared, captured }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let captured = match self.captured.take() {
            Some(Ok(captured)) => captured,
            Some(Err(e)) => return Err(snapshot_error(ErrorVerb::Read, &e)),
            None => {
                let e = StoreError::InvalidArgument("this snapshot was built already".into());
                return Err(snapshot_error(ErrorVerb::Read, &e));
            }
        };
        let Captured {
            state,
            data,
            entries,
        } = captured;
        let counter = self.shared.snapshot_counter.fetch_add(1, Ordering::SeqCst);
        let snapshot_id = match state.last_applied {
            Some(last) => format!("{}-{}-{counter}", last.leader_id.term, last.index),
            None => format!("0-0-{counter}"),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id,
        };
        let stored = self
            .shared
            .snapshots
            .store(&meta, &data)
            .map_err(|e| snapshot_error(ErrorVerb::Write, &e))?;
        // Flushing makes the state machine durable up to the snapshot before the log behind it
        // is purged.
        self.shared
            .snapshots
            .flush()
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, &e))?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            entries,
            bytes = data.len(),
            chunks = stored.as_ref().map(|m| m.chunks),
            "built snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;
    use crate::state_machine::StateMachineStore;
    use crate::types::{Command, Entry, KeyValue, Op, TxnRequest};

    /// Far below the snapshot's size, as a test of snapshots many times the limit.
    const LIMIT: u64 = 64 * 1024;
    const KEYS: u64 = 5_000;

    fn open() -> (sled::Db, Arc<SmShared>) {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let sm = SmShared::open_limited(&db, 1_000, LIMIT).expect("state machine");
        (db, sm)
    }

    fn entry(index: u64, txns: Vec<TxnRequest>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command { txns }),
        }
    }

    fn value(n: u64, round: u64) -> Vec<u8> {
        (0..1024u64).map(|i| (n * 31 + i + round) as u8).collect()
    }

    /// 5,000 keys of 1 KiB, every 7th written twice, and 100 keys created and deleted again.
    fn fill(sm: &SmShared) {
        let mut entries = Vec::new();
        let puts: Vec<TxnRequest> = (0..KEYS)
            .map(|n| TxnRequest::put(format!("key/{n:05}"), value(n, 0)))
            .collect();
        for chunk in puts.chunks(100) {
            entries.push(entry(entries.len() as u64 + 1, chunk.to_vec()));
        }
        let again = (0..KEYS).step_by(7);
        let again = again.map(|n| TxnRequest::put(format!("key/{n:05}"), value(n, 1)));
        entries.push(entry(entries.len() as u64 + 1, again.collect()));
        let extra = (0..100).map(|n| TxnRequest::put(format!("extra/{n}"), "x"));
        entries.push(entry(entries.len() as u64 + 1, extra.collect()));
        let gone = TxnRequest {
            success: vec![Op::DeletePrefix {
                prefix: "extra/".into(),
            }],
            ..TxnRequest::default()
        };
        entries.push(entry(entries.len() as u64 + 1, vec![gone]));
        sm.apply_entries(entries).expect("apply");
    }

    fn everything(sm: &SmShared) -> Vec<KeyValue> {
        sm.scan("").expect("scan")
    }

    /// A member with a few keys of its own, as a snapshot finds it.
    fn target() -> (sled::Db, Arc<SmShared>) {
        let (db, sm) = open();
        let txns = vec![TxnRequest::put("old/a", "1"), TxnRequest::put("old/b", "2")];
        sm.apply_entries(vec![entry(1, txns)]).expect("apply");
        (db, sm)
    }

    async fn build(sm: &Arc<SmShared>) -> (SnapshotMeta, Vec<u8>) {
        let mut store = StateMachineStore::new(sm.clone());
        let mut builder = store.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.expect("build snapshot");
        (snapshot.meta, snapshot.snapshot.into_inner())
    }

    #[tokio::test]
    async fn a_snapshot_many_times_the_record_limit_is_built_stored_in_chunks_and_installed() {
        let (db, source) = open();
        fill(&source);
        let (meta, data) = build(&source).await;
        assert!(data.len() as u64 > KEYS * 1024, "{} bytes", data.len());
        assert_eq!(meta.last_log_id.map(|l| l.index), Some(53));

        // No value in the tree is larger than the limit; the snapshot is in many chunks.
        let tree = db.open_tree("state_machine").expect("tree");
        for item in tree.iter() {
            let (key, value) = item.expect("entry");
            assert!(
                value.len() as u64 <= LIMIT,
                "{key:?}: {} bytes",
                value.len()
            );
        }
        let manifest = source
            .snapshots
            .manifest()
            .expect("manifest")
            .expect("stored");
        assert_eq!(manifest.len, data.len() as u64);
        assert_eq!(manifest.chunks, (data.len() as u64).div_ceil(LIMIT / 2));
        let mut store = StateMachineStore::new(source.clone());
        let current = store
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!(current.meta, meta);
        assert_eq!(
            current.snapshot.into_inner(),
            data,
            "chunks put back together"
        );

        let (_target_db, target) = target();
        let mut target_store = StateMachineStore::new(target.clone());
        target_store
            .install_snapshot(&meta, Box::new(Cursor::new(data.clone())))
            .await
            .expect("install");
        let installed = everything(&target);
        assert_eq!(installed.len() as u64, KEYS, "old keys gone, every key in");
        assert_eq!(installed, everything(&source), "keys, values and revisions");
        let (from, to) = (
            source.applied_state().expect("a"),
            target.applied_state().expect("b"),
        );
        assert_eq!(
            (to.last_applied, to.revision),
            (from.last_applied, from.revision)
        );
        assert_eq!(target.applied_revision(), source.applied_revision());
        assert_eq!(target.applied_index(), 53);
        let current = target_store
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!((current.meta, current.snapshot.into_inner()), (meta, data));
    }

    #[tokio::test]
    async fn a_truncated_or_damaged_snapshot_is_refused_and_changes_nothing() {
        let (_db, source) = open();
        fill(&source);
        let (meta, data) = build(&source).await;
        let (_target_db, target) = target();
        let before = (
            everything(&target),
            target.applied_state().expect("state"),
            target.current_snapshot_id().expect("id"),
            target.applied_revision(),
        );
        let half = data.len() / 2;
        let mut damaged: Vec<(String, Vec<u8>)> = [0, 7, 27, 44, half, data.len() - 1]
            .into_iter()
            .map(|len| (format!("truncated to {len}"), data[..len].to_vec()))
            .collect();
        for at in [3, 14, 24, 40, half, data.len() - 12, data.len() - 1] {
            let mut flipped = data.clone();
            flipped[at] ^= 0x01;
            damaged.push((format!("byte {at} flipped"), flipped));
        }
        let mut longer = data.clone();
        longer.extend_from_slice(b"more");
        damaged.push(("trailing bytes".into(), longer));
        for (what, bytes) in damaged {
            let error = target.install(&meta, bytes).expect_err(&what);
            assert!(
                matches!(error, StoreError::Corrupt { .. }),
                "{what}: {error:?}"
            );
            let after = (
                everything(&target),
                target.applied_state().expect("state"),
                target.current_snapshot_id().expect("id"),
                target.applied_revision(),
            );
            assert_eq!(after, before, "{what}: the target is unchanged");
        }
        target
            .install(&meta, data)
            .expect("the intact snapshot installs");
        assert_eq!(everything(&target), everything(&source));
    }
}
