//! Messages between workers and coordinators about cluster membership. Worker liveness is
//! volatile: heartbeats go to each coordinator's memory, never through the replicated log.

use serde::{Deserialize, Serialize};

/// Internal route on every coordinator receiving worker heartbeats (JSON body, cluster secret).
pub const WORKER_HEARTBEAT_PATH: &str = "/cluster/v1/worker-heartbeat";

/// What a worker announces about itself, every heartbeat, to every coordinator it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    pub id: String,
    pub internal_url: String,
    pub cores: u32,
    pub memory_bytes: u64,
    /// Informative only: the worker's wall clock at start (milliseconds since 1970).
    pub started_at_ms: u64,
    pub version: String,
    /// Queries this worker drives now: coordinators give new queries to the least loaded.
    #[serde(default)]
    pub running_queries: u32,
}
