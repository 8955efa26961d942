//! Messages of the store's own internal endpoints (forwarded writes, read index, membership
//! administration, status); Raft's own messages are openraft's types.

use serde::{Deserialize, Serialize};

use crate::types::{CommandOutcome, NodeId};

/// The leader's answer to a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteReply {
    Applied(CommandOutcome),
    /// The receiver is not the leader; nothing was written.
    NotLeader {
        leader: Option<NodeId>,
    },
}

/// The leader's answer to a read-index request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadIndexReply {
    /// Apply up to this log index, then read locally.
    Index(u64),
    NotLeader {
        leader: Option<NodeId>,
    },
}

/// Membership and leadership changes, carried out by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    AddLearner { id: NodeId, url: String },
    Promote { id: NodeId },
    Remove { id: NodeId },
    TransferLeader { to: NodeId },
}

/// Requests a leader sends to one member while it hands leadership over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionControl {
    /// Do not start elections for this long (other members during a transfer).
    Pause {
        millis: u64,
    },
    Resume,
    /// Campaign until elected or the time is up (the transfer's target).
    Campaign {
        millis: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminReply {
    Done,
    NotLeader { leader: Option<NodeId> },
}
