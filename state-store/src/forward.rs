//! Getting calls to the leader: writes, read-index requests and membership changes run on the
//! leader, locally when this member leads, otherwise forwarded over internal RPC. Callers never
//! see "forward to leader"; without a leader they get a retryable error after a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::StoreConfig;
use crate::error::{StoreError, StoreResult};
use crate::log_store::RestoredLog;
use crate::membership;
use crate::network::{paths, RpcClient, RpcFailure};
use crate::rpc::{AdminReply, AdminRequest, ReadIndexReply, WriteReply};
use crate::state_machine::SmShared;
use crate::types::{Command, CommandOutcome, NodeId, Raft};

const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Where a call should go.
enum Leader {
    Local,
    Remote { url: String },
}

/// What a remote leader said about a forwarded call.
enum Forwarded<T> {
    Done(T),
    /// Nothing happened on the remote side; the call may be sent again.
    Retry,
}

#[derive(Clone)]
pub(crate) struct Forwarder {
    pub id: NodeId,
    pub raft: Raft,
    pub client: RpcClient,
    pub config: Arc<StoreConfig>,
    pub sm: Arc<SmShared>,
    pub restored: RestoredLog,
}

impl Forwarder {
    fn remaining(deadline: Instant) -> Duration {
        deadline.saturating_duration_since(Instant::now())
    }

