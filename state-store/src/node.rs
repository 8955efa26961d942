//! A state-store member: opens its sled database, runs its Raft node, and offers the etcd-like
//! API (get, put, delete, compare-and-set, transactions, scans, watches) and membership changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;

use crate::batcher::Batcher;
use crate::config::StoreConfig;
use crate::error::{StoreError, StoreResult};
use crate::forward::{raft_error, Forwarder};
use crate::log_store::LogStore;
use crate::network::{paths, NetworkFactory, RpcClient};
use crate::ondisk;
use crate::rpc::AdminRequest;
use crate::state_machine::{SmShared, StateMachineStore};
use crate::status::{FollowerProgress, LocalStatus, MemberStatus, RaftRole, StoreStatus};
use crate::types::{KeyValue, NodeId, Raft, ReadConsistency, TxnRequest, TxnResponse};
use crate::watch::{self, WatchStream};

/// Longest key the store accepts.
pub const MAX_KEY_LEN: usize = 4 * 1024;
/// Largest value the store accepts.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the background refresh asks every member for its report.
const STATUS_REFRESH: Duration = Duration::from_millis(500);
/// A refreshed status older than this is not used; the members are asked again.
const STATUS_STALE: Duration = Duration::from_secs(3);

/// Ask every member for its report every [`STATUS_REFRESH`] until the store is closed or
/// dropped, keeping the answer for [`StateStore::recent_status`].
async fn refresh_status(inner: Weak<Inner>) {
    let mut ticks = tokio::time::interval(STATUS_REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let store = StateStore { inner };
        let status = store.status().await;
        store
            .inner
            .recent
            .send_replace(Some((Instant::now(), status)));
    }
}

/// The outcome of a compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was written at this revision.
    Swapped { revision: u64 },
    /// The key's modification revision was not the expected one; nothing was written.
    Conflict { store_revision: u64 },
}

/// Handle to one member of the store. Clones share the member.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    forwarder: Forwarder,
    batcher: Batcher,
    db: sled::Db,
    log_db: sled::Db,
    /// The members' status as the background refresh last saw it, and when.
    recent: tokio::sync::watch::Sender<Option<(Instant, StoreStatus)>>,
    closed: AtomicBool,
    /// Whether Raft RPCs from other members are served (see `StoreConfig::wait_to_accept_raft`).
    accepting_raft: AtomicBool,
    /// Transactions this member was asked to write since it opened.
    writes: std::sync::atomic::AtomicU64,
}

