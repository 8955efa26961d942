//! The worker role. Today a worker finds the coordinators through the seed directory, announces
//! itself (id, internal URL, cores, memory) to each and heartbeats, and serves its internal API
//! behind the cluster secret. Query execution (datafusion-distributed) and result buffers come
//! next.

pub mod config;
pub mod heartbeat;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shoal_proto::cluster::WorkerHeartbeat;
use shoal_proto::{same_secret, CLUSTER_SECRET_HEADER};
use shoal_seed_store::SeedStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::WorkerConfig;

/// Cores and memory of this machine.
fn resources() -> (u32, u64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    (cores, memory)
}

async fn require_secret(State(secret): State<String>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(CLUSTER_SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if same_secret(given, secret.as_bytes()) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "refused request without a valid cluster secret");
    (
        axum::http::StatusCode::UNAUTHORIZED,
        "the cluster secret is missing or wrong",
    )
        .into_response()
}

/// Run a worker on an already-bound internal listener until `shutdown` completes.
pub async fn run(
    config: WorkerConfig,
    internal: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let internal_url = format!(
        "http://{}:{}",
        config.advertise_host,
        internal.local_addr()?.port()
    );
    let (cores, memory_bytes) = resources();
    let heartbeat = WorkerHeartbeat {
        id: config.id.clone(),
        internal_url: internal_url.clone(),
        cores,
        memory_bytes,
        started_at_ms: shoal_seed_store::publisher::now_ms(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let status = heartbeat.clone();
    let app = Router::new()
        .route(
            "/worker/v1/status",
            get(move || async move { Json(status) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            config.secret.clone(),
            require_secret,
        ))
        .into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = watch::channel(false);
    let mut server_stopped = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(internal, app)
            .with_graceful_shutdown(async move {
                let _ = server_stopped.changed().await;
            })
            .await
    });
    let announcing = tokio::spawn(heartbeat::run(
        SeedStore::new(config.seed_store.clone()),
        config.secret.clone(),
        heartbeat,
        config.heartbeat_interval,
        stopped,
    ));
    tracing::info!(worker = %config.id, %internal_url, cores, memory_bytes, cluster = %config.cluster, "worker started");
    shutdown.await;
    tracing::info!(worker = %config.id, "worker stopping");
    let _ = stop.send(true);
    let _ = announcing.await;
    if let Ok(result) = server.await {
        result?;
    }
    tracing::info!(worker = %config.id, "worker stopped");
    Ok(())
}
