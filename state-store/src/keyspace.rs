//! Typed key spaces over sled trees: each key space names its tree, a one-byte prefix, and its
//! key and value types, so that a corrupt value is reported with the key space it belongs to.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::{StoreError, StoreResult};

/// How a key is laid out in a tree; ordered encodings keep range scans in key order.
pub trait KeyCodec: Sized {
    fn encode_into(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Result<Self, String>;
    fn describe(&self) -> String;
}

impl KeyCodec for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| format!("expected an 8-byte key, found {} bytes", bytes.len()))?;
        Ok(u64::from_be_bytes(array))
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl KeyCodec for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("key is not utf-8: {e}"))
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

/// A revision and a position inside it, ordered by revision first.
impl KeyCodec for (u64, u32) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 12 {
            return Err(format!(
                "expected a 12-byte key, found {} bytes",
                bytes.len()
            ));
        }
        let (rev, idx) = bytes.split_at(8);
        Ok((
            u64::decode(rev)?,
            u32::from_be_bytes([idx[0], idx[1], idx[2], idx[3]]),
        ))
    }

    fn describe(&self) -> String {
        format!("{}.{}", self.0, self.1)
    }
}

/// A named set of keys of one type mapping to values of one type, inside one sled tree.
pub trait KeySpace {
    /// Name used in error messages.
    const NAME: &'static str;
    /// The sled tree holding the key space.
    const TREE: &'static str;
    /// Prefix byte that separates this key space from others sharing the tree.
    const PREFIX: u8;
    type Key: KeyCodec;
    type Value: Serialize + DeserializeOwned;
}

/// Typed access to one key space.
pub struct Space<KS: KeySpace> {
    tree: sled::Tree,
    _space: PhantomData<KS>,
}

impl<KS: KeySpace> Clone for Space<KS> {
    fn clone(&self) -> Self {
        Space {
            tree: self.tree.clone(),
            _space: PhantomData,
        }
    }
}

impl<KS: KeySpace> Space<KS> {
    pub fn open(db: &sled::Db) -> StoreResult<Self> {
        let tree = db
            .open_tree(KS::TREE)
            .map_err(|e| StoreError::sled(KS::NAME, e))?;
        Ok(Space {
            tree,
            _space: PhantomData,
        })
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    pub fn key_bytes(key: &KS::Key) -> Vec<u8> {
        let mut out = vec![KS::PREFIX];
        key.encode_into(&mut out);
        out
    }

    pub fn value_bytes(value: &KS::Value) -> StoreResult<Vec<u8>> {
        codec::encode(value).map_err(|e| {
            StoreError::InvalidArgument(format!(
                "cannot encode a value of key space {}: {e}",
                KS::NAME
            ))
        })
    }

    pub fn decode_value(key: &KS::Key, bytes: &[u8]) -> StoreResult<KS::Value> {
        codec::decode(bytes).map_err(|e| StoreError::Corrupt {
            keyspace: KS::NAME,
            key: key.describe(),
            reason: e.to_string(),
        })
    }

    fn decode_key(raw: &[u8]) -> StoreResult<KS::Key> {
        let body = raw.get(1..).unwrap_or_default();
        KS::Key::decode(body).map_err(|reason| StoreError::Corrupt {
            keyspace: KS::NAME,
            key: format!("{raw:?}"),
            reason,
        })
    }

    pub fn get(&self, key: &KS::Key) -> StoreResult<Option<KS::Value>> {
        let raw = self
            .tree
            .get(Self::key_bytes(key))
            .map_err(|e| StoreError::sled(KS::NAME, e))?;
        raw.map(|bytes| Self::decode_value(key, &bytes)).transpose()
    }

    pub fn insert(&self, key: &KS::Key, value: &KS::Value) -> StoreResult<()> {
        self.tree
            .insert(Self::key_bytes(key), Self::value_bytes(value)?)
            .map_err(|e| StoreError::sled(KS::NAME, e))?;
        Ok(())
    }

    pub fn remove(&self, key: &KS::Key) -> StoreResult<()> {
        self.tree
            .remove(Self::key_bytes(key))
            .map_err(|e| StoreError::sled(KS::NAME, e))?;
        Ok(())
    }

    /// The stored bytes under `key` as they are, for key spaces whose values are raw bytes.
    pub fn get_raw(&self, key: &KS::Key) -> StoreResult<Option<sled::IVec>> {
        self.tree
            .get(Self::key_bytes(key))
            .map_err(|e| StoreError::sled(KS::NAME, e))
    }

    /// Add a put of raw bytes (not encoded by the codec) to a batch on the same tree.
    pub fn batch_insert_raw(batch: &mut sled::Batch, key: &KS::Key, bytes: &[u8]) {
        batch.insert(Self::key_bytes(key), bytes);
    }

    /// Encoded keys from `start` (inclusive) to the end of the key space, in key order.
    pub fn raw_keys_from(
        &self,
        start: &KS::Key,
    ) -> impl DoubleEndedIterator<Item = StoreResult<sled::IVec>> + '_ {
        let end = [KS::PREFIX + 1];
        self.tree
            .range(Self::key_bytes(start)..end.to_vec())
            .keys()
            .map(|key| key.map_err(|e| StoreError::sled(KS::NAME, e)))
    }

    /// Add a put of this key space to a batch on the same tree.
    pub fn batch_insert(
        batch: &mut sled::Batch,
        key: &KS::Key,
        value: &KS::Value,
    ) -> StoreResult<()> {
        batch.insert(Self::key_bytes(key), Self::value_bytes(value)?);
        Ok(())
    }

    pub fn batch_remove(batch: &mut sled::Batch, key: &KS::Key) {
        batch.remove(Self::key_bytes(key));
    }

    pub fn apply_batch(&self, batch: sled::Batch) -> StoreResult<()> {
        self.tree
            .apply_batch(batch)
            .map_err(|e| StoreError::sled(KS::NAME, e))
    }

    pub fn flush(&self) -> StoreResult<()> {
        self.tree
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::sled(KS::NAME, e))
    }

    pub async fn flush_async(&self) -> StoreResult<()> {
        self.tree
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::sled(KS::NAME, e))
    }

    /// Entries whose encoded key starts with `key_prefix` (encoded like a key), in key order.
    pub fn scan_prefix_bytes(
        &self,
        key_prefix: &[u8],
    ) -> impl Iterator<Item = StoreResult<(KS::Key, KS::Value)>> + '_ {
        let mut prefix = vec![KS::PREFIX];
        prefix.extend_from_slice(key_prefix);
        self.tree.scan_prefix(prefix).map(Self::decode_entry)
    }

    /// Entries with keys from `start` (inclusive) to the end of the key space, in key order.
    pub fn range_from(
        &self,
        start: &KS::Key,
    ) -> impl DoubleEndedIterator<Item = StoreResult<(KS::Key, KS::Value)>> + '_ {
        let from = Self::key_bytes(start);
        let end = [KS::PREFIX + 1];
        self.tree.range(from..end.to_vec()).map(Self::decode_entry)
    }

    /// Every entry of the key space, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = StoreResult<(KS::Key, KS::Value)>> + '_ {
        self.tree
            .range(vec![KS::PREFIX]..vec![KS::PREFIX + 1])
            .map(Self::decode_entry)
    }

    fn decode_entry(
        item: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> StoreResult<(KS::Key, KS::Value)> {
        let (raw_key, raw_value) = item.map_err(|e| StoreError::sled(KS::NAME, e))?;
        let key = Self::decode_key(&raw_key)?;
        let value = Self::decode_value(&key, &raw_value)?;
        Ok((key, value))
    }
}
