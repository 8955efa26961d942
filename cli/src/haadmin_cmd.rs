//! `shoal haadmin`: see and steer the HA state of a running cluster through any coordinator's
//! admin API, and format a stopped cluster's seed directory and state store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use shoal_coordinator::node::HaState;
use shoal_coordinator::sync_status::CoordinatorSync;
use shoal_coordinator::CoordinatorConfig;

use crate::http::{AdminClient, HttpFailure};
use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct HaadminArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The cluster secret (else $SHOAL_CLUSTER_SECRET, else the one in --etc).
    #[arg(
        long,
        global = true,
        env = "SHOAL_CLUSTER_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// Trust only the certificate authorities in this PEM file for https:// servers.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: HaCommand,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Client URL of any coordinator, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// Read the cluster secret from this etc directory's config.properties.
    #[arg(long)]
    etc: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum HaCommand {
    /// Active or backup, Raft role, term and leader of one coordinator.
    GetState(Target),
    /// Stop taking new queries (still serving existing ones and voting).
    TransitionToBackup(Target),
    /// Take new queries again.
    TransitionToActive(Target),
    /// Hand the state store's leadership to coordinator ID.
    TransferLeader {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        to: u64,
    },
    /// Add coordinator ID (reachable at its internal URL) as a voter.
    AddCoordinator {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        internal_url: String,
    },
    /// Remove coordinator ID from the cluster.
    RemoveCoordinator {
        #[command(flatten)]
        target: Target,
        id: u64,
    },
    /// Every coordinator's synchronisation status.
    Coordinators(Target),
    /// Wipe the cluster's seed directory and this node's state store; refused while any
    /// coordinator of the cluster is alive.
    Format {
        #[arg(long)]
        etc: PathBuf,
    },
}

pub fn run(args: HaadminArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::runtime(e.into()))?;
    runtime.block_on(execute(args))
}

fn secret_for(args_secret: &Option<String>, target: &Target) -> Result<Option<String>, Failure> {
    if args_secret.is_some() {
        return Ok(args_secret.clone());
    }
    match &target.etc {
        Some(etc) => CoordinatorConfig::load(etc)
            .map(|c| Some(c.secret))
            .map_err(|e| Failure::usage(format!("configuration error: {e}"))),
        None => Ok(None),
    }
}

/// A failed call: a connection problem is a usage-level failure (2), a refusal is 1.
fn call_failure(error: anyhow::Error) -> Failure {
    if error.downcast_ref::<HttpFailure>().is_some() {
        Failure::runtime(error)
    } else {
        Failure::usage(format!("{error:#}"))
    }
}

async fn execute(args: HaadminArgs) -> Result<(), Failure> {
    let json = args.json;
    let client = |target: &Target| -> Result<AdminClient, Failure> {
        AdminClient::new(
            &target.server,
            secret_for(&args.secret, target)?,
            args.ca_file.as_deref(),
        )
        .map_err(|e| Failure::usage(format!("{e:#}")))
    };
    match &args.command {
        HaCommand::GetState(target) => {
            let state: HaState = client(target)?
                .get("/v1/admin/state")
                .await
                .map_err(call_failure)?;
            print_state(&state, json);
        }
        HaCommand::TransitionToBackup(target) | HaCommand::TransitionToActive(target) => {
            let mode = if matches!(args.command, HaCommand::TransitionToBackup(_)) {
                "backup"
            } else {
                "active"
            };
            let state: HaState = client(target)?
                .post("/v1/admin/state", &json!({ "state": mode }))
                .await
                .map_err(call_failure)?;
            print_state(&state, json);
        }
        HaCommand::TransferLeader { target, to } => {
            let state: HaState = client(target)?
                .post("/v1/admin/leader", &json!({ "to": to }))
                .await
                .map_err(call_failure)?;
            if json {
                println!("{}", json!({ "leader": state.leader }));
            } else {
                println!(
                    "leader is now coordinator {}",
                    state.leader.map_or("?".into(), |l| l.to_string())
                );
            }
        }
        HaCommand::AddCoordinator {
            target,
            id,
            internal_url,
        } => {
            let rows: Vec<CoordinatorSync> = client(target)?
                .post(
                    "/v1/admin/coordinators",
                    &json!({ "id": id, "internal_url": internal_url }),
                )
                .await
                .map_err(call_failure)?;
            print_coordinators(&rows, json);
        }
        HaCommand::RemoveCoordinator { target, id } => {
            let rows: Vec<CoordinatorSync> = client(target)?
                .delete(&format!("/v1/admin/coordinators/{id}"))
                .await
                .map_err(call_failure)?;
            print_coordinators(&rows, json);
        }
        HaCommand::Coordinators(target) => {
            let rows: Vec<CoordinatorSync> = client(target)?
                .get("/v1/admin/coordinators")
                .await
                .map_err(call_failure)?;
            print_coordinators(&rows, json);
        }
        HaCommand::Format { etc } => format(etc, json, args.ca_file.as_deref()).await?,
    }
    Ok(())
}