    /// Wait (until `deadline`) for a known leader.
    async fn leader(&self, deadline: Instant, started: Instant) -> StoreResult<Leader> {
        loop {
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.state == ServerState::Shutdown {
                return Err(StoreError::ShuttingDown);
            }
            if let Some(leader) = metrics.current_leader {
                if leader == self.id && metrics.state == ServerState::Leader {
                    return Ok(Leader::Local);
                }
                if leader != self.id {
                    if let Some(node) = metrics.membership_config.membership().get_node(&leader) {
                        return Ok(Leader::Remote {
                            url: node.addr.clone(),
                        });
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(StoreError::NoLeader {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            let mut changes = self.raft.metrics();
            let _ = tokio::time::timeout(
                RETRY_PAUSE.min(Self::remaining(deadline)),
                changes.changed(),
            )
            .await;
        }
    }

    async fn pause(deadline: Instant) {
        tokio::time::sleep(RETRY_PAUSE.min(Self::remaining(deadline))).await;
    }

    fn timed_out(operation: &str, started: Instant) -> StoreError {
        StoreError::Timeout {
            operation: operation.to_string(),
            timeout_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Send `request` to a remote leader. Connection failures and "not leader" answers mean
    /// nothing happened and the call may be retried; anything else is final.
    async fn forward<Req, Resp>(
        &self,
        url: &str,
        path: &str,
        request: &Req,
        deadline: Instant,
    ) -> StoreResult<Forwarded<Resp>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let timeout = Self::remaining(deadline).max(Duration::from_millis(1));
        match self.client.call(url, path, request, timeout).await {
            Ok(answer) => Ok(Forwarded::Done(answer)),
            Err(RpcFailure::NotSent { target, reason }) => {
                tracing::debug!(%target, %reason, "leader unreachable; will retry");
                Ok(Forwarded::Retry)
            }
            Err(RpcFailure::NoAnswer { target, reason }) => Err(StoreError::OutcomeUnknown {
                reason: format!("no answer from the leader at {target}: {reason}"),
            }),
            Err(RpcFailure::Unauthorized { target }) => Err(StoreError::Unauthorized { target }),
            Err(RpcFailure::Remote(error)) => Err(StoreError::Remote(error)),
        }
    }

    /// Replicate `command` through the leader and return its outcome.
    pub async fn write(&self, command: Command) -> StoreResult<CommandOutcome> {
        let started = Instant::now();
        let deadline = started + self.config.request_timeout;
        loop {
            match self.leader(deadline, started).await? {
                Leader::Local => {
                    let write = self.raft.client_write(command.clone());
                    match tokio::time::timeout(Self::remaining(deadline), write).await {
                        Err(_) => {
                            return Err(StoreError::OutcomeUnknown {
                                reason: "the write was not committed in time (no quorum?)".into(),
                            })
                        }
                        Ok(Ok(response)) => return Ok(response.data),
                        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {}
                        Ok(Err(e)) => return Err(raft_error(e)),
                    }
                }
                Leader::Remote { url, .. } => {
                    match self.forward(&url, paths::WRITE, &command, deadline).await? {
                        Forwarded::Done(WriteReply::Applied(outcome)) => {
                            self.await_local_apply(&outcome, deadline).await;
                            return Ok(outcome);
                        }
                        Forwarded::Done(WriteReply::NotLeader { .. }) | Forwarded::Retry => {}
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Self::timed_out("write", started));
            }
            Self::pause(deadline).await;
        }
    }

    /// After a write through the leader, wait until it is applied here too, so that a local
    /// read on this member sees its own writes. Not waiting longer than the deadline: the
    /// write is committed either way.
    async fn await_local_apply(&self, outcome: &CommandOutcome, deadline: Instant) {
        let revision = outcome
            .responses
            .iter()
            .map(|r| r.revision)
            .max()
            .unwrap_or(0);
        if !self
            .sm
            .wait_for_revision(revision, Self::remaining(deadline))
            .await
        {
            tracing::debug!(revision, "own write not yet applied locally");
        }
    }

    /// On the leader: the log index a linearizable read must wait for.
    ///
    /// openraft answers the larger of its commit index and its first entry of the term. A
    /// leader restarted within its term starts from the commit index it saved, which may be
    /// behind entries it had committed (and others read) before it died, so in the term it
    /// was restored in, a read also waits for every entry its log held at the restart: each
    /// is committed, or will be, by this leader.
    pub async fn local_read_index(&self, deadline: Instant) -> StoreResult<ReadIndexReply> {
        let term = self.raft.metrics().borrow().current_term;
        let check = self.raft.get_read_log_id();
        match tokio::time::timeout(Self::remaining(deadline), check).await {
            Err(_) => Err(StoreError::Timeout {
                operation: "confirm leadership for a read".into(),
                timeout_ms: self.config.request_timeout.as_millis() as u64,
            }),
            Ok(Ok((read_log_id, _))) => {
                let mut index = read_log_id.map_or(0, |l| l.index);
                if term == self.restored.term {
                    index = index.max(self.restored.last_index);
                }
                Ok(ReadIndexReply::Index(index))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Ok(ReadIndexReply::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(e)) => Err(raft_error(e)),
        }
    }

    /// Make every write acknowledged before this call visible to a local read.
    pub async fn read_barrier(&self) -> StoreResult<()> {
        let started = Instant::now();
        let deadline = started + self.config.request_timeout;
        loop {
            let reply = match self.leader(deadline, started).await? {
                Leader::Local => self.local_read_index(deadline).await,
                Leader::Remote { url, .. } => {
                    match self.forward(&url, paths::READ_INDEX, &(), deadline).await {
                        Ok(Forwarded::Done(reply)) => Ok(reply),
                        Ok(Forwarded::Retry) => Ok(ReadIndexReply::NotLeader { leader: None }),
                        Err(e) => Err(e),
                    }
                }
            };
            match reply {
                Ok(ReadIndexReply::Index(index)) => {
                    return self.wait_applied(index, deadline).await
                }
                Ok(ReadIndexReply::NotLeader { .. }) => {}
                // A read changes nothing, so any failure may be retried until the deadline.
                Err(e) => tracing::debug!(error = %e, "read index failed; retrying"),
            }
            if Instant::now() >= deadline {
                return Err(StoreError::NoLeader {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            Self::pause(deadline).await;
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> StoreResult<()> {
        if self.sm.applied_index() >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(Self::remaining(deadline)))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Timeout {
                operation: format!("apply up to index {index} for a read: {e}"),
                timeout_ms: self.config.request_timeout.as_millis() as u64,
            })
    }

    /// Carry out a membership or leadership change on the leader.
    pub async fn admin(&self, request: AdminRequest) -> StoreResult<()> {
        let started = Instant::now();
        let deadline = started + self.config.request_timeout;
        loop {
            let reply = match self.leader(deadline, started).await? {
                Leader::Local => membership::execute(self, &request, deadline).await?,
                Leader::Remote { url, .. } => {
                    match self.forward(&url, paths::ADMIN, &request, deadline).await? {
                        Forwarded::Done(reply) => reply,
                        Forwarded::Retry => AdminReply::NotLeader { leader: None },
                    }
                }
            };
            if let AdminReply::Done = reply {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Self::timed_out("membership change", started));
            }
            Self::pause(deadline).await;
        }
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + self.config.request_timeout
    }
}

/// Map an openraft error to a store error.
pub(crate) fn raft_error<E: std::error::Error>(e: RaftError<NodeId, E>) -> StoreError {
    match e {
        RaftError::Fatal(openraft::error::Fatal::Stopped) => StoreError::ShuttingDown,
        other => StoreError::Raft(other.to_string()),
    }
}
