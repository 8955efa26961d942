//! The coordinator role: it embeds a state-store member, finds and forms the cluster through
//! the seed directory, and serves the client API (Trino protocol, web page, admin API; over
//! HTTPS and with password authentication when configured) and
//! the internal API.

pub mod admin_api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod formation;
pub mod internal_api;
pub mod kv_api;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod query;
pub mod registry;
pub mod sync_status;
#[cfg(test)]
mod test_store;
pub mod tls;
pub mod web;
pub mod workers;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use shoal_seed_store::{Seed, SeedPublisher, SeedRole, SeedStore, SeedWatcher};
use shoal_state_store::StateStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::CoordinatorConfig;
pub use error::{CoordinatorError, Result};
pub use node::Coordinator;

/// How long requests in flight may take to finish when the coordinator stops.
const SERVER_DRAIN: Duration = Duration::from_secs(3);
/// How long each other step of stopping may take.
const STOP_STEP: Duration = Duration::from_secs(2);

/// Run a coordinator on already-bound listeners until `shutdown` completes; then leave the seed
/// directory, stop serving and close the state store.
pub async fn run(
    config: CoordinatorConfig,
    client: TcpListener,
    internal: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let host = config.advertise_host.clone();
    let scheme = if config.https_keystore.is_some() {
        "https"
    } else {
        "http"
    };
    let client_url = format!("{scheme}://{host}:{}", client.local_addr()?.port());
    let tls = match &config.https_keystore {
        Some(keystore) => Some(
            tls::acceptor(keystore, None)
                .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?,
        ),
        None => None,
    };
    let authenticator = match &config.password_file {
        Some(file) => Some(
            auth::PasswordAuthenticator::open(file)
                .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?,
        ),
        None => None,
    };
    let internal_url = format!("http://{host}:{}", internal.local_addr()?.port());
    let storage = shoal_storage::Storage::open(config.profiles.clone())
        .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
    let warehouse = storage
        .location(&config.warehouse, std::path::Path::new("/"))
        .map(catalog::warehouse::Warehouse::new)
        .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
    let spool_root = match &config.result_spool {
        Some(spec) => Some(
            storage
                .location(spec, std::path::Path::new("/"))
                .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?,
        ),
        None => None,
    };
    let access = shoal_access::AccessControl::load(&config.etc_dir)
        .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
    failpoints_from_env();
    let store = StateStore::open(config.store_config(&internal_url)).await?;
    let node = Coordinator::new(
        config.clone(),
        store,
        storage,
        (warehouse, spool_root),
        access,
        client_url.clone(),
        internal_url.clone(),
    );
    let (stop, stopped) = watch::channel(false);

    let internal_app =
        internal_api::router(node.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let internal_server = tokio::spawn(
        axum::serve(internal, internal_app)
            .with_graceful_shutdown(wait_for(stopped.clone()))
            .into_future(),
    );
    let mut clients_only =
        protocol::statement::router(node.clone()).merge(web::router(node.clone()));
    if let Some(authenticator) = authenticator {
        clients_only = clients_only.layer(axum::middleware::from_fn_with_state(
            authenticator,
            auth::require_password,
        ));
    }
    // Segment URIs carry their query's secret slug instead of credentials.
    let client_app = admin_api::router(node.clone())
        .merge(protocol::spooling::router(node.clone()))
        .merge(clients_only);
    let client_server = match tls {
        None => tokio::spawn(
            axum::serve(
                client,
                client_app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(wait_for(stopped.clone()))
            .into_future(),
        ),
        Some(acceptor) => tokio::spawn(
            axum::serve(
                tls::TlsListener::new(client, acceptor)?,
                client_app.into_make_service(),
            )
            .with_graceful_shutdown(wait_for(stopped.clone()))
            .into_future(),
        ),
    };

    let seed_store = SeedStore::open(config.seed_store.clone(), &node.storage)
        .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
    let seed = Seed {
        format: shoal_seed_store::seed::SEED_FORMAT,
        cluster: config.cluster.clone(),
        role: SeedRole::Coordinator,
        id: config.node_id,
        client_url: client_url.clone(),
        internal_url: internal_url.clone(),
        started_at_ms: node.started_at_ms,
        heartbeat: 0,
    };
    let publisher = SeedPublisher::start(seed_store.clone(), seed).await?;
    let reaper = tokio::spawn(reap_abandoned_queries(node.clone(), stopped.clone()));
    let cleaner = tokio::spawn(clean_warehouse(node.clone(), stopped.clone()));
    let (refusal, refused) = tokio::sync::oneshot::channel();
    let formation = tokio::spawn({
        let (node, watcher) = (node.clone(), SeedWatcher::new(seed_store));
        async move {
            if let Err(refused) = formation::run(node, watcher, stopped).await {
                let _ = refusal.send(refused);
            }
        }
    });
    tracing::info!(node_id = config.node_id, %client_url, %internal_url, cluster = %config.cluster, "coordinator started");

    // A refusal to join stops the coordinator as a shutdown does, then fails its start.
    let refused = tokio::select! {
        _ = shutdown => None,
        Ok(refused) = refused => Some(refused),
    };
    tracing::info!(node_id = config.node_id, "coordinator stopping");
    // Every step is bounded: without a quorum, store calls of the background tasks and of
    // requests in flight would otherwise wait out their own timeouts one after another.
    if tokio::time::timeout(STOP_STEP, publisher.stop())
        .await
        .is_err()
    {
        tracing::warn!("the seed was not withdrawn in time");
    }
    let _ = stop.send(true);
    futures::future::join3(
        stop_task("formation", formation),
        stop_task("reaper", reaper),
        stop_task("cleaner", cleaner),
    )
    .await;
    let drained = futures::future::join(internal_server, client_server);
    if tokio::time::timeout(SERVER_DRAIN, drained).await.is_err() {
        tracing::warn!("the listeners did not drain in time");
    }
    match tokio::time::timeout(STOP_STEP, node.store.shutdown()).await {
        Ok(closed) => closed?,
        Err(_) => tracing::warn!("the state store did not close in time"),
    }
    tracing::info!(node_id = config.node_id, "coordinator stopped");
    match refused {
        Some(refused) => Err(CoordinatorError::InvalidArgument(refused.0)),
        None => Ok(()),
    }
}

/// Wait up to [`STOP_STEP`] for a background task told to stop, then abort it.
async fn stop_task(name: &str, mut task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(STOP_STEP, &mut task).await.is_err() {
        tracing::warn!(
            task = name,
            "a background task did not stop in time; aborting it"
        );
        task.abort();
    }
}

/// Queries whose client stopped reading for `query.client.timeout` are cancelled; on the Raft
/// leader, queries of dead coordinators and dead drivers are adopted, re-run or failed.
async fn reap_abandoned_queries(node: std::sync::Arc<Coordinator>, stopped: watch::Receiver<bool>) {
    let timeout = node.config.query_client_timeout;
    let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let stop = wait_for(stopped);
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticks.tick() => {
                node.queries.reap_abandoned(timeout);
                node.history.forget_idle(timeout * 4);
                let leader = node.store.current_leader();
                node.metrics.observe_leader(leader);
                if leader == Some(node.id()) {
                    query::recovery::sweep(&node).await;
                    let limits = query::admission::limits(&node);
                    match query::admission::sweep(&node.store, limits).await {
                        Ok(0) => {}
                        Ok(freed) => tracing::info!(freed, "admission slots of ended queries freed"),
                        Err(e) => tracing::debug!(error = %e.message, "cannot sweep admission slots"),
                    }
                }
            }
        }
    }
}

