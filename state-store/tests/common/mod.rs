//! An in-process cluster of state-store members on port-0 listeners and temporary directories.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_state_store::{NodeId, ReadConsistency, StateStore, StoreConfig};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &str = "test-cluster-secret";

/// Fail the test with `what` if `future` does not finish within `secs` seconds.
pub async fn within<F: Future>(secs: u64, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {secs} s: {what}"),
    }
}

/// Poll `condition` every 20 ms until it holds, failing the test after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("condition not met within {secs} s: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Check `condition` every 20 ms for `window`, failing the test as soon as it does not hold
/// (for properties that must stay true, such as "nothing arrives").
pub async fn holds_for<F, Fut>(window: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + window;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    while tokio::time::Instant::now() < end {
        every.tick().await;
        assert!(condition().await, "stopped holding: {what}");
    }
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,openraft=off")),
        )
        .with_test_writer()
        .try_init();
}

/// A running member: its store and the HTTP server for its internal routes.
pub struct Member {
    pub store: StateStore,
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

pub struct TestCluster {
    root: TempDir,
    pub members: BTreeMap<NodeId, Member>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    pub tune: fn(&mut StoreConfig),
}

fn default_tune(_: &mut StoreConfig) {}

impl TestCluster {
    /// Start `n` members with ids 1..=n and initialise them as one cluster.
    pub async fn start(n: u64) -> TestCluster {
        Self::start_with(n, default_tune).await
    }

    pub async fn start_with(n: u64, tune: fn(&mut StoreConfig)) -> TestCluster {
        init_logging();
        let mut cluster = TestCluster {
            root: TempDir::new().expect("temporary directory"),
            members: BTreeMap::new(),
            addrs: BTreeMap::new(),
            tune,
        };
        for id in 1..=n {
            cluster.launch(id, None).await;
        }
        let members: BTreeMap<NodeId, String> = cluster
            .members
            .iter()
            .map(|(id, m)| (*id, m.url.clone()))
            .collect();
        assert!(cluster
            .member(1)
            .initialize(members)
            .await
            .expect("initialize"));
        cluster.wait_for_leader_everywhere().await;
        cluster
    }

    pub fn config_for(&self, id: NodeId, url: &str) -> StoreConfig {
        let mut config = StoreConfig::new(id, self.root.path().join(format!("node-{id}")), url)
            .with_secret(SECRET);
        config.request_timeout = Duration::from_secs(3);
        (self.tune)(&mut config);
        config
    }

    /// Start member `id` (again, on its old port if it ran before).
    pub async fn launch(&mut self, id: NodeId, secret: Option<&str>) {
        let bind = self
            .addrs
            .get(&id)
            .copied()
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("address"));
        let listener = bind_retrying(bind).await;
        let addr = listener.local_addr().expect("local address");
        self.addrs.insert(id, addr);
        let url = format!("http://{addr}");
        let mut config = self.config_for(id, &url);
        if let Some(secret) = secret {
            config.cluster_secret = secret.to_string();
        }
        let store = open_retrying(config).await;
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(shoal_state_store::server::serve(
            store.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        self.members.insert(
            id,
            Member {
                store,
                url,
                shutdown: Some(tx),
                server,
            },
        );
    }

    pub fn member(&self, id: NodeId) -> &StateStore {
        &self
            .members
            .get(&id)
            .unwrap_or_else(|| panic!("member {id} is not running"))
            .store
    }

    pub fn url(&self, id: NodeId) -> String {
        format!("http://{}", self.addrs[&id])
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// Stop member `id` abruptly: its server stops answering and its Raft node stops.
    pub async fn kill(&mut self, id: NodeId) {
        let mut member = self.members.remove(&id).expect("member to kill");
        member.server.abort();
        let _ = (&mut member.server).await;
        drop(member.shutdown.take());
        let _ = member.store.raft().shutdown().await;
    }

    pub async fn wait_for_leader_everywhere(&self) -> NodeId {
        let mut leader = 0;
        for member in self.members.values() {
            leader = within(
                10,
                "a leader is known",
                member.store.wait_for_leader(Duration::from_secs(10)),
            )
            .await
            .expect("leader");
        }
        leader
    }

    /// The leader as the running members see it, once they agree on one that is running.
    pub async fn leader(&self) -> NodeId {
        let mut found = None;
        eventually(10, "members agree on a running leader", || {
            let leaders: Vec<Option<NodeId>> = self
                .members
                .values()
                .map(|m| m.store.current_leader())
                .collect();
            let first = leaders[0];
            let agreed = first.is_some()
                && leaders.iter().all(|l| *l == first)
                && self.members.contains_key(&first.unwrap_or_default());
            found = first;
            async move { agreed }
        })
        .await;
        found.expect("leader")
    }

    /// Wait until member `id` has applied everything the leader has.
    pub async fn wait_caught_up(&self, id: NodeId) {
        let leader = self.leader().await;
        let target = self.member(leader).local_status().last_log_index;
        let store = self.member(id).clone();
        eventually(20, &format!("member {id} applies up to {target}"), || {
            let applied = store.local_status().applied_index;
            async move { applied >= target }
        })
        .await;
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, error = %e, "port busy; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

/// Open a store, retrying while a just-stopped instance still holds the directory's lock.
pub async fn open_retrying(config: StoreConfig) -> StateStore {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match StateStore::open(config.clone()).await {
            Ok(store) => return store,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "store not ready to open; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot open store: {e}"),
        }
    }
}

/// Read `key` from member `store` (linearizable) as a string.
pub async fn read(store: &StateStore, key: &str) -> Option<String> {
    store
        .get(key, ReadConsistency::Linearizable)
        .await
        .expect("linearizable read")
        .map(|kv| String::from_utf8(kv.value).expect("utf-8 value"))
}
