//! The worker role: finds the coordinators through the seed directory and heartbeats to each,
//! runs datafusion-distributed's worker service for query stages, and drives queries handed to
//! it (planning, head stage, result pages), all on its internal listener behind the cluster
//! secret.

pub mod config;
pub mod drivers;
pub mod heartbeat;
mod internal_api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::distributed::SecretChannels;
use shoal_proto::cluster::WorkerHeartbeat;
use shoal_seed_store::SeedStore;
use shoal_state_store::network::RpcClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::WorkerConfig;

use crate::drivers::{BufferSettings, Drivers};

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
        running_queries: 0,
    };
    let channels = SecretChannels::new(&config.secret)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let spill_dir = config.spill_dir.clone();
    if spill_dir.exists() {
        // Spill files of an earlier run belong to queries that are gone.
        let _ = std::fs::remove_dir_all(&spill_dir);
    }
    let storage = shoal_storage::Storage::open(config.profiles.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let stores = shoal_engine::provider::object_stores(&storage);
    // The heartbeat thread has a runtime of its own, and so its own connections to the store.
    let seed_store = shoal_storage::Storage::open(config.profiles.clone())
        .and_then(|own| SeedStore::open(config.seed_store.clone(), &own))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let drivers = Arc::new(Drivers::new(
        internal_url.clone(),
        heartbeat.started_at_ms,
        RpcClient::new(&config.secret),
        channels.clone(),
        stores.clone(),
        BufferSettings {
            scan_bytes_per_task: config.scan_bytes_per_task as usize,
            memory_bytes: config.buffer_memory_bytes,
            spill_dir,
            spill_bytes: config.spill_bytes,
            storage: storage.clone(),
        },
    ));
    let app = internal_api::router(
        &config.secret,
        heartbeat.clone(),
        drivers.clone(),
        channels,
        stores,
    )
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
    let load = drivers.clone();
    let announcing = heartbeat::spawn_dedicated(
        seed_store,
        config.secret.clone(),
        move || WorkerHeartbeat {
            running_queries: load.running(),
            ..heartbeat.clone()
        },
        config.heartbeat_interval,
        stopped.clone(),
    )?;
    let reaper = tokio::spawn(reap_abandoned(drivers, stopped));
    tracing::info!(worker = %config.id, %internal_url, cores, memory_bytes, cluster = %config.cluster, "worker started");
    shutdown.await;
    tracing::info!(worker = %config.id, "worker stopping");
    let _ = stop.send(true);
    let _ = tokio::task::spawn_blocking(move || announcing.join()).await;
    let _ = reaper.await;
    if let Ok(result) = server.await {
        result?;
    }
    tracing::info!(worker = %config.id, "worker stopped");
    Ok(())
}

async fn reap_abandoned(drivers: Arc<Drivers>, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => drivers.reap_abandoned(),
            _ = stopped.changed() => return,
        }
    }
}
