//! The current snapshot on disk: its stream cut into chunks in a tree of their own
//! (`snapshot_chunks`, keyed by generation and chunk number) and a manifest in the
//! `state_machine` tree (`snapshot_manifest`: metadata, length, chunk count, generation).
//!
//! The chunks stay out of the `state_machine` tree because sled rewrites a whole leaf (up to 16
//! entries) when it consolidates it: megabyte chunks beside the applied state, written by every
//! apply, made every write cost a copy of the snapshot. A new snapshot's chunks are written and
//! flushed under a new generation first; the manifest naming that generation then goes into the
//! `state_machine` tree, in the same atomic batch as the state an installed snapshot brings; the
//! older generations are removed after. A crash in between leaves unreferenced chunks, removed
//! at the next open. Format 1 kept the whole snapshot as one value in the `snapshot` tree, format
//! 2 kept the chunks in the `state_machine` tree; [`upgrade_from_v1`] and [`upgrade_from_v2`]
//! move them.

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
    /// Chunks `0..chunks` of `generation` hold the stream.
    pub chunks: u64,
    /// Which generation of chunks is this snapshot's.
    pub generation: u64,
}

pub struct ManifestSpace;
impl KeySpace for ManifestSpace {
    const NAME: &'static str = "snapshot_manifest";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'm';
    type Key = String;
    type Value = Manifest;
}

/// Chunks of stored snapshots by generation and number. Their values are raw bytes.
pub struct ChunkSpace;
impl KeySpace for ChunkSpace {
    const NAME: &'static str = "snapshot_chunks";
    const TREE: &'static str = "snapshot_chunks";
    const PREFIX: u8 = b'c';
    type Key = (u64, u32);
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

    /// The newest generation of stored chunks, 0 if there is none.
    fn newest_chunk_generation(&self) -> StoreResult<u64> {
        Ok(match self.chunks.raw_keys_from(&(0, 0)).next_back() {
            Some(key) => generation_of(&key?).unwrap_or(0),
            None => 0,
        })
    }

    /// A generation above every one stored, the current snapshot's included.
    fn next_generation(&self) -> StoreResult<u64> {
        let current = self.manifest()?.map_or(0, |m| m.generation);
        Ok(self.newest_chunk_generation()?.max(current) + 1)
    }

    /// Write `data` durably as the chunks of a new generation, not yet current: hand the
    /// manifest to [`SnapshotStore::commit_into`]. Hold [`SnapshotStore::lock`].
    pub(crate) fn stage(&self, meta: &SnapshotMeta, data: &[u8]) -> StoreResult<Manifest> {
        self.stage_as(self.next_generation()?, meta, data)
    }

    fn stage_as(&self, generation: u64, meta: &SnapshotMeta, data: &[u8]) -> StoreResult<Manifest> {
        let mut batch = sled::Batch::default();
        let mut chunks = 0u32;
        for piece in data.chunks(self.chunk_len) {
            Space::<ChunkSpace>::batch_insert_raw(&mut batch, &(generation, chunks), piece);
            chunks = chunks.checked_add(1).ok_or_else(|| {
                StoreError::InvalidArgument(format!(
                    "a snapshot of {} bytes needs more chunks than can be numbered",
                    data.len()
                ))
            })?;
        }
        self.chunks.apply_batch(batch)?;
        // The chunks are durable before any manifest names them.
        self.chunks.flush()?;
        Ok(Manifest {
            meta: meta.clone(),
            len: data.len() as u64,
            chunks: u64::from(chunks),
            generation,
        })
    }

    /// Add to `batch` (on the `state_machine` tree) the write that makes a staged snapshot the
    /// current one.
    pub(crate) fn commit_into(batch: &mut sled::Batch, manifest: &Manifest) -> StoreResult<()> {
        Space::<ManifestSpace>::batch_insert(batch, &CURRENT.to_string(), manifest)
    }

    /// Remove the chunks of every generation but the current snapshot's.
    pub(crate) fn remove_stale_chunks(&self) -> StoreResult<()> {
        let current = self.manifest()?.map(|m| m.generation);
        let mut batch = sled::Batch::default();
        let mut stale = 0u64;
        for key in self.chunks.raw_keys_from(&(0, 0)) {
            let key = key?;
            if generation_of(&key) != current {
                batch.remove(key);
                stale += 1;
            }
        }
        if stale > 0 {
            self.chunks.apply_batch(batch)?;
            tracing::debug!(chunks = stale, "removed chunks of older snapshots");
        }
        Ok(())
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
        let manifest = self.stage(meta, data)?;
        let mut batch = sled::Batch::default();
        Self::commit_into(&mut batch, &manifest)?;
        self.manifest.apply_batch(batch)?;
        self.remove_stale_chunks()?;
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
        let data = read_chunks(
            manifest.len,
            manifest.chunks,
            &manifest.meta.snapshot_id,
            |number| {
                let number = u32::try_from(number).map_err(|_| {
                    StoreError::InvalidArgument(format!("chunk number {number} out of range"))
                })?;
                self.chunks.get_raw(&(manifest.generation, number))
            },
        )?;
        Ok(Some((manifest.meta, data)))
    }

