//! The current snapshot on disk: its stream cut into chunks (key space `snapshot_chunks`, one
//! value per chunk number) and a manifest (`snapshot_manifest`: metadata, length, chunk count),
//! both in the `state_machine` tree so that installing a snapshot writes the state it brings and
//! the snapshot itself in one atomic batch. Format 1 kept the whole snapshot as one value in the
//! `snapshot` tree; [`upgrade_from_v1`] moves it.

use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult};
use crate::keyspace::{KeySpace, Space};
use crate::snapshot_format;
use crate::types::SnapshotMeta;

/// Largest chunk of a stored snapshot.
const MAX_CHUNK_LEN: u64 = 1024 * 1024;

const CURRENT: &str = "current";

/// What is stored about the current snapshot besides its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub meta: SnapshotMeta,
    /// Length of the whole stream.
    pub len: u64,
    /// Chunks `0..chunks` hold the stream.
    pub chunks: u64,
}

pub struct ManifestSpace;
impl KeySpace for ManifestSpace {
    const NAME: &'static str = "snapshot_manifest";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'm';
    type Key = String;
    type Value = Manifest;
}

/// Chunks of the current snapshot by number. Their values are raw bytes, not encoded.
pub struct ChunkSpace;
impl KeySpace for ChunkSpace {
    const NAME: &'static str = "snapshot_chunks";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'c';
    type Key = u64;
    type Value = Vec<u8>;
}

/// The current snapshot of the state machine.
pub struct SnapshotStore {
    manifest: Space<ManifestSpace>,
    chunks: Space<ChunkSpace>,
    chunk_len: usize,
    /// Held while a snapshot is written (built or installed) or read whole, so that a reader
    /// never mixes two snapshots and an older snapshot never replaces a newer one.
    lock: Mutex<()>,
}

