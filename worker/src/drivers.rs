//! The queries this worker drives: each plans its statement over the live workers with
//! datafusion-distributed, runs the head stage, buffers its pages (memory, then spill files),
//! serves them to coordinators, and reports progress and outcome to any live coordinator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_engine::distributed::{Distribution, ScheduledWorkers, SecretChannels};
use shoal_engine::drive::{paths, DriveRequest, DriveState, PageRequest, ProgressReport};
use shoal_engine::driver::{Driver, Outcome};
use shoal_engine::pages::{BufferLimits, PageReply};
use shoal_engine::provider::ObjectStores;
use shoal_engine::spool::Spool;
use shoal_engine::{errors, provider, Prepared};
use shoal_proto::client::QueryError;
use shoal_state_store::network::RpcClient;

/// How long a page request waits for the page before answering "not yet".
const PAGE_WAIT: Duration = Duration::from_secs(1);
/// How often a running query's progress is reported.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long the final report is retried while no coordinator takes it.
const FINAL_REPORT_PATIENCE: Duration = Duration::from_secs(120);
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of its results a driven query may hold, and where it spills.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    /// Parquet bytes one task of a query driven here scans (see datafusion-distributed).
    pub scan_bytes_per_task: usize,
    pub memory_bytes: u64,
    pub spill_dir: PathBuf,
    pub spill_bytes: u64,
    /// The profiles' stores, where result spools are written.
    pub storage: shoal_storage::Storage,
}

struct Driven {
    driver: Arc<Driver>,
    attempt: u32,
    client_timeout: Duration,
}

/// This worker's drivers, by query id.
pub struct Drivers {
    url: String,
    /// This worker's start time, as its heartbeats carry it.
    incarnation: u64,
    rpc: RpcClient,
    channels: SecretChannels,
    stores: ObjectStores,
    buffers: BufferSettings,
    driven: Mutex<HashMap<String, Driven>>,
}

impl Drivers {
    pub fn new(
        url: String,
        incarnation: u64,
        rpc: RpcClient,
        channels: SecretChannels,
        stores: ObjectStores,
        buffers: BufferSettings,
    ) -> Self {
        Drivers {
            url,
            incarnation,
            rpc,
            channels,
            stores,
            buffers,
            driven: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<Driver>> {
        self.driven.lock().ok()?.get(id).map(|d| d.driver.clone())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut driven) = self.driven.lock() {
            driven.remove(id);
        }
    }

    /// Queries driven here now.
    pub fn running(&self) -> u32 {
        self.driven.lock().map_or(0, |d| d.len() as u32)
    }

    /// Take `request` and start driving it; a query already driven here (a repeated request)
    /// is left as it is.
    pub fn drive(self: &Arc<Self>, request: DriveRequest) {
        let limits = BufferLimits {
            memory_bytes: self.buffers.memory_bytes,
            spill_dir: Some(
                self.buffers
                    .spill_dir
                    .join(format!("{}-{}", request.query_id, request.attempt)),
            ),
            spill_bytes: self.buffers.spill_bytes,
            spool_bytes: self.buffers.spill_bytes,
        };
        let spool = request.spool.as_ref().map(|url| {
            let spool = Spool::new(self.buffers.storage.clone(), url.clone());
            Arc::new(spool.with_encoding(request.encoding))
        });
        let driver = Driver::for_client(limits, spool, request.encoding);
        {
            let Ok(mut driven) = self.driven.lock() else {
                return;
            };
            match driven.get(&request.query_id) {
                Some(current) if current.attempt >= request.attempt => return,
                Some(earlier) => earlier.driver.cancel(),
                None => {}
            }
            driven.insert(
                request.query_id.clone(),
                Driven {
                    driver: driver.clone(),
                    attempt: request.attempt,
                    client_timeout: Duration::from_millis(request.client_timeout_ms),
                },
            );
        }
        tracing::info!(query = %request.query_id, attempt = request.attempt, workers = request.workers.len(), "driving a query");
        let drivers = self.clone();
        tokio::spawn(async move { drivers.run(request, driver).await });
    }

    async fn run(self: Arc<Self>, request: DriveRequest, driver: Arc<Driver>) {
        let reporter = tokio::spawn(
            self.clone()
                .report_while_running(request.clone(), driver.clone()),
        );
        let distribution = ScheduledWorkers::parse(&request.workers)
            .map(|workers| Distribution {
                workers,
                channels: self.channels.clone(),
                scan_bytes_per_task: self.buffers.scan_bytes_per_task,
            })
            .map_err(|e| e.to_string());
        let plan = plan(&request, distribution, &self.stores);
        let deadline = request
            .options
            .deadline(request.submitted_ms, shoal_seed_store::publisher::now_ms());
        let outcome = driver.run_until(plan, &request.sql, deadline).await;
        reporter.abort();
        tracing::info!(query = %request.query_id, rows = outcome.rows, failed = outcome.error.is_some(), elapsed_ms = driver.elapsed().as_millis() as u64, "query done on its driver");
        self.report_outcome(&request, &driver, outcome).await;
    }

    fn report(
        &self,
        request: &DriveRequest,
        driver: &Driver,
        state: DriveState,
        error: Option<QueryError>,
    ) -> ProgressReport {
        let (rows, bytes) = driver.progress();
        ProgressReport {
            query_id: request.query_id.clone(),
            attempt: request.attempt,
            driver_url: self.url.clone(),
            driver_incarnation: self.incarnation,
            state,
            rows,
            bytes,
            pages: driver.pages(),
            elapsed_ms: driver.elapsed().as_millis() as u64,
            error,
            unreachable: Vec::new(),
            spool: driver.complete_spool(),
        }
    }

    async fn report_while_running(self: Arc<Self>, request: DriveRequest, driver: Arc<Driver>) {
        // The first report after a second: a short query reports only its outcome.
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let report = self.report(&request, &driver, DriveState::Running, None);
            if let Err(reason) = self.send(&request.coordinators, &report).await {
                tracing::debug!(query = %request.query_id, %reason, "cannot report progress");
            }
        }
    }

