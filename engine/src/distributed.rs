//! Distributed execution with datafusion-distributed: which workers a query's stages may run
//! on, and gRPC channels to them that carry the cluster secret.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion_distributed::grpc::{
    create_worker_client, BoxCloneSyncChannel, DefaultChannelResolver,
};
use datafusion_distributed::{
    ChannelResolver, DistributedExt, SessionStateBuilderExt, Worker, WorkerChannel,
    WorkerQueryContext, WorkerResolver,
};
use http::{HeaderMap, HeaderValue};
use shoal_proto::CLUSTER_SECRET_HEADER;

use crate::provider::ObjectStores;
use url::Url;

/// The workers a query was given when it was scheduled.
#[derive(Debug, Clone)]
pub struct ScheduledWorkers(Vec<Url>);

impl ScheduledWorkers {
    /// The workers at `urls`; unparsable URLs are an error.
    pub fn parse(urls: &[String]) -> Result<Self, DataFusionError> {
        urls.iter()
            .map(|u| {
                Url::parse(u)
                    .map_err(|e| DataFusionError::Configuration(format!("bad worker URL {u}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ScheduledWorkers)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl WorkerResolver for ScheduledWorkers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
    }
}

/// gRPC channels to workers, one per worker and reused across queries, each request
/// carrying the cluster secret.
#[derive(Clone)]
pub struct SecretChannels {
    channels: DefaultChannelResolver,
    secret: HeaderValue,
}

impl SecretChannels {
    pub fn new(secret: &str) -> Result<Self, DataFusionError> {
        let secret = HeaderValue::from_str(secret).map_err(|e| {
            DataFusionError::Configuration(format!("the cluster secret is not a header value: {e}"))
        })?;
        Ok(SecretChannels {
            channels: DefaultChannelResolver::default(),
            secret,
        })
    }
}

#[async_trait]
impl ChannelResolver for SecretChannels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> Result<Box<dyn WorkerChannel>, DataFusionError> {
        let channel = self.channels.get_channel(url).await.map_err(|e| {
            DataFusionError::External(Box::new(crate::classify::WorkerUnreachable {
                url: url.to_string(),
                reason: e.to_string(),
            }))
        })?;
        let secret = self.secret.clone();
        let with_secret = tower::ServiceBuilder::new()
            .map_request(move |mut request: http::Request<tonic::body::Body>| {
                request
                    .headers_mut()
                    .insert(CLUSTER_SECRET_HEADER, secret.clone());
                request
            })
            .service(channel);
        Ok(create_worker_client(BoxCloneSyncChannel::new(with_secret)))
    }
}

/// How a query's stages spread over workers.
#[derive(Clone)]
pub struct Distribution {
    pub workers: ScheduledWorkers,
    pub channels: SecretChannels,
    /// Parquet bytes one task scans; a larger scan is split over more tasks and workers.
    pub scan_bytes_per_task: usize,
}

/// The header that carries a query's memory limit (`query_max_memory_per_node`, in bytes) to
/// the workers that run its stages.
const MAX_MEMORY_HEADER: &str = "x-shoal-query-max-memory";

/// Make `builder` plan queries into stages over the workers of `distribution`; each stage's
/// task may hold at most `max_memory_bytes` on its worker.
pub fn distribute(
    builder: SessionStateBuilder,
    distribution: Distribution,
    max_memory_bytes: Option<u64>,
) -> Result<SessionStateBuilder, DataFusionError> {
    let builder = builder
        .with_distributed_worker_resolver(distribution.workers)
        .with_distributed_channel_resolver(distribution.channels)
        .with_distributed_planner()
        .with_distributed_file_scan_config_bytes_per_partition(
            distribution.scan_bytes_per_task.max(1),
        )?;
    match max_memory_bytes {
        Some(bytes) => {
            let mut headers = HeaderMap::new();
            headers.insert(MAX_MEMORY_HEADER, HeaderValue::from(bytes));
            builder.with_distributed_passthrough_headers(headers)
        }
        None => Ok(builder),
    }
}

/// A stage's memory limit as its request carries it; a value that is not a number is none.
fn memory_limit(headers: &HeaderMap) -> Option<(usize, HeaderMap)> {
    let value = headers.get(MAX_MEMORY_HEADER)?;
    let bytes: u64 = value.to_str().ok()?.parse().ok()?;
    let mut passed_on = HeaderMap::new();
    passed_on.insert(MAX_MEMORY_HEADER, value.clone());
    Some((usize::try_from(bytes).unwrap_or(usize::MAX), passed_on))
}

/// The datafusion-distributed worker service, talking to other workers through `channels` and
/// reading tables through `stores`.
pub fn worker_service(channels: SecretChannels, stores: ObjectStores) -> Worker {
    let channels = Arc::new(channels);
    Worker::from_session_builder(move |context: WorkerQueryContext| {
        let channels = channels.as_ref().clone();
        let stores = stores.clone();
        async move {
            let mut builder = context.builder.with_distributed_channel_resolver(channels);
            let base = builder.runtime_env().clone().unwrap_or_default();
            let mut runtime =
                RuntimeEnvBuilder::from_runtime_env(&base).with_object_store_registry(stores);
            // The query's memory limit holds for each of its tasks here, and for the stages
            // this one reads from other workers.
            if let Some((bytes, passed_on)) = memory_limit(&context.headers) {
                runtime = runtime.with_memory_limit(bytes, 1.0);
                builder = builder.with_distributed_passthrough_headers(passed_on)?;
            }
            builder = builder.with_runtime_env(Arc::new(runtime.build()?));
            let mut state = builder.build();
            // Stages may call Trino's functions that run kernels of their own.
            for function in crate::functions::kernels() {
                state.register_udf(Arc::new(function))?;
            }
            for function in crate::functions::aggregate_kernels() {
                state.register_udaf(Arc::new(function))?;
            }
            for function in crate::functions::higher_order_kernels() {
                state.register_higher_order_function(Arc::new(function))?;
            }
            Ok(state)
        }
    })
}
