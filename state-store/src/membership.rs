//! Membership and leadership changes, executed on the leader: add a learner, promote it to
//! voter, remove a member, and hand leadership to a chosen voter.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::time::Instant;

use crate::error::{StoreError, StoreResult};
use crate::forward::{raft_error, Forwarder};
use crate::network::paths;
use crate::rpc::{AdminReply, AdminRequest, ElectionControl};
use crate::types::{NodeId, Raft, TypeConfig};

/// How far behind the leader a learner may be when it is promoted.
const PROMOTE_MAX_LAG: u64 = 64;

pub(crate) async fn execute(
    f: &Forwarder,
    request: &AdminRequest,
    deadline: Instant,
) -> StoreResult<AdminReply> {
    tracing::info!(?request, "membership change");
    match request {
        AdminRequest::AddLearner { id, url } => {
            let result = f.raft.add_learner(*id, BasicNode::new(url), false).await;
            reply(result)
        }
        AdminRequest::Promote { id } => {
            wait_caught_up(f, *id, PROMOTE_MAX_LAG, deadline).await?;
            let result = f
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                .await;
            reply(result)
        }
        AdminRequest::Remove { id } => {
            let membership = f.raft.metrics().borrow().membership_config.clone();
            let is_voter = membership.membership().voter_ids().any(|v| v == *id);
            let change = if is_voter {
                ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
            } else if membership.membership().get_node(id).is_some() {
                ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
            } else {
                return Err(StoreError::InvalidArgument(format!(
                    "node {id} is not a member"
                )));
            };
            reply(f.raft.change_membership(change, false).await)
        }
        AdminRequest::TransferLeader { to } => transfer_leader(f, *to, deadline).await,
    }
}

fn reply(
    result: Result<
        openraft::raft::ClientWriteResponse<TypeConfig>,
        RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    >,
) -> StoreResult<AdminReply> {
    match result {
        Ok(_) => Ok(AdminReply::Done),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Ok(AdminReply::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        ))) => Ok(AdminReply::NotLeader { leader: None }),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(StoreError::InvalidArgument(e.to_string()))
        }
        Err(e) => Err(raft_error(e)),
    }
}

/// Wait until the leader knows `id` holds the log up to `max_lag` entries behind its own.
async fn wait_caught_up(
    f: &Forwarder,
    id: NodeId,
    max_lag: u64,
    deadline: Instant,
) -> StoreResult<()> {
    let progress = |m: &openraft::RaftMetrics<NodeId, BasicNode>| {
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(0, |l| l.index);
        (matched, last)
    };
    let metrics = f.raft.metrics().borrow().clone();
    if metrics
        .membership_config
        .membership()
        .get_node(&id)
        .is_none()
    {
        return Err(StoreError::InvalidArgument(format!(
            "node {id} is not a member"
        )));
    }
    let timeout = deadline.saturating_duration_since(Instant::now());
    let caught_up = f
        .raft
        .wait(Some(timeout))
        .metrics(
            |m| {
                let (matched, last) = progress(m);
                matched + max_lag >= last
            },
            "a member to catch up",
        )
        .await;
    caught_up.map(|_| ()).map_err(|_| {
        let (matched, last) = progress(&f.raft.metrics().borrow());
        StoreError::Timeout {
            operation: format!("node {id} to catch up (at {matched} of {last})"),
            timeout_ms: timeout.as_millis() as u64,
        }
    })
}

/// Hand leadership to `to`: once it holds the whole log, the leader stops replicating so that
/// followers' leases run out, the other voters hold their elections back, and `to` campaigns.
async fn transfer_leader(f: &Forwarder, to: NodeId, deadline: Instant) -> StoreResult<AdminReply> {
    if to == f.id {
        return Ok(AdminReply::Done);
    }
    let metrics = f.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    if !membership.voter_ids().any(|v| v == to) {
        return Err(StoreError::InvalidArgument(format!(
            "node {to} is not a voter"
        )));
    }
    wait_caught_up(f, to, 0, deadline).await?;
    let Some(target_url) = membership.get_node(&to).map(|n| n.addr.clone()) else {
        return Err(StoreError::InvalidArgument(format!(
            "node {to} has no address"
        )));
    };
    let others: Vec<String> = membership
        .voter_ids()
        .filter(|v| *v != to && *v != f.id)
        .filter_map(|v| membership.get_node(&v).map(|n| n.addr.clone()))
        .collect();
    let window = deadline.saturating_duration_since(Instant::now());
    let window_ms = window.as_millis() as u64;
    for url in &others {
        let pause = ElectionControl::Pause { millis: window_ms };
        let _: Result<(), _> = f
            .client
            .call(url, paths::ELECTION, &pause, f.config.rpc_timeout)
            .await;
    }
    f.raft.runtime_config().elect(false);
    f.client.fence(true);
    let campaign = ElectionControl::Campaign { millis: window_ms };
    let outcome: Result<(), _> = f
        .client
        .call(&target_url, paths::ELECTION, &campaign, window)
        .await;
    f.client.fence(false);
    f.raft.runtime_config().elect(true);
    for url in &others {
        let _: Result<(), _> = f
            .client
            .call(
                url,
                paths::ELECTION,
                &ElectionControl::Resume,
                f.config.rpc_timeout,
            )
            .await;
    }
    match outcome {
        Ok(()) => {
            tracing::info!(to, "leadership transferred");
            Ok(AdminReply::Done)
        }
        Err(e) => Err(StoreError::Raft(format!(
            "leadership transfer to {to} failed: {e}"
        ))),
    }
}

/// Apply an election-control request on this member.
pub(crate) async fn control_election(raft: &Raft, control: ElectionControl) -> StoreResult<()> {
    match control {
        ElectionControl::Pause { millis } => {
            raft.runtime_config().elect(false);
            let raft = raft.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                raft.runtime_config().elect(true);
            });
            Ok(())
        }
        ElectionControl::Resume => {
            raft.runtime_config().elect(true);
            Ok(())
        }
        ElectionControl::Campaign { millis } => campaign(raft, Duration::from_millis(millis)).await,
    }
}

async fn campaign(raft: &Raft, window: Duration) -> StoreResult<()> {
    let deadline = Instant::now() + window;
    loop {
        raft.trigger()
            .elect()
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        let attempt =
            Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()));
        let elected = raft
            .wait(Some(attempt))
            .metrics(|m| m.state == ServerState::Leader, "elected")
            .await;
        if elected.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Timeout {
                operation: "campaign for leadership".into(),
                timeout_ms: window.as_millis() as u64,
            });
        }
    }
}
