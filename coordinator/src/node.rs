//! A running coordinator: its configuration, its state-store member, its URLs and whether it
//! has joined the cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shoal_engine::distributed::{Distribution, ScheduledWorkers, SecretChannels};
use shoal_state_store::network::RpcClient;
use shoal_state_store::{RaftRole, ReadConsistency, StateStore};

use crate::config::CoordinatorConfig;
use crate::error::Result;
use crate::registry::{self, Mode};

/// Internal routes of the coordinator itself (the state store has its own).
pub mod paths {
    pub const CLUSTER_INFO: &str = "/cluster/v1/info";
    pub const JOIN: &str = "/cluster/v1/join";
    /// Told by the member admitting a coordinator: accept Raft requests from now on.
    pub const ADMITTED: &str = "/cluster/v1/admitted";
}

/// What a coordinator says about the cluster it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub node_id: u64,
    pub initialized: bool,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub leader: Option<u64>,
    /// Coordinators with a record in the registry: each was a voter once (a record is written
    /// after a coordinator became a voter and removed when it is removed from the cluster).
    pub registered: Vec<u64>,
}

/// A coordinator asking to become a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: u64,
    pub internal_url: String,
}

/// This coordinator's state as `haadmin get-state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaState {
    pub node_id: u64,
    pub client_url: String,
    /// `active` takes new queries; `backup` only serves existing ones (draining).
    pub state: Mode,
    pub joined: bool,
    pub raft_role: RaftRole,
    pub term: u64,
    pub leader: Option<u64>,
    pub leader_client_url: Option<String>,
}

pub struct Coordinator {
    pub config: CoordinatorConfig,
    pub store: StateStore,
    /// The file-system profiles' stores.
    pub storage: shoal_storage::Storage,
    /// The object stores DataFusion sessions read and write tables through.
    pub stores: shoal_engine::provider::ObjectStores,
    /// Where managed tables keep their files.
    pub warehouse: crate::catalog::warehouse::Warehouse,
    /// Where drivers spool result pages (`query.result-spool`); None for no spool.
    pub spool_root: Option<shoal_storage::Location>,
    /// Who may do what to which catalog, schema and table (Trino's file-based rules).
    pub access: shoal_access::AccessControl,
    pub client_url: String,
    pub internal_url: String,
    pub started: Instant,
    pub started_at_ms: u64,
    pub rpc: RpcClient,
    pub queries: crate::query::manager::Queries,
    pub workers: crate::workers::Workers,
    pub metrics: crate::metrics::Metrics,
    /// When this coordinator trims the query history next.
    pub history: crate::query::history::History,
    /// Running queries the Raft leader found missing from their driver.
    pub unclaimed: crate::query::unclaimed::Unclaimed,
    /// gRPC channels to workers for the stages of statements run here (None if the secret
    /// cannot be a header value).
    channels: Option<SecretChannels>,
    joined: AtomicBool,
}

impl Coordinator {
    pub fn new(
        config: CoordinatorConfig,
        store: StateStore,
        storage: shoal_storage::Storage,
        (warehouse, spool_root): (
            crate::catalog::warehouse::Warehouse,
            Option<shoal_storage::Location>,
        ),
        access: shoal_access::AccessControl,
        client_url: String,
        internal_url: String,
    ) -> Arc<Self> {
        let stores = shoal_engine::provider::object_stores(&storage);
        let rpc = RpcClient::new(&config.secret);
        let channels = SecretChannels::new(&config.secret).ok();
        let queries = crate::query::manager::Queries::new(config.node_id);
        let workers = crate::workers::Workers::new(config.worker_timeout);
        let history = crate::query::history::History::new(config.max_query_history);
        Arc::new(Coordinator {
            config,
            store,
            storage,
            stores,
            warehouse,
            spool_root,
            access,
            client_url,
            internal_url,
            started: Instant::now(),
            started_at_ms: shoal_seed_store::publisher::now_ms(),
            rpc,
            queries,
            workers,
            metrics: crate::metrics::Metrics::default(),
            history,
            unclaimed: Default::default(),
            channels,
            joined: AtomicBool::new(false),
        })
    }

