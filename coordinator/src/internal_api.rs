//! The coordinator's internal routes (bincode, cluster secret): cluster information and
//! admission of joining coordinators, beside the state store's own routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use shoal_state_store::server::{answer, decode, failure, require_secret};

use crate::node::{paths, Coordinator, JoinRequest};

/// The whole internal listener: the state store's routes and the coordinator's.
pub fn router(node: Arc<Coordinator>) -> Router {
    let own = Router::new()
        .route(paths::CLUSTER_INFO, post(cluster_info))
        .route(paths::JOIN, post(join))
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
    answer(&node.cluster_info())
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
