//! Applying transactions to the key-value key space: conditions are evaluated against the
//! state including earlier writes of the same log entry, and every write becomes a watch event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreResult;
use crate::keyspace::{KeySpace, Space};
use crate::types::{Condition, Event, EventKind, KeyValue, Op, TxnRequest, TxnResponse};

/// The stored form of a key's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredValue {
    /// Encoded as bytes, not as a sequence of numbers: the same bincode layout, decoded in one
    /// copy instead of one call per byte.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

impl StoredValue {
    pub fn into_key_value(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

/// User keys and their values.
pub struct KvSpace;
impl KeySpace for KvSpace {
    const NAME: &'static str = "kv";
    const TREE: &'static str = "state_machine";
    const PREFIX: u8 = b'k';
    type Key = String;
    type Value = StoredValue;
}

/// Applies transactions on top of the stored key space, keeping its writes in an overlay until
/// they are turned into one atomic batch.
pub(crate) struct Applier<'a> {
    kv: &'a Space<KvSpace>,
    overlay: BTreeMap<String, Option<StoredValue>>,
    events: Vec<Event>,
    revision: u64,
}

impl<'a> Applier<'a> {
    pub fn new(kv: &'a Space<KvSpace>, revision: u64) -> Self {
        Applier {
            kv,
            overlay: BTreeMap::new(),
            events: Vec::new(),
            revision,
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn current(&self, key: &str) -> StoreResult<Option<StoredValue>> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.kv.get(&key.to_string()),
        }
    }

    fn holds(&self, condition: &Condition) -> StoreResult<bool> {
        Ok(match condition {
            Condition::ModRevision { key, revision } => {
                let current = self.current(key)?.map_or(0, |v| v.mod_revision);
                current == *revision
            }
            Condition::ValueEquals { key, value } => {
                self.current(key)?.is_some_and(|v| &v.value == value)
            }
            Condition::Exists { key, exists } => self.current(key)?.is_some() == *exists,
        })
    }

    /// Keys under `prefix` as they stand now, the overlay included.
    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = std::collections::BTreeSet::new();
        for item in self.kv.scan_prefix_bytes(prefix.as_bytes()) {
            keys.insert(item?.0);
        }
        for (key, value) in self.overlay.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    pub fn apply_txn(&mut self, txn: &TxnRequest) -> StoreResult<TxnResponse> {
        let mut succeeded = true;
        for condition in &txn.conditions {
            if !self.holds(condition)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let next_revision = self.revision + 1;
        let mut wrote = false;
        let mut deleted = 0;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    self.put(key, value.clone(), next_revision)?;
                    wrote = true;
                }
                Op::Delete { key } => {
                    if self.delete(key, next_revision)? {
                        deleted += 1;
                        wrote = true;
                    }
                }
                Op::DeletePrefix { prefix } => {
                    for key in self.keys_with_prefix(prefix)? {
                        if self.delete(&key, next_revision)? {
                            deleted += 1;
                            wrote = true;
                        }
                    }
                }
            }
        }
        if wrote {
            self.revision = next_revision;
        }
        Ok(TxnResponse {
            succeeded,
            revision: self.revision,
            deleted,
        })
    }

    fn put(&mut self, key: &str, value: Vec<u8>, revision: u64) -> StoreResult<()> {
        let stored = match self.current(key)? {
            Some(old) => StoredValue {
                value,
                create_revision: old.create_revision,
                mod_revision: revision,
                version: old.version + 1,
            },
            None => StoredValue {
                value,
                create_revision: revision,
                mod_revision: revision,
                version: 1,
            },
        };
        self.events.push(Event {
            kind: EventKind::Put,
            kv: stored.clone().into_key_value(key.to_string()),
        });
        self.overlay.insert(key.to_string(), Some(stored));
        Ok(())
    }

    fn delete(&mut self, key: &str, revision: u64) -> StoreResult<bool> {
        if self.current(key)?.is_none() {
            return Ok(false);
        }
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_string(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
            },
        });
        self.overlay.insert(key.to_string(), None);
        Ok(true)
    }

    /// Add the writes to `batch` and hand back the events they produced, in order.
    pub fn finish(self, batch: &mut sled::Batch) -> StoreResult<Vec<Event>> {
        for (key, value) in self.overlay {
            match value {
                Some(stored) => Space::<KvSpace>::batch_insert(batch, &key, &stored)?,
                None => Space::<KvSpace>::batch_remove(batch, &key),
            }
        }
        Ok(self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// The layout before values were encoded as bytes.
    #[derive(Debug, Serialize, Deserialize)]
    struct AsSequence {
        value: Vec<u8>,
        create_revision: u64,
        mod_revision: u64,
        version: u64,
    }

    #[test]
    fn values_encoded_as_bytes_keep_the_layout_of_a_sequence() {
        for len in [0usize, 1, 250, 251, 70_000] {
            let value: Vec<u8> = (0..len).map(|n| (n % 256) as u8).collect();
            let old = AsSequence {
                value: value.clone(),
                create_revision: 3,
                mod_revision: 900,
                version: 70_000,
            };
            let new = StoredValue {
                value,
                create_revision: 3,
                mod_revision: 900,
                version: 70_000,
            };
            let old_bytes = codec::encode(&old).expect("encode");
            assert_eq!(
                old_bytes,
                codec::encode(&new).expect("encode"),
                "{len} bytes"
            );
            let read: StoredValue = codec::decode(&old_bytes).expect("decode");
            assert_eq!(read, new);
        }
    }
}
