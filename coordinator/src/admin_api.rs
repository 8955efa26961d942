//! The client listener's operational routes: `/v1/info` for anyone, and the admin API behind
//! the cluster secret (`haadmin` speaks it): HA state, active/backup, leadership,
//! membership, every coordinator's synchronisation status, and the key-value API.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shoal_proto::{ErrorCode, ServiceError};
use shoal_state_store::server::carries_secret;

use crate::error::CoordinatorError;
use crate::node::{Coordinator, JoinRequest};
use crate::registry::{self, Mode};
use crate::sync_status;

/// Routes of the client listener that are not the SQL protocol.
pub fn router(node: Arc<Coordinator>) -> Router {
    let admin = Router::new()
        .route("/v1/admin/state", get(get_state).post(set_state))
        .route("/v1/admin/leader", post(transfer_leader))
        .route(
            "/v1/admin/coordinators",
            get(coordinators).post(add_coordinator),
        )
        .route("/v1/admin/coordinators/{id}", delete(remove_coordinator));
    let admin = admin
        .with_state(node.clone())
        .merge(crate::kv_api::router(node.clone()))
        .layer(axum::middleware::from_fn_with_state(
            node.config.secret.clone(),
            require_admin_secret,
        ));
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/health/live", get(|| async { "ok" }))
        .route("/v1/health/ready", get(ready))
        .route("/metrics", get(crate::metrics::handler))
        .with_state(node)
        .merge(admin)
}

/// A JSON error body: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ServiceError,
}

fn error_response(error: ServiceError) -> Response {
    let status =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody { error })).into_response()
}

impl IntoResponse for CoordinatorError {
    fn into_response(self) -> Response {
        error_response(self.to_service_error())
    }
}

async fn require_admin_secret(
    State(secret): State<String>,
    request: Request,
    next: Next,
) -> Response {
    if carries_secret(&request, &secret) {
        return next.run(request).await;
    }
    error_response(ServiceError::new(
        ErrorCode::Unauthorized,
        "the admin API needs the cluster secret",
    ))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeVersion {
    pub version: String,
}

/// `GET /v1/info`, shaped like Trino's.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub node_version: NodeVersion,
    pub environment: String,
    pub coordinator: bool,
    pub starting: bool,
    pub uptime: String,
    pub node_id: u64,
}

async fn info(State(node): State<Arc<Coordinator>>) -> Json<ServerInfo> {
    let uptime = std::time::Duration::from_secs(node.started.elapsed().as_secs());
    Json(ServerInfo {
        node_version: NodeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        environment: node.config.cluster.clone(),
        coordinator: true,
        starting: !node.joined(),
        uptime: humantime::format_duration(uptime).to_string(),
        node_id: node.id(),
    })
}

/// Ready for clients: a member of the cluster whose state store has a leader and which takes
/// new queries (not in backup mode). 503 with the reason otherwise.
async fn ready(State(node): State<Arc<Coordinator>>) -> Response {
    use axum::http::StatusCode;
    if !node.joined() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not joined to the cluster yet",
        )
            .into_response();
    }
    match node.ha_state().await {
        Ok(state) if state.leader.is_none() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store has no leader",
        )
            .into_response(),
        Ok(state) if state.state == crate::registry::Mode::Backup => {
            (StatusCode::SERVICE_UNAVAILABLE, "in backup mode").into_response()
        }
        Ok(_) => "ready".into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_state(State(node): State<Arc<Coordinator>>) -> Response {
    match node.ha_state().await {
        Ok(state) => Json(state).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SetState {
    pub state: Mode,
}

async fn set_state(
    State(node): State<Arc<Coordinator>>,
    Json(request): Json<SetState>,
) -> Response {
    if let Err(e) = registry::set_mode(&node.store, node.id(), request.state).await {
        return e.into_response();
    }
    tracing::info!(state = request.state.as_str(), "coordinator state changed");
    get_state(State(node)).await
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TransferLeader {
    pub to: u64,
}

async fn transfer_leader(
    State(node): State<Arc<Coordinator>>,
    Json(request): Json<TransferLeader>,
) -> Response {
    match node.store.transfer_leader(request.to).await {
        Ok(()) => get_state(State(node)).await,
        Err(e) => CoordinatorError::from(e).into_response(),
    }
}

async fn coordinators(State(node): State<Arc<Coordinator>>) -> Response {
    match sync_status::collect(&node).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn add_coordinator(
    State(node): State<Arc<Coordinator>>,
    Json(request): Json<JoinRequest>,
) -> Response {
    if request.id == 0 || request.internal_url.is_empty() {
        return CoordinatorError::InvalidArgument("id and internal_url are required".into())
            .into_response();
    }
    match node.admit(&request).await {
        Ok(()) => coordinators(State(node)).await,
        Err(e) => e.into_response(),
    }
}

async fn remove_coordinator(State(node): State<Arc<Coordinator>>, Path(id): Path<u64>) -> Response {
    if let Err(e) = node.store.remove_member(id).await {
        return CoordinatorError::from(e).into_response();
    }
    if let Err(e) = registry::remove(&node.store, id).await {
        return e.into_response();
    }
    tracing::info!(id, "coordinator removed from the cluster");
    coordinators(State(node)).await
}
