//! Settings of one state-store member.

use std::path::PathBuf;
use std::time::Duration;

use crate::codec::MAX_ENCODED_LEN;
use crate::types::NodeId;

/// The smallest record limit a store accepts: a snapshot piece must leave room for its metadata.
const MIN_ENCODED_LEN: u64 = 4 * 1024;
/// The most snapshot bytes one install-snapshot RPC carries (openraft's default).
const SNAPSHOT_RPC_CHUNK: u64 = 3 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This member's id, unique in the cluster and stable across restarts.
    pub node_id: NodeId,
    /// Directory holding this member's sled database.
    pub data_dir: PathBuf,
    /// Base URL other members use to reach this member's internal listener.
    pub advertise_url: String,
    /// Shared secret every internal request must carry.
    pub cluster_secret: String,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot once this many log entries were applied since the last one.
    pub snapshot_after_logs: u64,
    /// Log entries kept behind a snapshot for followers that are only a little behind.
    pub logs_kept_after_snapshot: u64,
    /// Timeout of one internal RPC.
    pub rpc_timeout: Duration,
    /// How long a call waits for a leader (or for a forwarded call) before it fails.
    pub request_timeout: Duration,
    /// Revisions of watch history kept for watches that start in the past.
    pub event_retention: u64,
    /// Most transactions packed into one log entry.
    pub max_batch: usize,
    /// Batches of one member replicating at once; what arrives meanwhile forms the next batch.
    pub max_batches_in_flight: usize,
    /// A member whose store holds no membership yet answers no Raft RPC (append, vote,
    /// snapshot) until [`crate::StateStore::accept_raft`] or `initialize`: its owner first
    /// checks that the cluster does not know it as a voter that lost its data. Off by default.
    pub wait_to_accept_raft: bool,
    /// Largest encoded record: each internal RPC body and each record of a snapshot (a snapshot
    /// as a whole has no limit; it is stored and sent in pieces of at most half of this).
    /// Only tests lower it; keep the default, `MAX_ENCODED_LEN` (256 MiB).
    #[doc(hidden)]
    pub max_encoded_len: u64,
}

impl StoreConfig {
    /// Defaults suited to coordinators on one network: a follower that had a leader starts an
    /// election after the leader's lease (openraft takes `election_timeout_max`) plus a random
    /// `election_timeout_min..election_timeout_max`, 300-400 ms of silence.
    pub fn new(
        node_id: NodeId,
        data_dir: impl Into<PathBuf>,
        advertise_url: impl Into<String>,
    ) -> Self {
        StoreConfig {
            node_id,
            data_dir: data_dir.into(),
            advertise_url: advertise_url.into(),
            cluster_secret: String::new(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(100),
            election_timeout_max: Duration::from_millis(200),
            snapshot_after_logs: 10_000,
            logs_kept_after_snapshot: 1_000,
            rpc_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            event_retention: 100_000,
            max_batch: 1024,
            max_batches_in_flight: 1,
            wait_to_accept_raft: false,
            max_encoded_len: MAX_ENCODED_LEN,
        }
    }

    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.cluster_secret = secret.into();
        self
    }

    /// Snapshot bytes per install-snapshot RPC: the request, metadata included, stays well
    /// below the receiver's body limit however large the snapshot is.
    pub(crate) fn snapshot_rpc_chunk(&self) -> u64 {
        SNAPSHOT_RPC_CHUNK.min(self.max_encoded_len / 2)
    }

    pub(crate) fn raft_config(&self) -> Result<openraft::Config, String> {
        if !(MIN_ENCODED_LEN..=MAX_ENCODED_LEN).contains(&self.max_encoded_len) {
            return Err(format!(
                "max_encoded_len must be between {MIN_ENCODED_LEN} and {MAX_ENCODED_LEN}, not {}",
                self.max_encoded_len
            ));
        }
        let config = openraft::Config {
            cluster_name: "shoal".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.rpc_timeout.max(Duration::from_secs(2))),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            purge_batch_size: 32,
            max_payload_entries: 512,
            snapshot_max_chunk_size: self.snapshot_rpc_chunk(),
            ..Default::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