impl StateStore {
    /// Open (or create) the member's data directory and start its Raft node. A new member is
    /// not part of any cluster until [`StateStore::initialize`] or a leader adds it.
    pub async fn open(config: StoreConfig) -> StoreResult<Self> {
        let path = config.data_dir.display().to_string();
        if config.cluster_secret.is_empty() {
            return Err(StoreError::InvalidArgument(
                "the cluster secret must be set: internal requests without it are refused".into(),
            ));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::InvalidArgument(format!("cannot create data directory {path}: {e}"))
        })?;
        let db = sled::Config::new()
            .path(&config.data_dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| StoreError::sled("database", e))?;
        // A directory that had a header in format 4 or later must still have its log; the log
        // of a new one is created before its header, so a crash between leaves no such gap.
        let expect_log = match ondisk::read_header(&db)? {
            Some(_) => {
                ondisk::check_or_write_header(&db, &path, config.node_id)?.format_version >= 4
            }
            None => false,
        };
        let log_db = ondisk::open_log_db(&config.data_dir, config.node_id, expect_log)?;
        let header = ondisk::check_or_write_header(&db, &path, config.node_id)?;
        ondisk::upgrade(&db, &log_db, &path, header, config.max_encoded_len)?;
        let log_store = LogStore::open(&log_db)?;
        let restored = log_store.restored()?;
        let sm = SmShared::open_limited(&db, config.event_retention, config.max_encoded_len)?;
        // A member that ever voted, heard a leader or applied a membership.
        let member = log_store.has_vote()? || sm.applied_state()?.membership.log_id().is_some();
        // Chunks of a snapshot whose writing a crash interrupted.
        sm.snapshots.remove_stale_chunks()?;
        let client = RpcClient::new(&config.cluster_secret);
        let raft_config = config
            .raft_config()
            .map_err(|e| StoreError::InvalidArgument(format!("raft settings: {e}")))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory::new(client.clone()),
            log_store,
            StateMachineStore::new(sm.clone()),
        )
        .await
        .map_err(|e| StoreError::Raft(e.to_string()))?;
        let accepting_raft = AtomicBool::new(member || !config.wait_to_accept_raft);
        let forwarder = Forwarder {
            id: config.node_id,
            raft,
            client,
            config: Arc::new(config.clone()),
            sm,
            restored,
        };
        let batcher = Batcher::start(
            forwarder.clone(),
            config.max_batch,
            config.max_batches_in_flight,
        );
        tracing::info!(node_id = config.node_id, data_dir = %path, member, "state store opened");
        let store = StateStore {
            inner: Arc::new(Inner {
                forwarder,
                batcher,
                db,
                log_db,
                recent: tokio::sync::watch::channel(None).0,
                closed: AtomicBool::new(false),
                accepting_raft,
                writes: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        tokio::spawn(refresh_status(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    pub fn id(&self) -> NodeId {
        self.inner.forwarder.id
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.forwarder.config
    }

    /// The underlying Raft node, for metrics and tests.
    pub fn raft(&self) -> &Raft {
        &self.inner.forwarder.raft
    }

    pub(crate) fn forwarder(&self) -> &Forwarder {
        &self.inner.forwarder
    }

    /// The internal HTTP routes of this member (Raft RPC, forwarding, status), guarded by the
    /// cluster secret. Serve them on the internal listener.
    pub fn router(&self) -> axum::Router {
        crate::server::router(self.clone())
    }

    /// Serve Raft RPCs from now on (a member opened with `wait_to_accept_raft` and an empty
    /// store serves none before).
    pub fn accept_raft(&self) {
        if !self.inner.accepting_raft.swap(true, Ordering::SeqCst) {
            tracing::info!(node_id = self.id(), "accepting raft requests");
        }
    }

    pub(crate) fn accepts_raft(&self) -> bool {
        self.inner.accepting_raft.load(Ordering::SeqCst)
    }

    /// Form a new cluster of `members` (id to internal URL). Returns false, changing nothing,
    /// when this member already belongs to a cluster.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> StoreResult<bool> {
        self.accept_raft();
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, url)| (id, BasicNode::new(url)))
            .collect();
        match self.raft().initialize(nodes).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(raft_error(e)),
        }
    }

    pub async fn is_initialized(&self) -> StoreResult<bool> {
        self.raft()
            .is_initialized()
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))
    }

    /// Wait up to `timeout` for a leader to be known and return its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> StoreResult<NodeId> {
        let metrics = self
            .raft()
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| StoreError::NoLeader {
                waited_ms: timeout.as_millis() as u64,
            })?;
        metrics.current_leader.ok_or(StoreError::NoLeader {
            waited_ms: timeout.as_millis() as u64,
        })
    }

    /// The leader this member knows of, if any.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft().metrics().borrow().current_leader
    }

    async fn read_barrier(&self, consistency: ReadConsistency) -> StoreResult<()> {
        match consistency {
            ReadConsistency::Linearizable => self.inner.forwarder.read_barrier().await,
            ReadConsistency::Local => Ok(()),
        }
    }

    pub async fn get(
        &self,
        key: &str,
        consistency: ReadConsistency,
    ) -> StoreResult<Option<KeyValue>> {
        validate_key(key)?;
        self.read_barrier(consistency).await?;
        self.inner.forwarder.sm.get(key)
    }

    /// Every key starting with `prefix`, in key order.
    pub async fn scan(
        &self,
        prefix: &str,
        consistency: ReadConsistency,
    ) -> StoreResult<Vec<KeyValue>> {
        self.read_barrier(consistency).await?;
        self.inner.forwarder.sm.scan(prefix)
    }

    /// The store's current revision.
    pub async fn revision(&self, consistency: ReadConsistency) -> StoreResult<u64> {
        self.read_barrier(consistency).await?;
        Ok(self.inner.forwarder.sm.applied_revision())
    }

    /// Apply a transaction: every condition, then the matching writes, atomically.
    pub async fn txn(&self, txn: TxnRequest) -> StoreResult<TxnResponse> {
        validate_txn(&txn)?;
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.batcher.submit(txn).await
    }

    /// Transactions (puts, deletes, compare-and-sets) this member was asked to write since it
    /// opened; several may share one Raft entry.
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Write `value` under `key`; returns the write's revision.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> StoreResult<u64> {
        Ok(self.txn(TxnRequest::put(key, value)).await?.revision)
    }

    /// Delete `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> StoreResult<bool> {
        Ok(self.txn(TxnRequest::delete(key)).await?.deleted > 0)
    }

    /// Delete every key under `prefix`; returns how many there were.
    pub async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64> {
        let txn = TxnRequest {
            success: vec![crate::types::Op::DeletePrefix {
                prefix: prefix.to_string(),
            }],
            ..TxnRequest::default()
        };
        Ok(self.txn(txn).await?.deleted)
    }

    /// Write `value` only if the key's modification revision is `expected` (0: absent).
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: impl Into<Vec<u8>>,
    ) -> StoreResult<CasOutcome> {
        let response = self
            .txn(TxnRequest::compare_and_set(key, expected, value.into()))
            .await?;
        Ok(if response.succeeded {
            CasOutcome::Swapped {
                revision: response.revision,
            }
        } else {
            CasOutcome::Conflict {
                store_revision: response.revision,
            }
        })
    }

    /// Watches whose watcher is still running (each ends soon after its stream is dropped).
    pub fn live_watches(&self) -> usize {
        self.inner.forwarder.sm.hub.watchers()
    }

    /// Every change under `prefix` with revision `from_revision` or later (0: from now on).
    pub fn watch(&self, prefix: &str, from_revision: u64) -> StoreResult<WatchStream> {
        watch::start(
            self.inner.forwarder.sm.clone(),
            prefix.to_string(),
            from_revision,
        )
    }

    pub async fn add_learner(&self, id: NodeId, url: &str) -> StoreResult<()> {
        self.admin(AdminRequest::AddLearner {
            id,
            url: url.to_string(),
        })
        .await
    }

    pub async fn promote(&self, id: NodeId) -> StoreResult<()> {
        self.admin(AdminRequest::Promote { id }).await
    }

    pub async fn remove_member(&self, id: NodeId) -> StoreResult<()> {
        self.admin(AdminRequest::Remove { id }).await
    }

    pub async fn transfer_leader(&self, to: NodeId) -> StoreResult<()> {
        self.admin(AdminRequest::TransferLeader { to }).await?;
        let timeout = self.config().request_timeout;
        self.raft()
            .wait(Some(timeout))
            .metrics(|m| m.current_leader == Some(to), "the new leader")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Timeout {
                operation: format!("learn that {to} leads: {e}"),
                timeout_ms: timeout.as_millis() as u64,
            })
    }

    async fn admin(&self, request: AdminRequest) -> StoreResult<()> {
        self.inner.forwarder.admin(request).await
    }

    /// This member's own report.
    pub fn local_status(&self) -> LocalStatus {
        let metrics = self.raft().metrics().borrow().clone();
        let forwarder = &self.inner.forwarder;
        let mut status = LocalStatus::from_metrics(&metrics, forwarder.sm.applied_revision());
        if let Some(replication) = &metrics.replication {
            for (id, matched) in replication.iter() {
                let last_contact_ms = forwarder
                    .client
                    .last_contact(*id)
                    .map(|t| t.elapsed().as_millis() as u64);
                status.followers.insert(
                    *id,
                    FollowerProgress {
                        matched_index: matched.map(|l| l.index),
                        last_contact_ms,
                    },
                );
            }
        }
        status
    }

    /// [`StateStore::status`] as the background refresh last saw it (every half second),
    /// without asking anyone now: for the paths of queries, where an unreachable member must
    /// not add its timeout. Asks now only when no recent refresh is at hand.
    pub async fn recent_status(&self) -> StoreStatus {
        let recent = self.inner.recent.borrow().clone();
        match recent {
            Some((at, status)) if at.elapsed() < STATUS_STALE => status,
            _ => self.status().await,
        }
    }

    /// Every member's role, term, log and applied index, and the leader's view of its lag,
    /// asked of every member now.
    pub async fn status(&self) -> StoreStatus {
        let metrics = self.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let members: Vec<(NodeId, String)> = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let reports =
            futures::future::join_all(members.iter().map(|(id, url)| self.report_of(*id, url)))
                .await;
        let reports: BTreeMap<NodeId, Result<LocalStatus, String>> =
            members.iter().map(|(id, _)| *id).zip(reports).collect();
        let leader = metrics.current_leader;
        let leader_report = leader
            .and_then(|l| reports.get(&l))
            .and_then(|r| r.as_ref().ok());
        let leader_last = leader_report.map(|r| r.last_log_index);
        let members = members
            .into_iter()
            .map(|(id, url)| {
                let report = reports.get(&id).cloned().unwrap_or(Err("no report".into()));
                let progress = leader_report.and_then(|r| r.followers.get(&id));
                let matched_index = if Some(id) == leader {
                    leader_last
                } else {
                    progress.and_then(|p| p.matched_index)
                };
                MemberStatus {
                    id,
                    url,
                    voter: voters.contains(&id),
                    role: report.as_ref().map_or(RaftRole::Unknown, |r| r.role),
                    term: report.as_ref().ok().map(|r| r.term),
                    last_log_index: report.as_ref().ok().map(|r| r.last_log_index),
                    applied_index: report.as_ref().ok().map(|r| r.applied_index),
                    matched_index,
                    lag: leader_last.map(|last| last.saturating_sub(matched_index.unwrap_or(0))),
                    last_contact_ms: if Some(id) == leader {
                        Some(0)
                    } else {
                        progress.and_then(|p| p.last_contact_ms)
                    },
                    error: report.err(),
                }
            })
            .collect();
        StoreStatus {
            reporter: self.id(),
            leader,
            term: metrics.current_term,
            leader_last_log_index: leader_last,
            leader_purged_index: leader_report.map(|r| r.purged_index),
            members,
        }
    }

    async fn report_of(&self, id: NodeId, url: &str) -> Result<LocalStatus, String> {
        if id == self.id() {
            return Ok(self.local_status());
        }
        self.inner
            .forwarder
            .client
            .call(url, paths::STATUS, &(), STATUS_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    /// Stop the Raft node and flush the database.
    pub async fn shutdown(&self) -> StoreResult<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let result = self.raft().shutdown().await;
        self.inner
            .db
            .flush_async()
            .await
            .map_err(|e| StoreError::sled("database", e))?;
        self.inner
            .log_db
            .flush_async()
            .await
            .map_err(|e| StoreError::sled("raft log database", e))?;
        result.map_err(|e| StoreError::Raft(format!("raft task ended abnormally: {e}")))?;
        tracing::info!(node_id = self.id(), "state store stopped");
        Ok(())
    }
}

fn validate_key(key: &str) -> StoreResult<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidArgument(
            "a key must not be empty".into(),
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "a key may have at most {MAX_KEY_LEN} bytes, this one has {}",
            key.len()
        )));
    }
    Ok(())
}

fn validate_txn(txn: &TxnRequest) -> StoreResult<()> {
    use crate::types::{Condition, Op};
    for condition in &txn.conditions {
        match condition {
            Condition::ModRevision { key, .. }
            | Condition::ValueEquals { key, .. }
            | Condition::Exists { key, .. } => validate_key(key)?,
        }
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            Op::Put { key, value } => {
                validate_key(key)?;
                if value.len() > MAX_VALUE_LEN {
                    return Err(StoreError::InvalidArgument(format!(
                        "a value may have at most {MAX_VALUE_LEN} bytes, this one has {}",
                        value.len()
                    )));
                }
            }
            Op::Delete { key } => validate_key(key)?,
            Op::DeletePrefix { .. } => {}
        }
    }
    Ok(())
}