    pub async fn flush(&self) -> StoreResult<()> {
        self.manifest.flush_async().await
    }
}

/// The generation in an encoded chunk key (after the key space's prefix byte).
fn generation_of(key: &[u8]) -> Option<u64> {
    key.get(1..9)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
}

/// Put chunks `0..chunks` read by `chunk` back together into the `len` bytes of a manifest.
fn read_chunks(
    len: u64,
    chunks: u64,
    snapshot_id: &str,
    mut chunk: impl FnMut(u64) -> StoreResult<Option<sled::IVec>>,
) -> StoreResult<Vec<u8>> {
    let corrupt = |reason: String| StoreError::Corrupt {
        keyspace: ChunkSpace::NAME,
        key: snapshot_id.to_string(),
        reason,
    };
    let mut data = Vec::new();
    let expected = usize::try_from(len).unwrap_or(usize::MAX);
    data.try_reserve_exact(expected)
        .map_err(|e| corrupt(format!("cannot hold {len} bytes: {e}")))?;
    for number in 0..chunks {
        let piece = chunk(number)?
            .ok_or_else(|| corrupt(format!("chunk {number} of {chunks} is missing")))?;
        if data.len() + piece.len() > expected {
            return Err(corrupt(format!(
                "the chunks hold more than the {len} bytes of the manifest"
            )));
        }
        data.extend_from_slice(&piece);
    }
    if data.len() != expected {
        return Err(corrupt(format!(
            "the chunks hold {} bytes, the manifest says {len}",
            data.len()
        )));
    }
    Ok(data)
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

/// Format 2's manifest: no generation, its chunks in the `state_machine` tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestV2 {
    pub meta: SnapshotMeta,
    pub len: u64,
    pub chunks: u64,
}

pub(crate) struct ManifestV2Space;
impl KeySpace for ManifestV2Space {
    const NAME: &'static str = "snapshot_manifest (format 2)";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'm';
    type Key = String;
    type Value = ManifestV2;
}

pub(crate) struct ChunkV2Space;
impl KeySpace for ChunkV2Space {
    const NAME: &'static str = "snapshot_chunks (format 2)";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'c';
    type Key = u64;
    type Value = Vec<u8>;
}

/// Move a format-2 snapshot's chunks out of the `state_machine` tree into their own. The new
/// manifest replaces the old one in the same batch that removes the old chunks, so a crash
/// part way leaves either format-2 layout (and the upgrade runs again) or the new one.
pub fn upgrade_from_v2(db: &sled::Db, max_encoded_len: u64) -> StoreResult<()> {
    let old_chunks = Space::<ChunkV2Space>::open(db)?;
    let old_keys = old_chunks
        .raw_keys_from(&0)
        .collect::<StoreResult<Vec<_>>>()?;
    if old_keys.is_empty() {
        // No snapshot was stored in format 2, or its chunks were moved already.
        return Ok(());
    }
    let store = SnapshotStore::open(db, max_encoded_len)?;
    let mut batch = sled::Batch::default();
    if let Some(old) = Space::<ManifestV2Space>::open(db)?.get(&CURRENT.to_string())? {
        let data = read_chunks(old.len, old.chunks, &old.meta.snapshot_id, |number| {
            old_chunks.get_raw(&number)
        })?;
        let generation = store.newest_chunk_generation()? + 1;
        let manifest = store.stage_as(generation, &old.meta, &data)?;
        SnapshotStore::commit_into(&mut batch, &manifest)?;
        tracing::info!(
            snapshot = %old.meta.snapshot_id,
            bytes = data.len(),
            "moved the snapshot's chunks into their own tree"
        );
    }
    for key in old_keys {
        batch.remove(key);
    }
    old_chunks.apply_batch(batch)?;
    db.flush()
        .map_err(|e| StoreError::sled(ChunkSpace::NAME, e))?;
    store.remove_stale_chunks()
}