/// On the Raft leader, every `catalog.cleanup-interval`: remove the files of dropped tables
/// and of writes that never committed.
async fn clean_warehouse(node: std::sync::Arc<Coordinator>, stopped: watch::Receiver<bool>) {
    let stop = wait_for(stopped);
    tokio::pin!(stop);
    let mut ticks =
        tokio::time::interval(node.config.cleanup_interval.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticks.tick() => {
                if node.store.current_leader() != Some(node.id()) {
                    continue;
                }
                match catalog::cleanup::sweep(&node.store, &node.warehouse).await {
                    Ok(swept) if swept != catalog::cleanup::Swept::default() => {
                        tracing::info!(dropped_tables = swept.dropped_tables, write_dirs = swept.write_dirs, "warehouse cleaned");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot clean the warehouse"),
                }
                let spools = query::spooled::sweep(&node).await;
                if spools > 0 {
                    tracing::info!(spools, "result spools of ended queries removed");
                }
            }
        }
    }
}

/// Failpoints named in `SHOAL_FAILPOINTS` (`name=action;name=action`, the `fail` crate's
/// actions), in builds with the `failpoints` feature; tests use them to hit moments a kill
/// cannot.
fn failpoints_from_env() {
    #[cfg(feature = "failpoints")]
    if let Ok(spec) = std::env::var("SHOAL_FAILPOINTS") {
        for entry in spec.split(';').filter(|e| !e.trim().is_empty()) {
            if let Some((name, action)) = entry.split_once('=') {
                if let Err(e) = fail::cfg(name.trim(), action.trim()) {
                    tracing::warn!(failpoint = %name, error = %e, "bad failpoint");
                } else {
                    tracing::warn!(failpoint = %name, action = %action, "failpoint set");
                }
            }
        }
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}
