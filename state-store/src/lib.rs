//! Replicated, versioned key-value store (openraft + sled) that every coordinator embeds.
//!
//! The data model is close to etcd's: every applied write gets a revision; keys carry their
//! create and modification revisions; writes are transactions of conditions and operations;
//! reads are linearizable (read index through the leader) or local; watches stream every
//! change under a prefix from a given revision.

pub mod config;
pub mod error;
pub mod keyspace;
pub mod log_store;
pub mod network;
pub mod node;
pub mod ondisk;
pub mod server;
pub mod snapshot;
pub mod snapshot_format;
pub mod snapshot_store;
pub mod state_machine;
pub mod status;
pub mod types;
pub mod watch;

mod batcher;
mod codec;
mod failpoints;
mod forward;
mod kv;
mod membership;
mod rpc;

pub use config::StoreConfig;
pub use error::{StoreError, StoreResult};
pub use node::{CasOutcome, StateStore};
pub use status::{MemberStatus, RaftRole, StoreStatus};
pub use types::{
    Condition, Event, EventKind, KeyValue, NodeId, Op, ReadConsistency, TxnRequest, TxnResponse,
};
pub use watch::WatchStream;
