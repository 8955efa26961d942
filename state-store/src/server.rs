//! The member's internal HTTP endpoints: Raft RPC, forwarded writes and read-index requests,
//! membership administration and status; every request must carry the cluster secret.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::{ErrorCode, ServiceError, CLUSTER_SECRET_HEADER};

use crate::codec;
use crate::error::StoreError;
use crate::membership;
use crate::network::paths;
use crate::node::StateStore;
use crate::rpc::{AdminRequest, ElectionControl, WriteReply};
use crate::types::{Command, NodeId, TypeConfig};

/// Serve the member's internal routes on `listener` until `shutdown` completes.
pub async fn serve(
    store: StateStore,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(store).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

pub(crate) fn router(store: StateStore) -> Router {
    let secret = store.config().cluster_secret.clone();
    // Snapshots arrive in pieces well below this, however large they are.
    let body_limit = usize::try_from(store.config().max_encoded_len).unwrap_or(usize::MAX);
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::WRITE, post(write))
        .route(paths::READ_INDEX, post(read_index))
        .route(paths::ADMIN, post(admin))
        .route(paths::STATUS, post(status))
        .route(paths::ELECTION, post(election))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(secret, require_secret))
        .with_state(store)
}

pub use shoal_proto::same_secret;

/// Whether `request` carries the cluster secret; a refusal is logged with its path and peer.
pub fn carries_secret(request: &Request, secret: &str) -> bool {
    let given = request
        .headers()
        .get(CLUSTER_SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if same_secret(given, secret.as_bytes()) {
        return true;
    }
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    tracing::warn!(
        path = %request.uri().path(),
        %remote,
        secret_present = !given.is_empty(),
        "refused request without a valid cluster secret"
    );
    false
}

/// Middleware refusing requests without the cluster secret (use with
/// `axum::middleware::from_fn_with_state(secret, require_secret)`).
pub async fn require_secret(
    State(secret): State<String>,
    request: Request,
    next: Next,
) -> Response {
    if carries_secret(&request, &secret) {
        return next.run(request).await;
    }
    failure(&ServiceError::new(
        ErrorCode::Unauthorized,
        "the cluster secret is missing or wrong",
    ))
}

pub fn answer<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => failure(&ServiceError::new(
            ErrorCode::Internal,
            format!("cannot encode answer: {e}"),
        )),
    }
}

pub fn failure(error: &ServiceError) -> Response {
    let status =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = codec::encode(error).unwrap_or_default();
    (status, body).into_response()
}

fn store_failure(error: &StoreError) -> Response {
    failure(&error.to_service_error())
}

pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    codec::decode(body).map_err(|e| {
        ServiceError::new(
            ErrorCode::InvalidArgument,
            format!("undecodable request body: {e}"),
        )
    })
}

/// A request whose body is JSON text inside the bincode envelope (for types bincode cannot
/// carry, such as Arrow schemas or optional fields skipped in JSON).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    let json: String = decode(body)?;
    serde_json::from_str(&json).map_err(|e| {
        ServiceError::new(
            ErrorCode::InvalidArgument,
            format!("undecodable request: {e}"),
        )
    })
}

macro_rules! decoded {
    ($body:expr) => {
        match decode($body) {
            Ok(value) => value,
            Err(error) => return failure(&error),
        }
    };
}

/// The answer to a Raft RPC while this member does not accept them yet.
fn not_accepting(store: &StateStore) -> Option<Response> {
    (!store.accepts_raft()).then(|| {
        failure(&ServiceError::new(
            ErrorCode::Unavailable,
            "this member does not accept raft requests until it is admitted to the cluster",
        ))
    })
}

async fn append(State(store): State<StateStore>, body: Bytes) -> Response {
    if let Some(refused) = not_accepting(&store) {
        return refused;
    }
    let request: AppendEntriesRequest<TypeConfig> = decoded!(&body);
    if crate::failpoints::refuse_append(&request.entries) {
        return failure(&ServiceError::new(
            ErrorCode::Unavailable,
            "failpoint raft-append-refused",
        ));
    }
    answer(&store.raft().append_entries(request).await)
}

async fn vote(State(store): State<StateStore>, body: Bytes) -> Response {
    if let Some(refused) = not_accepting(&store) {
        return refused;
    }
    let request: VoteRequest<NodeId> = decoded!(&body);
    answer(&store.raft().vote(request).await)
}

async fn snapshot(State(store): State<StateStore>, body: Bytes) -> Response {
    if let Some(refused) = not_accepting(&store) {
        return refused;
    }
    let request: InstallSnapshotRequest<TypeConfig> = decoded!(&body);
    answer(&store.raft().install_snapshot(request).await)
}

async fn write(State(store): State<StateStore>, body: Bytes) -> Response {
    let command: Command = decoded!(&body);
    let raft = store.raft();
    match raft.client_write(command).await {
        Ok(response) => answer(&WriteReply::Applied(response.data)),
        Err(openraft::error::RaftError::APIError(
            openraft::error::ClientWriteError::ForwardToLeader(f),
        )) => answer(&WriteReply::NotLeader {
            leader: f.leader_id,
        }),
        Err(e) => store_failure(&crate::forward::raft_error(e)),
    }
}

async fn read_index(State(store): State<StateStore>, body: Bytes) -> Response {
    let () = decoded!(&body);
    let forwarder = store.forwarder();
    match forwarder.local_read_index(forwarder.deadline()).await {
        Ok(reply) => answer(&reply),
        Err(e) => store_failure(&e),
    }
}

async fn admin(State(store): State<StateStore>, body: Bytes) -> Response {
    let request: AdminRequest = decoded!(&body);
    let forwarder = store.forwarder();
    match membership::execute(forwarder, &request, forwarder.deadline()).await {
        Ok(reply) => answer(&reply),
        Err(e) => store_failure(&e),
    }
}

async fn status(State(store): State<StateStore>, body: Bytes) -> Response {
    let () = decoded!(&body);
    answer(&store.local_status())
}

async fn election(State(store): State<StateStore>, body: Bytes) -> Response {
    let control: ElectionControl = decoded!(&body);
    match membership::control_election(store.raft(), control).await {
        Ok(()) => answer(&()),
        Err(e) => store_failure(&e),
    }
}
