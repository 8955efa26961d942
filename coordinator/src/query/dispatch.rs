//! Starting a query: admission, then handing it to the driver of the least loaded worker, or
//! running it in this coordinator when it needs one (catalog changes, system tables, SHOW) or
//! no worker is alive.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use shoal_engine::drive::{paths, DriveRequest};
use shoal_engine::driver::Driver;
use shoal_engine::pages::BufferLimits;
use shoal_proto::client::QueryError;
use shoal_state_store::RaftRole;

use crate::node::Coordinator;
use crate::protocol::errors;
use crate::protocol::session::ClientSession;
use crate::query::admission::{self, Holder};
use crate::query::lifecycle::{self, Transition};
use crate::query::outcome;
use crate::query::record::{QueryRecord, QueryState};
use crate::query::statements::StatementContext;
use crate::workers::LiveWorker;

/// Result bytes a query running in a coordinator keeps ahead of its client.
const LOCAL_BUFFER_BYTES: u64 = 64 << 20;

/// Start `record`'s query in the background; `admit` is false for a re-run that already holds
/// its admission slot.
pub fn start(node: Arc<Coordinator>, record: QueryRecord, session: ClientSession, admit: bool) {
    let driver = Driver::new(BufferLimits::in_memory(LOCAL_BUFFER_BYTES));
    node.queries
        .keep(&record.id, record.attempt, driver.clone());
    tokio::spawn(async move { run(&node, record, session, &driver, admit).await });
}

enum Handed {
    /// A worker's driver has the query, or the record moved on.
    Away,
    /// No worker took it: run it here.
    NotTaken,
}

async fn run(
    node: &Arc<Coordinator>,
    record: QueryRecord,
    session: ClientSession,
    driver: &Arc<Driver>,
    admit: bool,
) {
    if admit {
        let admitted = tokio::select! {
            admitted = admission::acquire(&node.store, admission::limits(node), &record.id, admission::holder(node), &node.workers) => admitted,
            reason = driver.stopped() => Err(reason),
        };
        if let Err(error) = admitted {
            driver.fail(error.clone());
            outcome::end_failed(node, &record, error).await;
            return;
        }
        if admission::limits(node).max_concurrent > 0 && !note_admitted(node, &record).await {
            node.queries.forget(&record.id);
            driver.move_away();
            outcome::give_back(node, &record.id).await;
            return;
        }
    }
    let statement = context(node, &record, session);
    // The views it reads become their queries; the record keeps the client's text.
    let record = match statement.expand_views(&record.sql).await {
        Ok(sql) => QueryRecord { sql, ..record },
        Err(error) => {
            driver.fail(error.clone());
            outcome::end_failed(node, &record, error).await;
            return;
        }
    };
    if statement.runs_on_workers(&record.sql) {
        match hand_to_worker(node, &record, &statement, driver).await {
            Ok(Handed::Away) => {
                node.queries.forget(&record.id);
                driver.move_away();
                return;
            }
            Ok(Handed::NotTaken) => {}
            Err(error) => {
                driver.fail(error.clone());
                outcome::end_failed(node, &record, error).await;
                return;
            }
        }
    }
    run_here(node, &record, statement, driver).await;
}

fn context(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    session: ClientSession,
) -> StatementContext {
    StatementContext {
        node: node.clone(),
        store: node.store.clone(),
        query_id: record.id.clone(),
        attempt: record.attempt,
        session,
        definer_reads: Default::default(),
    }
}

/// Where a new query goes, decided before its record is first written, so that the record is
/// created naming its driver (one write, not two): the least loaded worker's drive request.
pub struct Chosen {
    /// The query's text with the views it reads expanded.
    sql: String,
    request: String,
    worker: LiveWorker,
}

