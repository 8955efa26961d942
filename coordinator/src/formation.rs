//! Forming and joining the cluster through the seed directory. A coordinator that already
//! belongs to the store (a restart with its data) has nothing to do. Otherwise it asks the
//! live coordinators it finds whether a cluster exists and joins it; if none exists and
//! `state-store.bootstrap-expect` coordinators are live, the one with the smallest id claims
//! the bootstrap (an object created at most once) and initialises the cluster. A claim whose
//! claimant has not been live for three seed heartbeat timeouts (of this coordinator's clock)
//! expires: the smallest live coordinator claims the next generation without it. A claimant
//! reads the newest claim again right before it initialises, so it never initialises with
//! one that expired. A coordinator
//! with an empty store whose id the cluster knows as a voter that ran before (it has a
//! registry record) lost its data directory: it refuses to start rather than rejoin as that
//! voter without the vote it cast.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_seed_store::{BootstrapClaim, ClaimOutcome, LiveSeed, SeedWatcher};
use tokio::sync::watch;

use crate::error::{CoordinatorError, Result};
use crate::node::{paths, ClusterInfo, Coordinator, JoinRequest};
use crate::registry::{self, CoordinatorRecord, Mode};

/// Why a coordinator must not become a member.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Run until this coordinator is a voter of the cluster (or `stop` fires), then register it.
/// An error means it must not join at all: the coordinator stops.
pub async fn run(
    node: Arc<Coordinator>,
    watcher: SeedWatcher,
    mut stop: watch::Receiver<bool>,
) -> std::result::Result<(), Refused> {
    let pause = (node.config.seed_store.heartbeat / 2).max(Duration::from_millis(100));
    let mut formation = Formation {
        watcher,
        claim: None,
    };
    loop {
        match step(&node, &mut formation).await {
            Ok(Step::Voter) => break,
            Ok(Step::NotYet) => {}
            Ok(Step::Refused(refused)) => {
                tracing::error!(reason = %refused, "refusing to join the cluster");
                return Err(refused);
            }
            Err(e) => tracing::warn!(error = %e, "cluster formation step failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    tracing::info!(node_id = node.id(), "coordinator is a voter of the cluster");
    loop {
        let record = CoordinatorRecord {
            id: node.id(),
            client_url: node.client_url.clone(),
            internal_url: node.internal_url.clone(),
            mode: Mode::Active,
            started_at_ms: node.started_at_ms,
        };
        match registry::register(&node.store, record).await {
            Ok(_) => {
                // Slots of this coordinator's earlier starts are nobody's now.
                let limits = crate::query::admission::limits(&node);
                if let Err(e) = crate::query::admission::release_earlier(
                    &node.store,
                    limits,
                    node.id(),
                    node.started_at_ms,
                )
                .await
                {
                    tracing::warn!(error = %e.message, "cannot release the slots of an earlier start");
                }
                break;
            }
            Err(e) => tracing::warn!(error = %e, "cannot register the coordinator; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    node.mark_joined();
    Ok(())
}

enum Step {
    Voter,
    NotYet,
    Refused(Refused),
}

/// What formation keeps between attempts.
struct Formation {
    watcher: SeedWatcher,
    /// The newest bootstrap claim of another coordinator seen, and when its claimant was last
    /// seen live (or the claim first seen).
    claim: Option<(BootstrapClaim, Instant)>,
}

/// One attempt.
async fn step(node: &Arc<Coordinator>, formation: &mut Formation) -> Result<Step> {
    if node.is_voter() {
        node.store.accept_raft();
        return Ok(Step::Voter);
    }
    let live = formation.watcher.scan().await;
    let others: Vec<&LiveSeed> = live.iter().filter(|l| l.seed.id != node.id()).collect();
    if node.cluster_info().initialized {
        node.store.accept_raft();
        // A member that is not (yet) a voter: ask to be admitted.
        return Ok(match join_through(node, &others).await? {
            true => Step::Voter,
            false => Step::NotYet,
        });
    }
    for seed in &others {
        let url = &seed.seed.internal_url;
        let answer: std::result::Result<ClusterInfo, _> = node
            .rpc
            .call(url, paths::CLUSTER_INFO, &(), node.rpc_timeout())
            .await;
        match answer {
            Ok(info) if info.initialized => {
                let id = node.id();
                if info.voters.contains(&id) && info.registered.contains(&id) {
                    return Ok(Step::Refused(Refused(format!(
                        "this coordinator's state store is empty, but the cluster has node {id} \
                         as a voter that ran before: its data directory was lost, and without \
                         the vote it cast it must not rejoin as node {id}; remove it \
                         (shoal haadmin remove-coordinator {id} --server <a coordinator>), \
                         then start it again with an empty data directory to join as a new member"
                    ))));
                }
                // A bootstrap member (a voter that never ran) or a member to be.
                node.store.accept_raft();
                if !info.voters.contains(&id) && !info.learners.contains(&id) {
                    request_join(node, url).await?;
                }
                return Ok(Step::NotYet);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(peer = seed.seed.id, error = %e, "peer did not answer"),
        }
    }
    bootstrap_if_due(node, formation, &others).await?;
    Ok(Step::NotYet)
}

async fn join_through(node: &Arc<Coordinator>, others: &[&LiveSeed]) -> Result<bool> {
    for seed in others {
        if request_join(node, &seed.seed.internal_url).await.is_ok() {
            return Ok(node.is_voter());
        }
    }
    Ok(false)
}

async fn request_join(node: &Arc<Coordinator>, url: &str) -> Result<()> {
    let request = JoinRequest {
        id: node.id(),
        internal_url: node.internal_url.clone(),
    };
    tracing::info!(through = %url, "asking to join the cluster");
    let timeout = node.config.state_store.request_timeout * 2;
    node.rpc
        .call::<_, ()>(url, paths::JOIN, &request, timeout)
        .await
        .map_err(|e| CoordinatorError::Unavailable(format!("join through {url} failed: {e}")))
}

async fn bootstrap_if_due(
    node: &Arc<Coordinator>,
    formation: &mut Formation,
    others: &[&LiveSeed],
) -> Result<()> {
    let seed_store = formation.watcher.store().clone();
    let mut generation = 1;
    if let Some(claim) = seed_store.bootstrap_claim().await? {
        if claim.by == node.id() {
            return initialize(node, claim.members).await;
        }
        let now = Instant::now();
        let claimant_live = others.iter().any(|l| l.seed.id == claim.by);
        let last_live = match &formation.claim {
            Some((seen, at)) if *seen == claim && !claimant_live => *at,
            _ => now,
        };
        formation.claim = Some((claim.clone(), last_live));
        let expiry = node.config.seed_store.claim_expiry();
        if now.duration_since(last_live) < expiry {
            tracing::info!(
                by = claim.by,
                generation = claim.generation,
                "waiting for the coordinator that claimed the bootstrap"
            );
            return Ok(());
        }
        tracing::warn!(
            by = claim.by,
            generation = claim.generation,
            expiry_ms = expiry.as_millis() as u64,
            "the bootstrap claim expired: its claimant has not been live for the expiry"
        );
        generation = claim.generation + 1;
    }
    let mut members: BTreeMap<u64, String> = others
        .iter()
        .filter(|l| l.confirmed)
        .map(|l| (l.seed.id, l.seed.internal_url.clone()))
        .collect();
    members.insert(node.id(), node.internal_url.clone());
    let expect = node.config.state_store.bootstrap_expect;
    if members.len() < expect {
        tracing::info!(
            live = members.len(),
            expect,
            "waiting for coordinators before bootstrap"
        );
        return Ok(());
    }
    let smallest = others.iter().map(|l| l.seed.id).chain([node.id()]).min();
    if smallest != Some(node.id()) {
        return Ok(());
    }
    let claim = BootstrapClaim {
        cluster: node.config.cluster.clone(),
        generation,
        by: node.id(),
        members,
    };
    match seed_store.claim_bootstrap(&claim).await? {
        ClaimOutcome::Won => {
            tracing::info!(generation, "claimed the bootstrap");
            fail::fail_point!("bootstrap-claimed");
            // Initialise only with the claim that stands now: had this one expired while
            // this coordinator stalled, another cluster would form beside the claimed one.
            match seed_store.bootstrap_claim().await? {
                Some(newest) if newest == claim => initialize(node, claim.members).await,
                newest => {
                    tracing::warn!(newer = ?newest.map(|c| (c.generation, c.by)), "a newer bootstrap claim stands; not initialising");
                    Ok(())
                }
            }
        }
        ClaimOutcome::Taken(existing) if existing.by == node.id() => {
            initialize(node, existing.members).await
        }
        ClaimOutcome::Taken(existing) => {
            tracing::info!(
                by = existing.by,
                generation,
                "another coordinator claimed the bootstrap"
            );
            Ok(())
        }
    }
}

async fn initialize(node: &Arc<Coordinator>, members: BTreeMap<u64, String>) -> Result<()> {
    tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "initialising the cluster");
    node.store.initialize(members).await?;
    Ok(())
}
