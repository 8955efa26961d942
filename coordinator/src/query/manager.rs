//! The coordinator's queries: accepting statements, serving their pages from wherever their
//! driver is (here, on a worker, or not yet anywhere), and cancelling them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_engine::drive::{paths, PageRequest};
use shoal_engine::driver::Driver;
use shoal_engine::pages::PageReply;
use shoal_proto::client::QueryError;
use shoal_proto::ErrorCode;
use shoal_state_store::network::RpcFailure;

use crate::node::Coordinator;
use crate::protocol::errors;
use crate::protocol::session::ClientSession;
use crate::query::id::{random_token, QueryIds};
use crate::query::record::{self, QueryRecord, QueryState, Reader};
use crate::query::{dispatch, recovery};
use crate::registry::{self, Mode};

/// How long a page request waits for the page to be produced before answering "not yet".
pub const PAGE_WAIT: Duration = Duration::from_secs(1);
/// How long a new query waits for the state store to take its record through a leader change.
const NEW_RECORD_RETRY: Duration = Duration::from_secs(3);

pub struct Queries {
    ids: QueryIds,
    /// Drivers in this process, with the attempt each runs: queries running here, and queries
    /// waiting to be handed on.
    drivers: Mutex<HashMap<String, (u32, Arc<Driver>)>>,
    /// Queries whose pages clients read through this coordinator: when a client last asked,
    /// and whether it got the last page. Trimming the history never cuts such a reader.
    readers: Mutex<HashMap<String, (Instant, bool)>>,
}

/// A page of one attempt of a query, as it appears in the client's `nextUri`: `attempt.page`
/// (a bare number is page of attempt 0). Pages of one attempt are never served for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    pub attempt: u32,
    pub page: u64,
}

impl std::str::FromStr for PageToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a page token");
        let (attempt, page) = match text.split_once('.') {
            Some((attempt, page)) => (attempt.parse().map_err(|_| bad())?, page),
            None => (0, text),
        };
        Ok(PageToken {
            attempt,
            page: page.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.attempt, self.page)
    }
}

/// Whether `record`, settled, answers page `token` by itself: a failure always does; a
/// finished run only at the end of its results (earlier pages exist only at its driver).
pub(crate) fn answers_alone(record: &QueryRecord, token: u64) -> bool {
    match record.state {
        QueryState::Failed => true,
        QueryState::Finished => token >= record.pages,
        QueryState::Queued | QueryState::Running => false,
    }
}

/// Trim the query history as far as [`record::TrimRule`] allows: no reader is cut.
pub(crate) async fn trim_history(node: &Coordinator) {
    let timeout = node.config.query_client_timeout;
    let rule = record::TrimRule {
        me: node.id(),
        my_incarnation: node.started_at_ms,
        now_ms: now_ms(),
        client_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        live: registry::live_starts(&node.store).await,
    };
    let may_go =
        |brief: &record::Brief| rule.may_go(brief, node.queries.reader(&brief.id, timeout));
    match record::trim_history(&node.store, node.config.max_query_history, may_go).await {
        Ok(gone) => node.queries.forget_readers(&gone),
        Err(e) => tracing::debug!(error = %e, "cannot trim query history"),
    }
}

pub(crate) fn now_ms() -> u64 {
    shoal_seed_store::publisher::now_ms()
}

pub(crate) fn store_unavailable(e: crate::error::CoordinatorError) -> QueryError {
    errors::unavailable(format!("the state store is unavailable: {e}"))
}

/// The answer for a query whose driver is gone, from its record.
pub(crate) fn reply_from_record(record: &QueryRecord, token: u64) -> PageReply {
    let elapsed_ms = record
        .ended_ms
        .unwrap_or_else(now_ms)
        .saturating_sub(record.created_ms);
    let (state, next_token) = match record.state {
        // Pages before the end are at the driver: ask again (the driver's loss settles it).
        QueryState::Finished if token < record.pages => ("RUNNING", Some(token)),
        QueryState::Finished => ("FINISHED", None),
        QueryState::Failed => ("FAILED", None),
        QueryState::Queued => ("QUEUED", Some(token)),
        QueryState::Running => ("RUNNING", Some(token)),
    };
    PageReply {
        columns: None,
        rows: Vec::new(),
        next_token,
        state: state.into(),
        processed_rows: record.rows,
        elapsed_ms,
        error: record.error.clone(),
        update_type: None,
        update_count: None,
    }
}