/// For a new query that runs on workers and waits for no admission slot: name the least
/// loaded worker as its driver in `record` (as `HandedTo` does), before the record is first
/// written. None leaves `record` as it is, for [`start`]: the query is admitted, runs in this
/// coordinator, or fails there with the error of its views or reads.
pub async fn choose(
    node: &Arc<Coordinator>,
    record: &mut QueryRecord,
    session: &ClientSession,
) -> Option<Chosen> {
    if admission::limits(node).max_concurrent > 0 {
        return None;
    }
    let statement = context(node, record, session.clone());
    let sql = statement.expand_views(&record.sql).await.ok()?;
    if !statement.runs_on_workers(&sql) {
        return None;
    }
    let workers = node.workers.live_by(first_heartbeats(node)).await;
    let expanded = QueryRecord {
        sql: sql.clone(),
        ..record.clone()
    };
    let request = drive_request(node, &expanded, &statement, &workers)
        .await
        .ok()?;
    let worker = by_load(workers, &record.id).into_iter().next()?;
    let handed = Transition::HandedTo {
        attempt: record.attempt,
        owner: (node.id(), node.started_at_ms),
        driver: (
            &worker.heartbeat.internal_url,
            worker.heartbeat.started_at_ms,
        ),
    };
    if !handed.apply(record) {
        return None;
    }
    Some(Chosen {
        sql,
        request,
        worker,
    })
}

/// Start a query whose record was created naming the worker [`choose`] chose: send it the
/// query, and when it does not take it, dispatch the query as [`start`] does.
pub fn start_chosen(
    node: Arc<Coordinator>,
    record: QueryRecord,
    session: ClientSession,
    chosen: Chosen,
) {
    let driver = Driver::new(BufferLimits::in_memory(LOCAL_BUFFER_BYTES));
    node.queries
        .keep(&record.id, record.attempt, driver.clone());
    tokio::spawn(async move {
        let expanded = QueryRecord {
            sql: chosen.sql,
            ..record.clone()
        };
        if offer(&node, &expanded, &driver, &chosen.worker, &chosen.request).await {
            node.queries.forget(&record.id);
            driver.move_away();
            return;
        }
        // Taken back: the record names no driver again, and no admission is waited for.
        let record = QueryRecord {
            state: QueryState::Queued,
            driver_url: String::new(),
            driver_incarnation: 0,
            ..record
        };
        run(&node, record, session, &driver, false).await;
    });
}

/// Record that `record`'s attempt holds an admission slot. False when the record moved on
/// (cancelled, or adopted by another coordinator): the slot goes back and the query is not
/// run here. A mark that cannot be written is no reason to stop: the start is recorded next.
async fn note_admitted(node: &Coordinator, record: &QueryRecord) -> bool {
    let admitted = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::Admitted {
            attempt: record.attempt,
            owner: (node.id(), node.started_at_ms),
        },
    )
    .await;
    match admitted {
        Ok(Some(_)) => true,
        Ok(None) => {
            tracing::info!(query = %record.id, attempt = record.attempt, "admitted, but the record moved on");
            false
        }
        Err(e) => {
            tracing::debug!(query = %record.id, error = %e, "cannot record the admission of a query");
            true
        }
    }
}

/// What became of recording a driver's start.
enum Start {
    /// The record names the driver.
    Recorded,
    /// The record moved on (the query was cancelled, adopted by another coordinator or run
    /// again elsewhere): the client's page requests follow it from here on.
    MovedOn,
    /// The query was stopped while its start could not be written.
    Stopped(QueryError),
}

