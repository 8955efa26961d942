//! The state store's data model: keys, versioned values, transactions, events, and the
//! openraft type configuration that carries them through the log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Identifier of a store member (a coordinator).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of the state store.
    pub TypeConfig:
        D = Command,
        R = CommandOutcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A key and its current value with etcd-style revision bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Number of writes to the key since it was created.
    pub version: u64,
}

/// A condition checked before a transaction's writes, against the state at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The key's modification revision equals `revision`; 0 means the key must be absent.
    ModRevision { key: String, revision: u64 },
    /// The key exists and its value equals `value`.
    ValueEquals {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// The key exists (`true`) or is absent (`false`).
    Exists { key: String, exists: bool },
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
}

/// A transaction: when every condition holds, `success` is applied, otherwise `failure`.
/// All writes of one transaction share one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub conditions: Vec<Condition>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl TxnRequest {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        TxnRequest {
            success: vec![Op::Put {
                key: key.into(),
                value: value.into(),
            }],
            ..TxnRequest::default()
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        TxnRequest {
            success: vec![Op::Delete { key: key.into() }],
            ..TxnRequest::default()
        }
    }

    /// Put `value` only if the key's modification revision is `expected` (0: absent).
    pub fn compare_and_set(key: impl Into<String>, expected: u64, value: Vec<u8>) -> Self {
        let key = key.into();
        TxnRequest {
            conditions: vec![Condition::ModRevision {
                key: key.clone(),
                revision: expected,
            }],
            success: vec![Op::Put { key, value }],
            failure: Vec::new(),
        }
    }
}

/// The outcome of one applied transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Whether every condition held (and `success` was applied).
    pub succeeded: bool,
    /// The store's revision after this transaction (its own revision if it wrote anything).
    pub revision: u64,
    /// Number of keys the transaction deleted.
    pub deleted: u64,
}

/// What travels through the Raft log: transactions batched together into one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub txns: Vec<TxnRequest>,
}

/// The result of applying one log entry: one response per transaction, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub responses: Vec<TxnResponse>,
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key. For a deletion, `kv.value` is empty and `kv.mod_revision` is the
/// revision of the deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// Reflects every write acknowledged before the read started (read index via the leader).
    Linearizable,
    /// This node's applied state; may be stale on a lagging follower.
    Local,
}