impl Queries {
    pub fn new(coordinator: u64) -> Self {
        Queries {
            ids: QueryIds::new(coordinator),
            drivers: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn driver(&self, id: &str) -> Option<Arc<Driver>> {
        Some(self.drivers.lock().ok()?.get(id)?.1.clone())
    }

    /// The driver here of attempt `attempt` of query `id`.
    fn driver_of(&self, id: &str, attempt: u32) -> Option<Arc<Driver>> {
        let drivers = self.drivers.lock().ok()?;
        let (kept, driver) = drivers.get(id)?;
        (*kept == attempt).then(|| driver.clone())
    }

    pub(crate) fn keep(&self, id: &str, attempt: u32, driver: Arc<Driver>) {
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.insert(id.to_string(), (attempt, driver));
        }
    }

    /// A client of query `id` was just answered; `last` when that was the end of its results.
    fn note_read(&self, id: &str, last: bool) {
        if let Ok(mut readers) = self.readers.lock() {
            readers.insert(id.to_string(), (Instant::now(), last));
        }
    }

    /// What this coordinator knows of the client of query `id`.
    pub(crate) fn reader(&self, id: &str, client_timeout: Duration) -> Option<Reader> {
        let readers = self.readers.lock().ok()?;
        let (last_asked, done) = readers.get(id)?;
        Some(if *done {
            Reader::Done
        } else if last_asked.elapsed() > client_timeout {
            Reader::Idle
        } else {
            Reader::Active
        })
    }

    /// The records of `ids` were trimmed.
    pub(crate) fn forget_readers(&self, ids: &[String]) {
        if let Ok(mut readers) = self.readers.lock() {
            for id in ids {
                readers.remove(id);
            }
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.remove(id);
        }
    }

    /// Accept `sql`: record it, start it, and return its record.
    pub async fn submit(
        &self,
        node: &Arc<Coordinator>,
        session: &ClientSession,
        sql: &str,
    ) -> Result<QueryRecord, QueryError> {
        let me = registry::get(
            &node.store,
            node.id(),
            shoal_state_store::ReadConsistency::Local,
        )
        .await
        .map_err(store_unavailable)?;
        if me.is_some_and(|r| r.mode == Mode::Backup) {
            return Err(errors::draining(format!(
                "coordinator {} is in backup mode and takes no new queries; send them to another coordinator",
                node.id()
            )));
        }
        let record = QueryRecord {
            id: self.ids.next(),
            slug: random_token(12),
            sql: sql.to_string(),
            user: session.user.clone(),
            source: session.source.clone(),
            catalog: session.catalog.clone(),
            schema: session.schema.clone(),
            coordinator: node.id(),
            owner_incarnation: node.started_at_ms,
            driver_url: String::new(),
            driver_incarnation: 0,
            attempt: 0,
            delivered: false,
            state: QueryState::Queued,
            created_ms: now_ms(),
            ended_ms: None,
            rows: 0,
            bytes: 0,
            pages: 0,
            error: None,
        };
        record::put_new(&node.store, &record, NEW_RECORD_RETRY)
            .await
            .map_err(store_unavailable)?;
        dispatch::start(node.clone(), record.clone(), session.clone(), true);
        Ok(record)
    }

    /// Page `token` of query `id`, from its driver wherever that is, with the token of the
    /// page after it. A page of an attempt that is no longer the query's is refused: page 0
    /// excepted (nothing was delivered yet), which is served from the current attempt.
    pub async fn page(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
        token: PageToken,
    ) -> Result<(PageReply, Option<PageToken>), QueryError> {
        let mut record = self.record(node, id, slug).await?;
        if record.attempt < token.attempt {
            record = self.latest(node, id).await?;
        }
        if record.attempt != token.attempt && token.page > 0 {
            return Err(errors::driver_lost(format!(
                "query {id} was run again (attempt {}) after its driver died; the pages of attempt {} are gone, run the query again",
                record.attempt, token.attempt
            )));
        }
        let attempt = record.attempt;
        let reply = self.page_of(node, record, token.page).await;
        // An error ends the client's stream as the last page does.
        self.note_read(id, reply.as_ref().map_or(true, |r| r.next_token.is_none()));
        let reply = reply?;
        let next = reply.next_token.map(|page| PageToken { attempt, page });
        Ok((reply, next))
    }

    async fn page_of(
        &self,
        node: &Arc<Coordinator>,
        mut record: QueryRecord,
        token: u64,
    ) -> Result<PageReply, QueryError> {
        let id = record.id.clone();
        let id = id.as_str();
        if let Some(driver) = self.driver_of(id, record.attempt) {
            let reply = driver.page(token, PAGE_WAIT).await;
            if !driver.is_moved() {
                if reply.next_token.is_none() {
                    self.forget(id);
                }
                if driver.is_running() {
                    // Delivered rows of a query still running here must never be produced
                    // again by a re-run after this coordinator's death.
                    return recovery::delivering(node, &record, token, reply).await;
                }
                return Ok(reply);
            }
            // Handed to a worker while this request waited: ask the cluster where it went.
            record = self.latest(node, id).await?;
        }
        if record.driver_url.is_empty() && !record.state.is_done() {
            // This coordinator's copy may lag: ask the cluster, then wait a while for a driver.
            record = self.latest(node, id).await?;
            if record.driver_url.is_empty() && !record.state.is_done() {
                record::wait_for_change(&node.store, id, PAGE_WAIT)
                    .await
                    .map_err(store_unavailable)?;
                record = self.latest(node, id).await?;
            }
        }
        if record.driver_url.is_empty() || answers_alone(&record, token) {
            return Ok(reply_from_record(&record, token));
        }
        if record.driver_url == node.internal_url {
            // Driven here, but not by this process's driver: it died with an earlier run of
            // this coordinator.
            return recovery::driver_lost(node, &record, token).await;
        }
        let request = PageRequest {
            query_id: id.to_string(),
            token,
        };
        let fetched: Result<String, RpcFailure> = node
            .rpc
            .call(
                &record.driver_url,
                paths::PAGE,
                &request,
                PAGE_WAIT + node.rpc_timeout(),
            )
            .await;
        match fetched {
            Ok(json) => {
                let reply: PageReply = serde_json::from_str(&json)
                    .map_err(|e| errors::internal(&format!("bad page from the driver: {e}")))?;
                recovery::delivering(node, &record, token, reply).await
            }
            Err(RpcFailure::Remote(e)) if e.code == ErrorCode::NotFound => {
                // The driver does not know the query: it finished and let go, or it restarted.
                let record = self.latest(node, id).await?;
                if answers_alone(&record, token) {
                    return Ok(reply_from_record(&record, token));
                }
                recovery::driver_forgot(node, &record, token).await
            }
            Err(e) => {
                tracing::debug!(query = %id, driver = %record.driver_url, error = %e, "cannot fetch a page from the driver");
                recovery::driver_lost(node, &record, token).await
            }
        }
    }

    /// Serve a page to another coordinator (the driver is here).
    pub async fn local_page(&self, request: &PageRequest) -> Result<PageReply, QueryError> {
        let driver = self.driver(&request.query_id).ok_or_else(|| {
            errors::not_found(
                "NOT_FOUND",
                format!("query {} has no results here", request.query_id),
            )
        })?;
        let reply = driver.page(request.token, PAGE_WAIT).await;
        if reply.next_token.is_none() {
            self.forget(&request.query_id);
        }
        Ok(reply)
    }

    /// Cancel and forget queries no client has read from for `max_idle` (abandoned).
    pub fn reap_abandoned(&self, max_idle: Duration) {
        let abandoned: Vec<(String, Arc<Driver>)> = match self.drivers.lock() {
            Ok(drivers) => drivers
                .iter()
                .filter(|(_, (_, d))| d.idle() > max_idle)
                .map(|(id, (_, d))| (id.clone(), d.clone()))
                .collect(),
            Err(_) => return,
        };
        for (id, driver) in abandoned {
            tracing::info!(query = %id, "abandoned by its client; releasing its results");
            driver.abandon();
            self.forget(&id);
        }
        // Readers of queries another coordinator trims are forgotten here, long after.
        if let Ok(mut readers) = self.readers.lock() {
            readers.retain(|_, (last_asked, _)| last_asked.elapsed() <= max_idle * 4);
        }
    }

    pub fn cancel_local(&self, id: &str) -> bool {
        match self.driver(id) {
            Some(driver) => {
                driver.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancel query `id` wherever its driver is, if `user` owns it or is an admin.
    pub async fn cancel(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
        user: Option<&str>,
    ) -> Result<(), QueryError> {
        let record = self.record(node, id, slug).await?;
        let allowed = user.is_some_and(|u| node.may_kill_query(u, &record.user));
        if !allowed {
            return Err(errors::permission_denied(format!(
                "Access Denied: {} cannot cancel query {id} of user {}",
                user.unwrap_or("a request without a user"),
                record.user
            )));
        }
        if self.cancel_local(id) || record.state.is_done() {
            return Ok(());
        }
        if record.driver_url.is_empty() || record.driver_url == node.internal_url {
            // Waiting on another coordinator, or its driver here is gone: settle it in the record.
            recovery::finish(node, &record, errors::cancelled()).await;
            return Ok(());
        }
        node.rpc
            .call::<_, bool>(
                &record.driver_url,
                paths::CANCEL,
                &id.to_string(),
                node.rpc_timeout(),
            )
            .await
            .map(|_| ())
            .map_err(|e| errors::internal(&format!("cannot reach the driver of query {id}: {e}")))
    }

    async fn latest(&self, node: &Coordinator, id: &str) -> Result<QueryRecord, QueryError> {
        record::get_latest(&node.store, id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| errors::not_found("NOT_FOUND", format!("query {id} does not exist")))
    }

    pub(crate) async fn record(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
    ) -> Result<QueryRecord, QueryError> {
        let record = record::get(&node.store, id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| errors::not_found("NOT_FOUND", format!("query {id} does not exist")))?;
        if record.slug != slug {
            return Err(errors::not_found(
                "NOT_FOUND",
                format!("query {id} does not exist"),
            ));
        }
        Ok(record)
    }
}
