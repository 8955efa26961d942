//! The web page every coordinator serves at `/`: coordinators with their Raft role and
//! synchronisation state, the leader, workers, and running and recent queries, refreshed by the
//! page itself from `/ui/api/cluster`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::node::Coordinator;
use crate::query::record;
use crate::sync_status;

/// How many queries the page lists (running ones first, then the newest).
const LISTED_QUERIES: usize = 100;

pub fn router(node: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("web/index.html")) }))
        .route("/ui/api/cluster", get(cluster))
        .with_state(node)
}

/// The cluster's state for the page. With client authentication on, the signed-in user (set
/// in `X-Trino-User` by the authentication layer) sees only their own queries unless an
/// admin; without it the page is the operators' view of every query.
async fn cluster(State(node): State<Arc<Coordinator>>, headers: HeaderMap) -> Response {
    let coordinators = match sync_status::collect(&node).await {
        Ok(coordinators) => coordinators,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let status = node.store.status().await;
    let workers: Vec<_> = node
        .workers
        .live()
        .into_iter()
        .map(|w| {
            json!({
                "id": w.heartbeat.id,
                "url": w.heartbeat.internal_url,
                "cores": w.heartbeat.cores,
                "memory_bytes": w.heartbeat.memory_bytes,
                "running_queries": w.heartbeat.running_queries,
            })
        })
        .collect();
    let mut records = record::list(&node.store).await.unwrap_or_default();
    let viewer = headers.get("x-trino-user").and_then(|v| v.to_str().ok());
    if let Some(viewer) = viewer {
        records.retain(|r| node.may_view_query(viewer, &r.user));
    }
    records.sort_by(|a, b| {
        (a.state.is_done(), std::cmp::Reverse(a.created_ms))
            .cmp(&(b.state.is_done(), std::cmp::Reverse(b.created_ms)))
    });
    let now = crate::query::record::now_ms();
    let queries: Vec<_> = records
        .iter()
        .take(LISTED_QUERIES)
        .map(|r| {
            json!({
                "id": r.id,
                "state": r.state.as_str(),
                "user": r.user,
                "query": r.sql,
                "coordinator": r.coordinator,
                "driver": (!r.driver_url.is_empty()).then_some(&r.driver_url),
                "rows": r.rows,
                "elapsed_ms": r.ended_ms.unwrap_or(now).saturating_sub(r.created_ms),
            })
        })
        .collect();
    Json(json!({
        "node_id": node.id(),
        "environment": node.config.cluster,
        "leader": status.leader,
        "coordinators": coordinators,
        "workers": workers,
        "queries": queries,
    }))
    .into_response()
}