    /// The live workers as a distribution for a statement run in this coordinator, if any.
    /// Whether `viewer` may see queries of `owner`: their own, every query for users in
    /// `query.admin-users`, and what the access-control `queries` rules allow.
    pub fn may_view_query(&self, viewer: &str, owner: &str) -> bool {
        viewer == owner
            || self.config.is_admin(viewer)
            || (self.access.has_query_rules()
                && self
                    .access
                    .check_can_view_query_owned_by(&self.access.identity(viewer), owner)
                    .is_ok())
    }

    /// Whether `user` may cancel queries of `owner` (as [`Self::may_view_query`], for kill).
    pub fn may_kill_query(&self, user: &str, owner: &str) -> bool {
        user == owner
            || self.config.is_admin(user)
            || (self.access.has_query_rules()
                && self
                    .access
                    .check_can_kill_query_owned_by(&self.access.identity(user), owner)
                    .is_ok())
    }

    pub fn distribution(&self) -> Option<Distribution> {
        let urls: Vec<String> = self
            .workers
            .live()
            .into_iter()
            .map(|w| w.heartbeat.internal_url)
            .collect();
        let workers = ScheduledWorkers::parse(&urls).ok()?;
        Some(Distribution {
            workers,
            channels: self.channels.clone()?,
            scan_bytes_per_task: self.config.scan_bytes_per_task,
        })
    }

    pub fn id(&self) -> u64 {
        self.config.node_id
    }

    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_joined(&self) {
        self.joined.store(true, Ordering::SeqCst);
    }

    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// Whether this coordinator is a voter of the store's current membership.
    pub fn is_voter(&self) -> bool {
        let metrics = self.store.raft().metrics().borrow().clone();
        let voter = metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id());
        voter
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        let metrics = self.store.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        ClusterInfo {
            node_id: self.id(),
            initialized: metrics.membership_config.log_id().is_some(),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            leader: metrics.current_leader,
            registered: Vec::new(),
        }
    }

    /// [`Coordinator::cluster_info`] with the coordinators this member's registry holds.
    pub async fn cluster_info_with_registry(&self) -> Result<ClusterInfo> {
        let mut info = self.cluster_info();
        info.registered = registry::list(&self.store, ReadConsistency::Local)
            .await?
            .iter()
            .map(|r| r.id)
            .collect();
        Ok(info)
    }

    pub async fn ha_state(&self) -> Result<HaState> {
        let status = self.store.local_status();
        let records = registry::list_freshest(&self.store).await?;
        let record = records.iter().find(|r| r.id == self.id());
        let leader_client_url = status
            .leader
            .and_then(|leader| records.iter().find(|r| r.id == leader))
            .map(|r| r.client_url.clone());
        Ok(HaState {
            node_id: self.id(),
            client_url: self.client_url.clone(),
            state: record.map_or(Mode::Active, |r| r.mode),
            joined: self.joined(),
            raft_role: status.role,
            term: status.term,
            leader: status.leader,
            leader_client_url,
        })
    }

    /// Add a coordinator to the store: as a learner, then as a voter once caught up.
    pub async fn admit(&self, request: &JoinRequest) -> Result<()> {
        let info = self.cluster_info();
        if info.voters.contains(&request.id) {
            return Ok(());
        }
        if !info.learners.contains(&request.id) {
            // A coordinator added by hand may know no peer that could tell it it is admitted.
            let told: std::result::Result<(), _> = self
                .rpc
                .call(
                    &request.internal_url,
                    paths::ADMITTED,
                    &(),
                    self.rpc_timeout(),
                )
                .await;
            if let Err(e) = told {
                tracing::warn!(id = request.id, error = %e, "cannot tell the coordinator it is admitted");
            }
            tracing::info!(id = request.id, url = %request.internal_url, "adding coordinator as learner");
            self.store
                .add_learner(request.id, &request.internal_url)
                .await?;
        }
        tracing::info!(id = request.id, "promoting coordinator to voter");
        self.store.promote(request.id).await?;
        Ok(())
    }
}