fn print_state(state: &HaState, json: bool) {
    if json {
        println!("{}", serde_json::to_string(state).unwrap_or_default());
        return;
    }
    println!("coordinator {} ({})", state.node_id, state.client_url);
    println!("  state      {}", state.state.as_str());
    println!("  joined     {}", state.joined);
    println!(
        "  raft role  {} (term {})",
        state.raft_role.as_str(),
        state.term
    );
    match (&state.leader, &state.leader_client_url) {
        (Some(leader), Some(url)) => println!("  leader     {leader} ({url})"),
        (Some(leader), None) => println!("  leader     {leader}"),
        _ => println!("  leader     none known"),
    }
}

fn print_coordinators(rows: &[CoordinatorSync], json: bool) {
    if json {
        println!("{}", serde_json::to_string(rows).unwrap_or_default());
        return;
    }
    let or_dash = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "{:<5} {:<10} {:<6} {:<8} {:<6} {:<17} {:<28} {:<25} CLIENT URL",
        "NODE", "ROLE", "TERM", "MATCHED", "LAG", "SUMMARY", "DETAIL", "LAST CONTACT"
    );
    for row in rows {
        println!(
            "{:<5} {:<10} {:<6} {:<8} {:<6} {:<17} {:<28} {:<25} {}",
            row.node_id,
            row.raft_role,
            or_dash(row.term),
            or_dash(row.matched_index),
            or_dash(row.lag),
            row.summary_state,
            row.detail_state,
            row.last_contact.as_deref().unwrap_or("-"),
            row.client_url.as_deref().unwrap_or("-"),
        );
    }
}

/// Refuse while any coordinator of the cluster is alive, then wipe the seeds and the store.
async fn format(etc: &Path, json: bool, ca_file: Option<&Path>) -> Result<(), Failure> {
    let config = CoordinatorConfig::load(etc)
        .map_err(|e| Failure::usage(format!("configuration error: {e}")))?;
    let seed_store = shoal_storage::Storage::open(config.profiles.clone())
        .and_then(|storage| shoal_seed_store::SeedStore::open(config.seed_store.clone(), &storage))
        .map_err(|e| Failure::usage(format!("configuration error: {e}")))?;
    if let Some(alive) = find_live_coordinator(&seed_store, &config, ca_file).await {
        return Err(Failure::runtime(anyhow::anyhow!(
            "refusing to format: coordinator {alive} of cluster {} is alive; stop every coordinator first",
            config.cluster
        )));
    }
    let mut wiped = Vec::new();
    let seeds = seed_store.cluster_dir();
    let removed = seeds
        .delete_all()
        .await
        .with_context(|| format!("cannot remove the seeds under {}", seeds.url()))
        .map_err(Failure::runtime)?;
    if removed > 0 {
        wiped.push(seeds.url());
    }
    let dir = config.state_store_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))
            .map_err(Failure::runtime)?;
        wiped.push(dir.display().to_string());
    }
    if json {
        println!(
            "{}",
            json!({ "formatted": config.cluster, "removed": wiped })
        );
    } else {
        println!("formatted cluster {}", config.cluster);
        for dir in &wiped {
            println!("  removed {dir}");
        }
    }
    Ok(())
}

/// A coordinator whose seed keeps changing, or whose client URL answers, is alive.
async fn find_live_coordinator(
    seed_store: &shoal_seed_store::SeedStore,
    config: &CoordinatorConfig,
    ca_file: Option<&Path>,
) -> Option<String> {
    let mut watcher = shoal_seed_store::SeedWatcher::new(seed_store.clone());
    let first = watcher.scan().await;
    for live in &first {
        let Ok(client) = AdminClient::new(&live.seed.client_url, None, ca_file) else {
            continue;
        };
        let answered = tokio::time::timeout(
            Duration::from_secs(2),
            client.get::<serde_json::Value>("/v1/info"),
        )
        .await;
        if matches!(answered, Ok(Ok(_))) {
            return Some(format!("{} ({})", live.seed.id, live.seed.client_url));
        }
    }
    if first.is_empty() {
        return None;
    }
    // A coordinator that does not answer may still be alive (paused, partitioned): watch its
    // seed for two heartbeats, and stop at the first one seen changing.
    let window = config.seed_store.heartbeat * 2 + Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + window;
    let mut every = tokio::time::interval(config.seed_store.heartbeat / 4);
    while tokio::time::Instant::now() < deadline {
        every.tick().await;
        if let Some(live) = watcher.scan().await.into_iter().find(|live| live.confirmed) {
            return Some(format!("{} ({})", live.seed.id, live.seed.client_url));
        }
    }
    None
}