/// The snapshot id of a format-2 directory not yet upgraded.
pub fn v2_snapshot_id(db: &sled::Db) -> StoreResult<Option<String>> {
    let has_old_chunks = Space::<ChunkV2Space>::open(db)?
        .raw_keys_from(&0)
        .next()
        .is_some();
    if !has_old_chunks {
        return Ok(SnapshotStore::open(db, u64::MAX)?
            .manifest()?
            .map(|m| m.meta.snapshot_id));
    }
    Ok(Space::<ManifestV2Space>::open(db)?
        .get(&CURRENT.to_string())?
        .map(|m| m.meta.snapshot_id))
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
        let stored = store
            .store(&meta, &[7u8; 20_000])
            .expect("store")
            .expect("stored");
        assert_eq!(stored.chunks, 5);
        store
            .chunks
            .remove(&(stored.generation, 2))
            .expect("remove a chunk");
        let error = store.current().expect_err("a hole");
        assert!(error.to_string().contains("chunk 2 of 5"), "{error}");
    }

    fn state_machine_keys_with_prefix(db: &sled::Db, prefix: u8) -> usize {
        db.open_tree("state_machine")
            .expect("tree")
            .scan_prefix([prefix])
            .count()
    }

    #[test]
    fn chunks_live_in_their_own_tree_and_only_the_current_generation_stays() {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let store = SnapshotStore::open(&db, 8 * 1024).expect("store");
        let first = SnapshotMeta {
            snapshot_id: "first".into(),
            ..SnapshotMeta::default()
        };
        let second = SnapshotMeta {
            snapshot_id: "second".into(),
            ..SnapshotMeta::default()
        };
        let a = store
            .store(&first, &[1u8; 30_000])
            .expect("store")
            .expect("stored");
        let b = store
            .store(&second, &[2u8; 9_000])
            .expect("store")
            .expect("stored");
        assert!(b.generation > a.generation);
        assert_eq!(
            state_machine_keys_with_prefix(&db, b'c'),
            0,
            "no chunk beside the hot keys of the state machine"
        );
        let generations: Vec<u64> = store
            .chunks
            .raw_keys_from(&(0, 0))
            .map(|key| generation_of(&key.expect("key")).expect("generation"))
            .collect();
        assert_eq!(generations, vec![b.generation; 3]);
        let (meta, data) = store.current().expect("read").expect("some");
        assert_eq!(meta, second);
        assert_eq!(data, vec![2u8; 9_000]);
    }

    #[test]
    fn chunks_staged_but_never_committed_are_removed_and_the_current_snapshot_stays() {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let store = SnapshotStore::open(&db, 8 * 1024).expect("store");
        let meta = SnapshotMeta {
            snapshot_id: "kept".into(),
            ..SnapshotMeta::default()
        };
        let kept = store
            .store(&meta, &[5u8; 10_000])
            .expect("store")
            .expect("stored");
        // A crash after staging the next snapshot, before its manifest was written.
        let orphan = store
            .stage(&SnapshotMeta::default(), &[6u8; 10_000])
            .expect("stage");
        assert!(orphan.generation > kept.generation);
        store.remove_stale_chunks().expect("remove");
        assert_eq!(store.chunks.raw_keys_from(&(0, 0)).count(), 3);
        let (read_meta, data) = store.current().expect("read").expect("some");
        assert_eq!(read_meta, meta);
        assert_eq!(data, vec![5u8; 10_000]);
        let next = store
            .store(&SnapshotMeta::default(), &[7u8; 100])
            .expect("store")
            .expect("stored");
        assert!(next.generation > kept.generation);
        let (_, data) = store.current().expect("read").expect("some");
        assert_eq!(data, vec![7u8; 100]);
    }

    #[test]
    fn a_format_2_snapshot_moves_its_chunks_out_of_the_state_machine_tree() {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("database");
        let data: Vec<u8> = (0..25_000u32).map(|n| (n % 251) as u8).collect();
        let meta = SnapshotMeta {
            snapshot_id: "1-40-0".into(),
            ..SnapshotMeta::default()
        };
        let old_chunks = Space::<ChunkV2Space>::open(&db).expect("chunks");
        let mut batch = sled::Batch::default();
        let mut count = 0u64;
        for piece in data.chunks(4096) {
            Space::<ChunkV2Space>::batch_insert_raw(&mut batch, &count, piece);
            count += 1;
        }
        let old = ManifestV2 {
            meta: meta.clone(),
            len: data.len() as u64,
            chunks: count,
        };
        Space::<ManifestV2Space>::batch_insert(&mut batch, &CURRENT.to_string(), &old)
            .expect("manifest");
        old_chunks.apply_batch(batch).expect("write format 2");
        assert_eq!(v2_snapshot_id(&db).expect("id").as_deref(), Some("1-40-0"));

        upgrade_from_v2(&db, 8 * 1024).expect("upgrade");
        assert_eq!(state_machine_keys_with_prefix(&db, b'c'), 0);
        upgrade_from_v2(&db, 8 * 1024).expect("a second run changes nothing");
        assert_eq!(v2_snapshot_id(&db).expect("id").as_deref(), Some("1-40-0"));
        let store = SnapshotStore::open(&db, 8 * 1024).expect("store");
        let (read_meta, read) = store.current().expect("read").expect("some");
        assert_eq!(read_meta, meta);
        assert_eq!(read, data);
    }
}
