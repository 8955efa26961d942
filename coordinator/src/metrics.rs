//! `/metrics` in the Prometheus text format: queries by state, the latency of queries that
//! ended here, the Raft term, leader changes, applied index and lag per follower, live workers
//! and the admission queue.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::node::Coordinator;
use crate::query::admission;
use crate::query::record::{self, QueryState};

/// Upper bounds (seconds) of the query latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative; summed when written).
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What this coordinator counts itself; the rest is read when scraped.
#[derive(Default)]
pub struct Metrics {
    latency: Mutex<Histogram>,
    leader_changes: AtomicU64,
    last_leader: Mutex<Option<u64>>,
}

impl Metrics {
    /// A query whose end this coordinator recorded took `seconds`.
    pub fn observe_query(&self, seconds: f64) {
        let Ok(mut histogram) = self.latency.lock() else {
            return;
        };
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[bucket] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The leader as this coordinator sees it now; a different one than last time counts as a
    /// change.
    pub fn observe_leader(&self, leader: Option<u64>) {
        let Ok(mut last) = self.last_leader.lock() else {
            return;
        };
        if leader.is_some() && *last != leader {
            if last.is_some() {
                self.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
            *last = leader;
        }
    }

    fn write_latency(&self, out: &mut String) {
        let Ok(histogram) = self.latency.lock() else {
            return;
        };
        header(
            out,
            "shoal_query_duration_seconds",
            "histogram",
            "Duration of queries whose end this coordinator recorded.",
        );
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "shoal_query_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "shoal_query_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(out, "shoal_query_duration_seconds_sum {}", histogram.sum);
        let _ = writeln!(
            out,
            "shoal_query_duration_seconds_count {}",
            histogram.count
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// The whole exposition.
pub async fn render(node: &Coordinator) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "shoal_queries",
        "gauge",
        "Queries in the cluster's history by state.",
    );
    let records = record::list(&node.store).await.unwrap_or_default();
    for state in [
        QueryState::Queued,
        QueryState::Dispatching,
        QueryState::Running,
        QueryState::Finished,
        QueryState::Failed,
    ] {
        let count = records.iter().filter(|r| r.state == state).count();
        let _ = writeln!(out, "shoal_queries{{state=\"{}\"}} {count}", state.as_str());
    }
    node.metrics.write_latency(&mut out);

    let status = node.store.status().await;
    node.metrics.observe_leader(status.leader);
    gauge(
        &mut out,
        "shoal_raft_term",
        "The Raft term this coordinator is in.",
        status.term,
    );
    gauge(
        &mut out,
        "shoal_raft_is_leader",
        "Whether this coordinator is the Raft leader (1) or not (0).",
        u8::from(status.leader == Some(node.id())),
    );
    header(
        &mut out,
        "shoal_raft_leader_changes_total",
        "counter",
        "Leader changes this coordinator has seen since it started.",
    );
    let _ = writeln!(
        out,
        "shoal_raft_leader_changes_total {}",
        node.metrics.leader_changes.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "shoal_state_store_writes_total",
        "counter",
        "Transactions this coordinator wrote to the state store since it started (several may share one Raft entry).",
    );
    let _ = writeln!(
        out,
        "shoal_state_store_writes_total {}",
        node.store.writes()
    );
    let me = status.members.iter().find(|m| m.id == node.id());
    gauge(
        &mut out,
        "shoal_raft_applied_index",
        "The last log index this coordinator applied.",
        me.and_then(|m| m.applied_index).unwrap_or(0),
    );
    header(
        &mut out,
        "shoal_raft_follower_lag",
        "gauge",
        "Log entries each member is behind the leader (known on the leader).",
    );
    for member in &status.members {
        if let Some(lag) = member.lag {
            let _ = writeln!(
                out,
                "shoal_raft_follower_lag{{node_id=\"{}\"}} {lag}",
                member.id
            );
        }
    }
    gauge(
        &mut out,
        "shoal_workers",
        "Live workers as this coordinator hears them.",
        node.workers.live().len(),
    );
    let (running, queued) = admission::counts(&node.store).await;
    gauge(
        &mut out,
        "shoal_admission_running",
        "Queries holding an admission slot in the cluster.",
        running,
    );
    gauge(
        &mut out,
        "shoal_admission_queued",
        "Queries waiting for an admission slot in the cluster.",
        queued,
    );
    out
}

pub async fn handler(State(node): State<Arc<Coordinator>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&node).await,
    )
}
