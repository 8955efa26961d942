//! Membership and replication status: each member's own report and the cluster-wide view
//! assembled from every member's report and the leader's replication progress.

use std::collections::BTreeMap;

use openraft::{RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftRole {
    Leader,
    Follower,
    Learner,
    Candidate,
    Shutdown,
    /// The member did not answer.
    Unknown,
}

impl RaftRole {
    pub fn from_state(state: ServerState) -> Self {
        match state {
            ServerState::Leader => RaftRole::Leader,
            ServerState::Follower => RaftRole::Follower,
            ServerState::Learner => RaftRole::Learner,
            ServerState::Candidate => RaftRole::Candidate,
            ServerState::Shutdown => RaftRole::Shutdown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Learner => "learner",
            RaftRole::Candidate => "candidate",
            RaftRole::Shutdown => "shutdown",
            RaftRole::Unknown => "unknown",
        }
    }
}

/// One member's report about itself; the leader adds its view of every follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStatus {
    pub id: NodeId,
    pub role: RaftRole,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub revision: u64,
    /// Leader only: each follower's matched log index and milliseconds since its last answer.
    pub followers: BTreeMap<NodeId, FollowerProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerProgress {
    pub matched_index: Option<u64>,
    pub last_contact_ms: Option<u64>,
}

impl LocalStatus {
    pub(crate) fn from_metrics(
        metrics: &RaftMetrics<NodeId, openraft::BasicNode>,
        revision: u64,
    ) -> Self {
        LocalStatus {
            id: metrics.id,
            role: RaftRole::from_state(metrics.state),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            purged_index: metrics.purged.map_or(0, |l| l.index),
            revision,
            followers: BTreeMap::new(),
        }
    }
}

/// One member of the store as seen from the member that assembled the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub url: String,
    /// Voter (true) or learner (false) in the current membership.
    pub voter: bool,
    pub role: RaftRole,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The highest log index the leader knows this member holds.
    pub matched_index: Option<u64>,
    /// Entries this member is behind the leader's last log index.
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from this member.
    pub last_contact_ms: Option<u64>,
    /// Why the member could not be asked for its own report, if it could not.
    pub error: Option<String>,
}

/// The whole store as seen from one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// The member that assembled this view.
    pub reporter: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub leader_last_log_index: Option<u64>,
    /// The leader's log is purged up to here: a member matched below it needs a snapshot.
    pub leader_purged_index: Option<u64>,
    pub members: Vec<MemberStatus>,
}
