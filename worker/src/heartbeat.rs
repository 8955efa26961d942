//! Announcing the worker: it follows the seed directory as coordinators come and go and sends
//! every live coordinator a heartbeat each interval.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shoal_proto::cluster::{WorkerHeartbeat, WORKER_HEARTBEAT_PATH};
use shoal_proto::CLUSTER_SECRET_HEADER;
use shoal_seed_store::{SeedStore, SeedWatcher};
use tokio::sync::watch;

const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Send `heartbeat` to the coordinator at `url`; the error says why it did not arrive.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    secret: &str,
    heartbeat: &WorkerHeartbeat,
) -> Result<(), String> {
    let body = serde_json::to_vec(heartbeat).map_err(|e| e.to_string())?;
    let request = http::Request::post(format!(
        "{}{WORKER_HEARTBEAT_PATH}",
        url.trim_end_matches('/')
    ))
    .header(CLUSTER_SECRET_HEADER, secret)
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::from(body)))
    .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    tokio::time::timeout(SEND_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Heartbeat every coordinator of the seed directory until `stopped` fires.
pub async fn run(
    store: SeedStore,
    secret: String,
    heartbeat: impl Fn() -> WorkerHeartbeat,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut watcher = SeedWatcher::new(store);
    let mut reached: BTreeSet<u64> = BTreeSet::new();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        let live = watcher.scan().await;
        let heartbeat = heartbeat();
        let mut now_reached = BTreeSet::new();
        for seed in &live {
            match send(&client, &seed.seed.internal_url, &secret, &heartbeat).await {
                Ok(()) => {
                    if !reached.contains(&seed.seed.id) {
                        tracing::info!(coordinator = seed.seed.id, url = %seed.seed.internal_url, "announced to coordinator");
                    }
                    now_reached.insert(seed.seed.id);
                }
                Err(reason) => {
                    if reached.contains(&seed.seed.id) {
                        tracing::warn!(coordinator = seed.seed.id, %reason, "coordinator did not take the heartbeat");
                    }
                }
            }
        }
        if now_reached.is_empty() && !reached.is_empty() {
            tracing::warn!("no coordinator reachable; still looking in the seed directory");
        }
        reached = now_reached;
    }
}

/// Run [`run`] on a thread of its own with its own runtime: query execution keeps the main
/// runtime's threads busy, and a late heartbeat would make coordinators take this worker for
/// dead.
pub fn spawn_dedicated(
    store: SeedStore,
    secret: String,
    heartbeat: impl Fn() -> WorkerHeartbeat + Send + 'static,
    interval: Duration,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || runtime.block_on(run(store, secret, heartbeat, interval, stopped)))
}
