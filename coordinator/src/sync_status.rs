//! Synchronisation status of every coordinator, like HAWQ's `gp_master_mirroring`: Raft role,
//! matched log index, lag, last contact, and a summary (`Synchronized`, `Synchronizing`,
//! `Not Synchronized`) with a detail saying why.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use shoal_state_store::{MemberStatus, RaftRole, StoreStatus};

use crate::error::Result;
use crate::node::Coordinator;
use crate::registry::{self, CoordinatorRecord};

/// A follower this many entries behind still counts as synchronised (writes are in flight).
pub const SYNCHRONIZED_LAG: u64 = 100;

/// One row of `system.runtime.coordinators` and of the admin API's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorSync {
    pub node_id: u64,
    pub client_url: Option<String>,
    pub internal_url: String,
    pub mode: Option<String>,
    pub voter: bool,
    pub raft_role: String,
    pub term: Option<u64>,
    pub matched_index: Option<u64>,
    pub lag: Option<u64>,
    pub summary_state: String,
    pub detail_state: String,
    /// When the leader last heard from this coordinator (RFC 3339, UTC).
    pub last_contact: Option<String>,
}

pub async fn collect(node: &Coordinator) -> Result<Vec<CoordinatorSync>> {
    let status = node.store.status().await;
    let records: BTreeMap<u64, CoordinatorRecord> = registry::list_freshest(&node.store)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let unreachable_after =
        (node.config.state_store.election_timeout_max * 3).max(Duration::from_secs(2));
    Ok(status
        .members
        .iter()
        .map(|member| row(&status, member, records.get(&member.id), unreachable_after))
        .collect())
}

fn row(
    status: &StoreStatus,
    member: &MemberStatus,
    record: Option<&CoordinatorRecord>,
    unreachable_after: Duration,
) -> CoordinatorSync {
    let (summary, detail) = summarise(status, member, unreachable_after);
    CoordinatorSync {
        node_id: member.id,
        client_url: record.map(|r| r.client_url.clone()),
        internal_url: member.url.clone(),
        mode: record.map(|r| r.mode.as_str().to_string()),
        voter: member.voter,
        raft_role: member.role.as_str().to_string(),
        term: member.term,
        matched_index: member.matched_index,
        lag: member.lag,
        summary_state: summary.to_string(),
        detail_state: detail,
        last_contact: member.last_contact_ms.map(|ms| {
            let when = SystemTime::now() - Duration::from_millis(ms);
            humantime::format_rfc3339_millis(when).to_string()
        }),
    }
}

fn summarise(
    status: &StoreStatus,
    member: &MemberStatus,
    unreachable_after: Duration,
) -> (&'static str, String) {
    const SYNCHRONIZED: &str = "Synchronized";
    const SYNCHRONIZING: &str = "Synchronizing";
    const NOT_SYNCHRONIZED: &str = "Not Synchronized";
    if status.leader.is_none() {
        return (NOT_SYNCHRONIZED, "no leader is known".into());
    }
    if Some(member.id) == status.leader {
        return (SYNCHRONIZED, "leader".into());
    }
    let silent_for = member.last_contact_ms.map(Duration::from_millis);
    match silent_for {
        Some(silence) if silence > unreachable_after => {
            return (
                NOT_SYNCHRONIZED,
                format!("unreachable for {} s", silence.as_secs()),
            );
        }
        None => return (NOT_SYNCHRONIZED, "never reached by the leader".into()),
        Some(_) => {}
    }
    let lag = member.lag.unwrap_or(u64::MAX);
    let behind_purged = match (member.matched_index, status.leader_purged_index) {
        (Some(matched), Some(purged)) => matched < purged,
        (None, Some(purged)) => purged > 0,
        _ => false,
    };
    let learner = if member.voter { "" } else { "learner, " };
    if behind_purged {
        (SYNCHRONIZING, format!("{learner}installing snapshot"))
    } else if lag <= SYNCHRONIZED_LAG {
        (SYNCHRONIZED, format!("{learner}{lag} entries behind"))
    } else if member.role == RaftRole::Unknown {
        (
            NOT_SYNCHRONIZED,
            format!("{learner}not answering, {lag} entries behind"),
        )
    } else {
        (SYNCHRONIZING, format!("{learner}{lag} entries behind"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        id: u64,
        lag: Option<u64>,
        contact: Option<u64>,
        matched: Option<u64>,
    ) -> MemberStatus {
        MemberStatus {
            id,
            url: format!("http://n{id}"),
            voter: true,
            role: RaftRole::Follower,
            term: Some(3),
            last_log_index: matched,
            applied_index: matched,
            matched_index: matched,
            lag,
            last_contact_ms: contact,
            error: None,
        }
    }

    fn status(members: Vec<MemberStatus>) -> StoreStatus {
        StoreStatus {
            reporter: 1,
            leader: Some(1),
            term: 3,
            leader_last_log_index: Some(1000),
            leader_purged_index: Some(500),
            members,
        }
    }

    #[test]
    fn summary_states() {
        let limit = Duration::from_secs(2);
        let s = status(vec![]);
        assert_eq!(
            summarise(&s, &member(1, Some(0), Some(0), Some(1000)), limit).0,
            "Synchronized"
        );
        assert_eq!(
            summarise(&s, &member(2, Some(3), Some(40), Some(997)), limit).0,
            "Synchronized"
        );
        let (state, detail) = summarise(&s, &member(3, Some(400), Some(40), Some(600)), limit);
        assert_eq!(
            (state, detail.as_str()),
            ("Synchronizing", "400 entries behind")
        );
        let (state, detail) = summarise(&s, &member(3, Some(900), Some(40), Some(100)), limit);
        assert_eq!(
            (state, detail.as_str()),
            ("Synchronizing", "installing snapshot")
        );
        let (state, detail) = summarise(&s, &member(3, Some(9), Some(12_000), Some(991)), limit);
        assert_eq!(
            (state, detail.as_str()),
            ("Not Synchronized", "unreachable for 12 s")
        );
    }
}
