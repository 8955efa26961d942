//! The coordinator's internal routes (bincode, cluster secret): cluster information and
//! admission of joining coordinators, beside the state store's own routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use shoal_state_store::server::{answer, decode, decode_json, failure, require_secret};

use shoal_proto::cluster::{WorkerHeartbeat, WORKER_HEARTBEAT_PATH};
use shoal_proto::{ErrorCode, ServiceError};

use crate::node::{paths, Coordinator, JoinRequest};
use shoal_engine::drive::{paths as query_paths, PageRequest, ProgressReport};

/// The whole internal listener: the state store's routes and the coordinator's.
pub fn router(node: Arc<Coordinator>) -> Router {
    let own = Router::new()
        .route(paths::CLUSTER_INFO, post(cluster_info))
        .route(paths::JOIN, post(join))
        .route(paths::ADMITTED, post(admitted))
        .route(query_paths::PAGE, post(query_page))
        .route(query_paths::CANCEL, post(query_cancel))
        .route(query_paths::DRIVING, post(query_driving))
        .route(query_paths::PROGRESS, post(query_progress))
        .route(WORKER_HEARTBEAT_PATH, post(worker_heartbeat))
        .layer(axum::middleware::from_fn_with_state(
            node.config.secret.clone(),
            require_secret,
        ))
        .with_state(node.clone());
    node.store.router().merge(own)
}

async fn cluster_info(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    if let Err(e) = decode::<()>(&body) {
        return failure(&e);
    }
    match node.cluster_info_with_registry().await {
        Ok(info) => answer(&info),
        Err(e) => failure(&e.to_service_error()),
    }
}

async fn join(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let request: JoinRequest = match decode(&body) {
        Ok(request) => request,
        Err(e) => return failure(&e),
    };
    match node.admit(&request).await {
        Ok(()) => answer(&()),
        Err(e) => failure(&e.to_service_error()),
    }
}

async fn admitted(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    if let Err(e) = decode::<()>(&body) {
        return failure(&e);
    }
    node.store.accept_raft();
    answer(&())
}

async fn query_page(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let request: PageRequest = match decode(&body) {
        Ok(request) => request,
        Err(e) => return failure(&e),
    };
    match node.queries.local_page(&request).await {
        Ok(reply) => match serde_json::to_string(&reply) {
            Ok(json) => answer(&json),
            Err(e) => failure(&ServiceError::new(ErrorCode::Internal, e.to_string())),
        },
        Err(e) => failure(&ServiceError::new(ErrorCode::NotFound, e.message)),
    }
}

async fn query_driving(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let ids: Vec<String> = match decode(&body) {
        Ok(ids) => ids,
        Err(e) => return failure(&e),
    };
    answer(&node.queries.attempts(&ids))
}

async fn query_cancel(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let id: String = match decode(&body) {
        Ok(id) => id,
        Err(e) => return failure(&e),
    };
    answer(&node.queries.cancel_local(&id))
}

async fn query_progress(State(node): State<Arc<Coordinator>>, body: Bytes) -> Response {
    let report: ProgressReport = match decode_json(&body) {
        Ok(report) => report,
        Err(e) => return failure(&e),
    };
    match crate::query::recovery::on_report(&node, &report).await {
        Ok(()) => answer(&()),
        Err(e) => failure(&e.to_service_error()),
    }
}

async fn worker_heartbeat(
    State(node): State<Arc<Coordinator>>,
    axum::Json(heartbeat): axum::Json<WorkerHeartbeat>,
) -> Response {
    node.workers.heard(heartbeat);
    axum::http::StatusCode::NO_CONTENT.into_response()
}