/// Record `transition`, the start of `record`'s attempt on a driver, before that driver runs
/// anything. A start that cannot be written is tried again: until it is, nobody else runs the
/// query (its owner is alive).
async fn record_start<'a>(
    node: &Coordinator,
    record: &QueryRecord,
    driver: &Driver,
    transition: impl Fn() -> Transition<'a>,
) -> Start {
    let mut pause = Duration::from_millis(50);
    loop {
        match lifecycle::apply(&node.store, &record.id, transition()).await {
            Ok(Some(_)) => return Start::Recorded,
            Ok(None) => {
                tracing::info!(query = %record.id, attempt = record.attempt, "not started: the record moved on");
                return Start::MovedOn;
            }
            Err(e) if driver.is_stopped() => {
                tracing::warn!(query = %record.id, error = %e, "cannot record the start of a stopped query");
                return Start::Stopped(driver.stopped().await);
            }
            Err(e) => {
                tracing::warn!(query = %record.id, error = %e, "cannot record the start of a query; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = driver.stopped() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Run the query in this coordinator's own driver.
async fn run_here(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    statement: StatementContext,
    driver: &Arc<Driver>,
) {
    let run_here = || Transition::RunHere {
        attempt: record.attempt,
        owner: (node.id(), node.started_at_ms),
        driver: (&node.internal_url, node.started_at_ms),
    };
    match record_start(node, record, driver, run_here).await {
        Start::Recorded => {}
        Start::MovedOn => {
            node.queries.forget(&record.id);
            driver.move_away();
            return;
        }
        Start::Stopped(reason) => {
            outcome::end_failed(node, record, reason).await;
            return;
        }
    }
    let sql = record.sql.clone();
    let deadline = statement
        .options()
        .deadline(record.created_ms, crate::query::record::now_ms());
    let outcome = driver
        .run_until(
            async move { statement.prepare(&sql).await },
            &record.sql,
            deadline,
        )
        .await;
    outcome::end_here(
        node,
        &record.id,
        record.attempt,
        &node.internal_url,
        outcome,
        node.config.query_client_timeout,
    )
    .await;
}

/// Live workers, least loaded first; ties are spread by the query id.
fn by_load(mut workers: Vec<LiveWorker>, query_id: &str) -> Vec<LiveWorker> {
    workers.sort_by_key(|w| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (query_id, &w.heartbeat.id).hash(&mut hasher);
        (w.heartbeat.running_queries, hasher.finish())
    });
    workers
}

/// Internal URLs of the coordinators that answer, to which a driver reports.
async fn coordinator_urls(node: &Coordinator) -> Vec<String> {
    let mut urls: Vec<String> = node
        .store
        .recent_status()
        .await
        .members
        .into_iter()
        .filter(|m| m.role != RaftRole::Unknown && m.url != node.internal_url)
        .map(|m| m.url)
        .collect();
    urls.insert(0, node.internal_url.clone());
    urls
}

async fn drive_request(
    node: &Coordinator,
    record: &QueryRecord,
    statement: &StatementContext,
    workers: &[LiveWorker],
) -> Result<String, QueryError> {
    // Only the tables the query reads travel, each with its current version's files.
    let reads = statement.reads_of_sql(&record.sql);
    statement.authorize_reads(&reads)?;
    let snapshot = statement.resolve(&reads).await?;
    let (schemas, tables) = snapshot.to_parts();
    let request = DriveRequest {
        query_id: record.id.clone(),
        attempt: record.attempt,
        sql: record.sql.clone(),
        catalog: statement.current_catalog(),
        schema: statement.current_schema(),
        schemas,
        tables,
        workers: workers
            .iter()
            .map(|w| w.heartbeat.internal_url.clone())
            .collect(),
        coordinators: coordinator_urls(node).await,
        client_timeout_ms: node.config.query_client_timeout.as_millis() as u64,
        options: statement.options(),
        submitted_ms: record.created_ms,
        spool: spool_of(node, &record.id, record.attempt),
        encoding: record.encoding,
    };
    serde_json::to_string(&request).map_err(|e| errors::internal(&e.to_string()))
}

/// Where attempt `attempt` of query `id` spools its result pages, if results are spooled.
pub(crate) fn spool_of(node: &Coordinator, id: &str, attempt: u32) -> Option<String> {
    let root = node.spool_root.as_ref()?;
    let dir = root
        .child(&shoal_engine::spool::spool_name(id, attempt))
        .ok()?;
    Some(dir.url())
}

/// Until when a coordinator that just started waits for the workers' first heartbeats before
/// it runs their queries itself: two of their intervals (1 s by default), at most
/// `worker.timeout`.
fn first_heartbeats(node: &Coordinator) -> std::time::Instant {
    node.started + node.config.worker_timeout.min(Duration::from_secs(2))
}

/// Give the query to the least loaded worker that takes it.
async fn hand_to_worker(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    statement: &StatementContext,
    driver: &Arc<Driver>,
) -> Result<Handed, QueryError> {
    let workers = node.workers.live_by(first_heartbeats(node)).await;
    if workers.is_empty() {
        return Ok(Handed::NotTaken);
    }
    let request = drive_request(node, record, statement, &workers).await?;
    for worker in by_load(workers, &record.id) {
        if driver.is_stopped() {
            return Err(driver.stopped().await);
        }
        let url = worker.heartbeat.internal_url.clone();
        let incarnation = worker.heartbeat.started_at_ms;
        let handed = || Transition::HandedTo {
            attempt: record.attempt,
            owner: (node.id(), node.started_at_ms),
            driver: (&url, incarnation),
        };
        match record_start(node, record, driver, handed).await {
            Start::Recorded => {}
            Start::MovedOn => return Ok(Handed::Away),
            Start::Stopped(reason) => return Err(reason),
        }
        if offer(node, record, driver, &worker, &request).await {
            return Ok(Handed::Away);
        }
    }
    tracing::warn!(query = %record.id, "no worker took the query; running it in the coordinator");
    Ok(Handed::NotTaken)
}

/// Send the drive request to `worker`, which the record names as the query's driver already.
/// False when the worker did not take it and the record names no driver again.
async fn offer(
    node: &Coordinator,
    record: &QueryRecord,
    driver: &Driver,
    worker: &LiveWorker,
    request: &str,
) -> bool {
    let url = worker.heartbeat.internal_url.as_str();
    let incarnation = worker.heartbeat.started_at_ms;
    // Tests lose the drive request here: the record names a driver that never gets the
    // query, as when its owner dies at this moment.
    fail::fail_point!("drive-request-lost", |_| {
        tracing::warn!(query = %record.id, "failpoint drive-request-lost");
        true
    });
    let taken: Result<(), _> = node
        .rpc
        .call(url, paths::DRIVE, request, node.rpc_timeout())
        .await;
    if let Err(e) = taken {
        tracing::warn!(query = %record.id, worker = %worker.heartbeat.id, error = %e, "worker did not take the query; trying another");
        if take_back(node, record, (url, incarnation)).await {
            return false;
        }
    }
    let holder = Holder::Worker {
        id: worker.heartbeat.id.clone(),
        incarnation,
    };
    if let Err(e) =
        admission::hand_over(&node.store, admission::limits(node), &record.id, holder).await
    {
        // The slot stays this coordinator's: it counts while this coordinator lives.
        tracing::warn!(query = %record.id, error = %e.message, "the admission slot was not handed to the driver");
    }
    if driver.is_stopped() {
        cancel_on(node, url, &record.id).await;
    }
    tracing::info!(query = %record.id, worker = %worker.heartbeat.id, attempt = record.attempt, "query handed to a worker's driver");
    true
}

/// Take the query back from a worker that did not take it (as far as this coordinator knows:
/// the reply may have been lost), so another can be named. False when the worker has reported
/// since, or the record cannot be changed: it stays the query's driver then, and recovery
/// follows it if it does not have the query.
async fn take_back(node: &Coordinator, record: &QueryRecord, driver: (&str, u64)) -> bool {
    let back_to = if admission::limits(node).max_concurrent > 0 {
        QueryState::Dispatching
    } else {
        QueryState::Queued
    };
    let taken_back = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::NotTaken {
            attempt: record.attempt,
            driver,
            back_to,
        },
    )
    .await;
    match taken_back {
        Ok(Some(_)) => {
            // In case it has the query after all.
            cancel_on(node, driver.0, &record.id).await;
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(query = %record.id, error = %e, "cannot take a query back from a worker that did not take it");
            false
        }
    }
}

/// Ask the driver at `url` to stop query `id`; a driver that cannot be reached stops it when
/// its client goes.
pub(crate) async fn cancel_on(node: &Coordinator, url: &str, id: &str) {
    let cancelled: Result<bool, _> = node
        .rpc
        .call(url, paths::CANCEL, &id.to_string(), node.rpc_timeout())
        .await;
    if let Err(e) = cancelled {
        tracing::warn!(query = %id, driver = %url, error = %e, "cannot cancel a query on its driver");
    }
}