impl SnapshotStore {
    /// Chunks are at most 1 MiB and at most half of `max_encoded_len`.
    pub fn open(db: &sled::Db, max_encoded_len: u64) -> StoreResult<Self> {
        let chunk_len = MAX_CHUNK_LEN.min(max_encoded_len / 2).max(1);
        Ok(SnapshotStore {
            manifest: Space::open(db)?,
            chunks: Space::open(db)?,
            chunk_len: usize::try_from(chunk_len).unwrap_or(usize::MAX),
            lock: Mutex::new(()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Add to `batch` the writes that make `data` the current snapshot, removing chunks of the
    /// previous one beyond the new chunk count. Hold [`SnapshotStore::lock`].
    pub(crate) fn write_into(
        &self,
        batch: &mut sled::Batch,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> StoreResult<Manifest> {
        let mut chunks = 0u64;
        for piece in data.chunks(self.chunk_len) {
            Space::<ChunkSpace>::batch_insert_raw(batch, &chunks, piece);
            chunks += 1;
        }
        for key in self.chunks.raw_keys_from(&chunks) {
            batch.remove(key?);
        }
        let manifest = Manifest {
            meta: meta.clone(),
            len: data.len() as u64,
            chunks,
        };
        Space::<ManifestSpace>::batch_insert(batch, &CURRENT.to_string(), &manifest)?;
        Ok(manifest)
    }

    /// Make `data` the current snapshot unless the current one is newer; `None` if it was kept.
    pub fn store(&self, meta: &SnapshotMeta, data: &[u8]) -> StoreResult<Option<Manifest>> {
        let _guard = self.lock();
        if let Some(current) = self.manifest()? {
            if current.meta.last_log_id > meta.last_log_id {
                tracing::debug!(
                    kept = %current.meta.snapshot_id,
                    built = %meta.snapshot_id,
                    "a newer snapshot is stored; not replacing it"
                );
                return Ok(None);
            }
        }
        let mut batch = sled::Batch::default();
        let manifest = self.write_into(&mut batch, meta, data)?;
        self.chunks.apply_batch(batch)?;
        Ok(Some(manifest))
    }

    pub fn manifest(&self) -> StoreResult<Option<Manifest>> {
        self.manifest.get(&CURRENT.to_string())
    }

    /// The current snapshot, its chunks put back together.
    pub fn current(&self) -> StoreResult<Option<(SnapshotMeta, Vec<u8>)>> {
        let _guard = self.lock();
        let Some(manifest) = self.manifest()? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            keyspace: ChunkSpace::NAME,
            key: manifest.meta.snapshot_id.clone(),
            reason,
        };
        let mut data = Vec::new();
        let len = usize::try_from(manifest.len).unwrap_or(usize::MAX);
        data.try_reserve_exact(len)
            .map_err(|e| corrupt(format!("cannot hold {} bytes: {e}", manifest.len)))?;
        for number in 0..manifest.chunks {
            let chunk = self.chunks.get_raw(&number)?.ok_or_else(|| {
                corrupt(format!("chunk {number} of {} is missing", manifest.chunks))
            })?;
            if data.len() + chunk.len() > len {
                return Err(corrupt(format!(
                    "the chunks hold more than the {} bytes of the manifest",
                    manifest.len
                )));
            }
            data.extend_from_slice(&chunk);
        }
        if data.len() != len {
            return Err(corrupt(format!(
                "the chunks hold {} bytes, the manifest says {}",
                data.len(),
                manifest.len
            )));
        }
        Ok(Some((manifest.meta, data)))
    }

    pub async fn flush(&self) -> StoreResult<()> {
        self.chunks.flush_async().await
    }
}

/// Format 1: the whole snapshot as one value in the `snapshot` tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LegacySnapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

pub(crate) struct LegacySpace;
impl KeySpace for LegacySpace {
    const NAME: &'static str = "snapshot";
    const TREE: &'static str = "snapshot";
    const PREFIX: u8 = b's';
    type Key = String;
    type Value = LegacySnapshot;
}

fn has_legacy_tree(db: &sled::Db) -> bool {
    db.tree_names()
        .iter()
        .any(|name| name.as_ref() == LegacySpace::TREE.as_bytes())
}

/// Move a format-1 snapshot into chunks (re-encoded as a stream) and drop the `snapshot` tree.
/// Running it again after a crash part way through is harmless.
pub fn upgrade_from_v1(db: &sled::Db, max_encoded_len: u64) -> StoreResult<()> {
    if !has_legacy_tree(db) {
        return Ok(());
    }
    let legacy = Space::<LegacySpace>::open(db)?;
    if let Some(old) = legacy.get(&CURRENT.to_string())? {
        let id = old.meta.snapshot_id.clone();
        let data = snapshot_format::legacy_to_stream(&old.data, max_encoded_len, &id)?;
        let store = SnapshotStore::open(db, max_encoded_len)?;
        store.store(&old.meta, &data)?;
        db.flush()
            .map_err(|e| StoreError::sled(ChunkSpace::NAME, e))?;
        tracing::info!(snapshot = %id, bytes = data.len(), "moved the snapshot into chunks");
    }
    db.drop_tree(LegacySpace::TREE)
        .map_err(|e| StoreError::sled(LegacySpace::NAME, e))?;
    db.flush()
        .map_err(|e| StoreError::sled(LegacySpace::NAME, e))?;
    Ok(())
}

/// The snapshot id of a format-1 directory not yet upgraded.
pub fn legacy_snapshot_id(db: &sled::Db) -> StoreResult<Option<String>> {
    if !has_legacy_tree(db) {
        return Ok(None);
    }
    let legacy = Space::<LegacySpace>::open(db)?;
    Ok(legacy
        .get(&CURRENT.to_string())?
        .map(|s| s.meta.snapshot_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::kv::StoredValue;
    use crate::snapshot_format::{LegacyBody, SnapshotStream};

    fn stored(n: u8) -> StoredValue {
        StoredValue {
            value: vec![n; 3000],
            create_revision: 1,
            mod_revision: u64::from(n),
            version: 1,
        }
    }

    #[test]
    fn a_format_1_snapshot_moves_into_chunks_and_its_tree_is_dropped() {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let entries: Vec<(String, StoredValue)> =
            (0..20).map(|n| (format!("k/{n}"), stored(n))).collect();
        let body = LegacyBody {
            revision: 20,
            entries: entries.clone(),
        };
        let meta = SnapshotMeta {
            snapshot_id: "1-30-0".into(),
            ..SnapshotMeta::default()
        };
        let legacy = LegacySnapshot {
            meta: meta.clone(),
            data: codec::encode(&body).expect("encode"),
        };
        let space = Space::<LegacySpace>::open(&db).expect("legacy tree");
        space.insert(&CURRENT.to_string(), &legacy).expect("insert");
        assert_eq!(
            legacy_snapshot_id(&db).expect("id").as_deref(),
            Some("1-30-0")
        );

        upgrade_from_v1(&db, 8 * 1024).expect("upgrade");
        assert!(!has_legacy_tree(&db), "the snapshot tree is dropped");
        upgrade_from_v1(&db, 8 * 1024).expect("a second run changes nothing");
        let store = SnapshotStore::open(&db, 8 * 1024).expect("store");
        let manifest = store.manifest().expect("manifest").expect("stored");
        assert!(manifest.chunks > 10, "{manifest:?}");
        let (read_meta, data) = store.current().expect("read").expect("some");
        assert_eq!(read_meta, meta);
        let stream = SnapshotStream::open(&data, 8 * 1024, "1-30-0").expect("a stream");
        assert_eq!(stream.header().revision, 20);
        let mut read = Vec::new();
        stream
            .for_each_entry(|key, value| {
                read.push((key, value));
                Ok(())
            })
            .expect("entries");
        assert_eq!(read, entries);
    }

    #[test]
    fn a_missing_chunk_is_reported_not_papered_over() {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let store = SnapshotStore::open(&db, 8 * 1024).expect("store");
        let meta = SnapshotMeta::default();
        let stored = store.store(&meta, &[7u8; 20_000]).expect("store");
        assert_eq!(stored.map(|m| m.chunks), Some(5));
        store.chunks.remove(&2).expect("remove a chunk");
        let error = store.current().expect_err("a hole");
        assert!(error.to_string().contains("chunk 2 of 5"), "{error}");
    }
}