    async fn report_outcome(&self, request: &DriveRequest, driver: &Driver, outcome: Outcome) {
        let state = match &outcome.error {
            None => DriveState::Finished,
            // A node of the query's stages was lost (or another internal failure) before any
            // row left: the coordinators may run the query again.
            Some(error) if errors::is_retryable(error) && !driver.delivered() => DriveState::Lost,
            Some(_) => DriveState::Failed,
        };
        let mut report = self.report(request, driver, state, outcome.error);
        if state == DriveState::Lost {
            report.unreachable = unreachable(&request.workers).await;
        }
        let deadline = tokio::time::Instant::now() + FINAL_REPORT_PATIENCE;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.send(&request.coordinators, &report).await {
                Ok(()) => return,
                Err(reason) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(query = %request.query_id, %reason, "no coordinator took the query's outcome");
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Send `report` to the first coordinator that takes it.
    async fn send(&self, coordinators: &[String], report: &ProgressReport) -> Result<(), String> {
        let json = serde_json::to_string(report).map_err(|e| e.to_string())?;
        let mut last = String::from("no coordinator known");
        for url in coordinators {
            let sent: Result<(), _> = self
                .rpc
                .call(url, paths::PROGRESS, &json, REPORT_TIMEOUT)
                .await;
            match sent {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The page a coordinator asks for.
    pub async fn page(&self, request: &PageRequest) -> Option<PageReply> {
        let driver = self.get(&request.query_id)?;
        let mut reply = driver.page(request.token, PAGE_WAIT).await;
        if reply.error.as_ref().is_some_and(errors::is_retryable) && !driver.delivered() {
            // Lost before any row left: the coordinators run the query again, so the client
            // is told "not yet" rather than this failure.
            reply.error = None;
            reply.state = "RUNNING".into();
            reply.next_token = Some(request.token);
            return Some(reply);
        }
        if reply.next_token.is_none() {
            // The client has the whole result: its spool is of no use any more.
            driver.remove_spool();
            self.forget(&request.query_id);
        }
        Some(reply)
    }

    /// The attempt of each of `ids` driven here, if any.
    pub fn attempts(&self, ids: &[String]) -> Vec<Option<u32>> {
        let Ok(driven) = self.driven.lock() else {
            return vec![None; ids.len()];
        };
        ids.iter()
            .map(|id| driven.get(id).map(|d| d.attempt))
            .collect()
    }

    pub fn cancel(&self, id: &str) -> bool {
        match self.get(id) {
            Some(driver) => {
                driver.cancel();
                true
            }
            None => false,
        }
    }

    /// Stop and forget queries whose client has not asked for a page for its timeout.
    pub fn reap_abandoned(&self) {
        let Ok(mut driven) = self.driven.lock() else {
            return;
        };
        driven.retain(|id, d| {
            let keep = d.driver.idle() <= d.client_timeout;
            if !keep {
                tracing::info!(query = %id, "abandoned by its client; releasing its results");
                d.driver.abandon();
                d.driver.remove_spool();
            }
            keep
        });
    }
}

/// Plan the query of `request` over its catalog snapshot, its stages spread over the workers.
async fn plan(
    request: &DriveRequest,
    distribution: Result<Distribution, String>,
    stores: &ObjectStores,
) -> Result<Prepared, QueryError> {
    let distribution = distribution.map_err(|e| errors::internal(&e))?;
    let context = provider::session_on(
        &request.snapshot(),
        &request.catalog,
        &request.schema,
        Some(distribution),
        &request.options,
        stores,
    )
    .map_err(|e| errors::from_datafusion(&e, &request.sql))?;
    let frame = shoal_engine::naming::plan_sql(&context, &request.sql)
        .await
        .map_err(|e| errors::planning_error(&context, &e, &request.sql))?;
    Ok(Prepared::Query(frame))
}

/// The workers among `urls` that do not take a connection now.
async fn unreachable(urls: &[String]) -> Vec<String> {
    const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
    let mut lost = Vec::new();
    for url in urls {
        let Some(address) = url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .map(str::to_string)
        else {
            continue;
        };
        let connected =
            tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await;
        if !matches!(connected, Ok(Ok(_))) {
            lost.push(url.clone());
        }
    }
    lost
}
