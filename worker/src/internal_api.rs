//! The worker's internal listener: its status, the query driver routes (bincode, as on
//! coordinators) and datafusion-distributed's gRPC worker service, all behind the cluster
//! secret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use shoal_engine::distributed::{worker_service, SecretChannels};
use shoal_engine::drive::{paths, DriveRequest, PageRequest};
use shoal_engine::provider::ObjectStores;
use shoal_proto::cluster::WorkerHeartbeat;
use shoal_proto::{ErrorCode, ServiceError};
use shoal_state_store::server::{answer, decode, decode_json, failure, require_secret};

use crate::drivers::Drivers;

pub fn router(
    secret: &str,
    status: WorkerHeartbeat,
    drivers: Arc<Drivers>,
    channels: SecretChannels,
    stores: ObjectStores,
) -> Router {
    let stages = tonic::service::Routes::new(worker_service(channels, stores).into_worker_server())
        .prepare()
        .into_axum_router();
    let status = Arc::new(status);
    Router::new()
        .route(
            "/worker/v1/status",
            get({
                let drivers = drivers.clone();
                move || async move {
                    Json(WorkerHeartbeat {
                        running_queries: drivers.running(),
                        ..status.as_ref().clone()
                    })
                }
            }),
        )
        .route(paths::DRIVE, post(drive))
        .route(paths::PAGE, post(page))
        .route(paths::CANCEL, post(cancel))
        .route(paths::DRIVING, post(driving))
        .with_state(drivers)
        .merge(stages)
        .layer(axum::middleware::from_fn_with_state(
            secret.to_string(),
            require_secret,
        ))
        // For liveness and readiness probes, which carry no secret; it tells nothing.
        .route("/v1/health", get(|| async { "ok" }))
}

async fn drive(State(drivers): State<Arc<Drivers>>, body: Bytes) -> Response {
    let request: DriveRequest = match decode_json(&body) {
        Ok(request) => request,
        Err(e) => return failure(&e),
    };
    drivers.drive(request);
    answer(&())
}

async fn page(State(drivers): State<Arc<Drivers>>, body: Bytes) -> Response {
    let request: PageRequest = match decode(&body) {
        Ok(request) => request,
        Err(e) => return failure(&e),
    };
    match drivers.page(&request).await {
        Some(reply) => match serde_json::to_string(&reply) {
            Ok(json) => answer(&json),
            Err(e) => failure(&ServiceError::new(ErrorCode::Internal, e.to_string())),
        },
        None => failure(&ServiceError::new(
            ErrorCode::NotFound,
            format!("query {} has no results here", request.query_id),
        )),
    }
}

async fn cancel(State(drivers): State<Arc<Drivers>>, body: Bytes) -> Response {
    let id: String = match decode(&body) {
        Ok(id) => id,
        Err(e) => return failure(&e),
    };
    answer(&drivers.cancel(&id))
}

async fn driving(State(drivers): State<Arc<Drivers>>, body: Bytes) -> Response {
    let ids: Vec<String> = match decode(&body) {
        Ok(ids) => ids,
        Err(e) => return failure(&e),
    };
    answer(&drivers.attempts(&ids))
}
