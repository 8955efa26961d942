//! Internal RPC client (hyper behind a tower timeout, bincode bodies, the cluster secret on
//! every request) and the openraft network built on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::{ErrorCode, ServiceError, CLUSTER_SECRET_HEADER};
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::codec;
use crate::types::{NodeId, TypeConfig};

/// Paths of the internal endpoints.
pub mod paths {
    pub const APPEND: &str = "/raft/v1/append";
    pub const VOTE: &str = "/raft/v1/vote";
    pub const SNAPSHOT: &str = "/raft/v1/snapshot";
    pub const WRITE: &str = "/store/v1/write";
    pub const READ_INDEX: &str = "/store/v1/read-index";
    pub const ADMIN: &str = "/store/v1/admin";
    pub const STATUS: &str = "/store/v1/status";
    pub const ELECTION: &str = "/store/v1/election";
}

/// Why an RPC failed, as far as the caller can tell.
#[derive(Debug, thiserror::Error)]
pub enum RpcFailure {
    /// No connection could be made: the request never reached the target.
    #[error("not sent to {target}: {reason}")]
    NotSent { target: String, reason: String },
    /// The request may have reached the target, but no valid answer came back.
    #[error("no answer from {target}: {reason}")]
    NoAnswer { target: String, reason: String },
    /// The target refused the cluster secret.
    #[error("{target} refused the cluster secret")]
    Unauthorized { target: String },
    /// The target answered with an error.
    #[error("{0}")]
    Remote(ServiceError),
}

/// HTTP client for internal RPC. Clones share connections and contact times.
#[derive(Clone)]
pub struct RpcClient {
    http: Client<HttpConnector, Full<Bytes>>,
    secret: Arc<str>,
    last_contact: Arc<Mutex<HashMap<NodeId, Instant>>>,
    /// While set, Raft RPC from this member is not sent (used to hand leadership over).
    fenced: Arc<AtomicBool>,
}

impl RpcClient {
    pub fn new(secret: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        RpcClient {
            http,
            secret: Arc::from(secret),
            last_contact: Arc::default(),
            fenced: Arc::default(),
        }
    }

    /// When this node last got an answer from `node`.
    pub fn last_contact(&self, node: NodeId) -> Option<Instant> {
        self.last_contact.lock().ok()?.get(&node).copied()
    }

    pub(crate) fn fence(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::SeqCst);
    }

    fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    fn touch(&self, node: NodeId) {
        if let Ok(mut contacts) = self.last_contact.lock() {
            contacts.insert(node, Instant::now());
        }
    }

    /// POST `request` to `base_url + path` and decode the answer.
    pub async fn call<Req, Resp>(
        &self,
        base_url: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcFailure>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let target = base_url.to_string();
        let body = codec::encode(request).map_err(|e| RpcFailure::NotSent {
            target: target.clone(),
            reason: format!("cannot encode request: {e}"),
        })?;
        let http_request = http::Request::post(format!("{}{path}", base_url.trim_end_matches('/')))
            .header(CLUSTER_SECRET_HEADER, &*self.secret)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| RpcFailure::NotSent {
                target: target.clone(),
                reason: format!("bad request: {e}"),
            })?;
        let http = self.http.clone();
        let service = ServiceBuilder::new()
            .timeout(timeout)
            .service_fn(move |req: http::Request<Full<Bytes>>| exchange(http.clone(), req));
        let (status, body) = service
            .oneshot(http_request)
            .await
            .map_err(|e| classify(&target, e))?;
        decode_answer(&target, status, &body)
    }
}

/// Send one request and read the whole answer.
async fn exchange(
    http: Client<HttpConnector, Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), BoxError> {
    let response = match http.request(request).await {
        Ok(response) => response,
        Err(e) => return Err(Box::new(e) as BoxError),
    };
    let status = response.status();
    match response.into_body().collect().await {
        Ok(body) => Ok((status, body.to_bytes())),
        Err(e) => Err(Box::new(e) as BoxError),
    }
}

fn classify(target: &str, error: BoxError) -> RpcFailure {
    let target = target.to_string();
    if let Some(client_error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
        if client_error.is_connect() {
            return RpcFailure::NotSent {
                target,
                reason: client_error.to_string(),
            };
        }
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return RpcFailure::NoAnswer {
            target,
            reason: "timed out".to_string(),
        };
    }
    RpcFailure::NoAnswer {
        target,
        reason: error.to_string(),
    }
}

fn decode_answer<Resp: DeserializeOwned>(
    target: &str,
    status: http::StatusCode,
    body: &[u8],
) -> Result<Resp, RpcFailure> {
    let bad = |reason: String| RpcFailure::NoAnswer {
        target: target.to_string(),
        reason,
    };
    if status == http::StatusCode::OK {
        return codec::decode(body).map_err(|e| bad(format!("undecodable answer: {e}")));
    }
    if status == http::StatusCode::UNAUTHORIZED {
        return Err(RpcFailure::Unauthorized {
            target: target.to_string(),
        });
    }
    match codec::decode::<ServiceError>(body) {
        Ok(error) => Err(RpcFailure::Remote(error)),
        Err(_) => Err(RpcFailure::Remote(ServiceError::new(
            ErrorCode::Internal,
            format!(
                "{target} answered {status}: {}",
                String::from_utf8_lossy(body)
            ),
        ))),
    }
}

/// Creates one [`Network`] per Raft peer.
#[derive(Clone)]
pub struct NetworkFactory {
    client: RpcClient,
}

impl NetworkFactory {
    pub fn new(client: RpcClient) -> Self {
        NetworkFactory { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Network {
            client: self.client.clone(),
            target,
            url: node.addr.clone(),
        }
    }
}

/// Raft RPC to one peer.
pub struct Network {
    client: RpcClient,
    target: NodeId,
    url: String,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl Network {
    async fn send<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.client.is_fenced() {
            let failure = RpcFailure::NotSent {
                target: self.url.clone(),
                reason: "replication paused for a leadership transfer".into(),
            };
            return Err(RPCError::Unreachable(Unreachable::new(&failure)));
        }
        let answer: Result<Result<Resp, E>, RpcFailure> = self
            .client
            .call(&self.url, path, request, option.soft_ttl())
            .await;
        match answer {
            Ok(Ok(response)) => {
                self.client.touch(self.target);
                Ok(response)
            }
            Ok(Err(remote)) => {
                self.client.touch(self.target);
                Err(RPCError::RemoteError(RemoteError::new(self.target, remote)))
            }
            Err(failure @ RpcFailure::NotSent { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&failure)))
            }
            Err(failure) => {
                if matches!(failure, RpcFailure::Unauthorized { .. }) {
                    tracing::warn!(target_node = self.target, "peer refused the cluster secret");
                }
                Err(RPCError::Network(NetworkError::new(&failure)))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.send(paths::APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.send(paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.send(paths::VOTE, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
