//! The coordinator's queries: accepting statements, serving their pages from wherever their
//! driver is (here, on a worker, or not yet anywhere), and cancelling them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use crate::query::record::{self, now_ms, QueryRecord, QueryState};
use crate::query::replies::{
    answers_alone, end_of_earlier_attempt, reply_from_record, store_unavailable, PAGE_WAIT,
};
use crate::query::{dispatch, outcome, recovery};
use crate::registry::{self, Mode};

/// How long a new query waits for the state store to take its record through a leader change.
const NEW_RECORD_RETRY: Duration = Duration::from_secs(3);

/// The answer to a page request: the reply, the token after it, the attempt whose pages it
/// holds and the encoding its client reads rows in.
#[derive(Debug)]
pub struct Answered {
    pub reply: PageReply,
    pub next: Option<PageToken>,
    pub attempt: u32,
    pub encoding: Option<shoal_proto::segments::Encoding>,
}

/// Why a client's request about a query (a page, a cancel) was not answered.
#[derive(Debug)]
pub enum RequestError {
    /// No such query, or not under this slug (HTTP 404).
    Unknown(String),
    /// The user may not do it (HTTP 403).
    Denied(String),
    /// The query's own error, or the cluster's.
    Failed(QueryError),
}

impl From<QueryError> for RequestError {
    fn from(error: QueryError) -> Self {
        RequestError::Failed(error)
    }
}

fn unknown(id: &str) -> RequestError {
    RequestError::Unknown(format!("query {id} does not exist"))
}

pub struct Queries {
    ids: QueryIds,
    /// Drivers in this process, with the attempt each runs: queries running here, and queries
    /// waiting to be handed on.
    drivers: Mutex<HashMap<String, (u32, Arc<Driver>)>>,
}

/// A page of one attempt of a query, as it appears in the client's `nextUri`: `attempt.page`
/// (a bare number is page of attempt 0), with an `e` after it when the reply before handed
/// out the last rows (the client asks only for the end). Pages of one attempt are never
/// served for another; the end of one is, as a finished result: the client has every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    pub attempt: u32,
    pub page: u64,
    pub end: bool,
}

impl std::str::FromStr for PageToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a page token");
        let (text, end) = match text.strip_suffix('e') {
            Some(text) => (text, true),
            None => (text, false),
        };
        let (attempt, page) = match text.split_once('.') {
            Some((attempt, page)) => (attempt.parse().map_err(|_| bad())?, page),
            None => (0, text),
        };
        Ok(PageToken {
            attempt,
            page: page.parse().map_err(|_| bad())?,
            end,
        })
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.attempt, self.page)?;
        if self.end {
            f.write_str("e")?;
        }
        Ok(())
    }
}

impl Queries {
    pub fn new(coordinator: u64) -> Self {
        Queries {
            ids: QueryIds::new(coordinator),
            drivers: Mutex::new(HashMap::new()),
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

    /// The attempt of each of `ids` whose driver is here, if any.
    pub fn attempts(&self, ids: &[String]) -> Vec<Option<u32>> {
        let Ok(drivers) = self.drivers.lock() else {
            return vec![None; ids.len()];
        };
        ids.iter()
            .map(|id| drivers.get(id).map(|(attempt, _)| *attempt))
            .collect()
    }

    pub(crate) fn keep(&self, id: &str, attempt: u32, driver: Arc<Driver>) {
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.insert(id.to_string(), (attempt, driver));
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
            properties: session.properties.clone(),
            time_zone: session.time_zone.clone(),
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
            spool: None,
            // Rows of queries go in segments when the client asked; updates answer in a
            // `data` array as Trino's do.
            encoding: session
                .encoding
                .filter(|_| crate::query::statements::reads_only(sql)),
            error: None,
        };
        // Created naming its driver where that can be decided now: one write less.
        let mut record = record;
        let chosen = dispatch::choose(node, &mut record, session).await;
        record::put_new(&node.store, &record, NEW_RECORD_RETRY)
            .await
            .map_err(store_unavailable)?;
        match chosen {
            Some(chosen) => {
                dispatch::start_chosen(node.clone(), record.clone(), session.clone(), chosen)
            }
            None => dispatch::start(node.clone(), record.clone(), session.clone(), true),
        }
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
    ) -> Result<Answered, RequestError> {
        let mut record = self.record(node, id, slug).await?;
        if record.attempt < token.attempt {
            record = self.latest(node, id).await?;
        }
        let encoding = record.encoding;
        let answered = self.page_of(node, record, token).await;
        // An error ends the client's stream as the last page does.
        node.history.note_read(
            id,
            answered
                .as_ref()
                .map_or(true, |(r, _)| r.next_token.is_none()),
        );
        let (reply, attempt) = answered?;
        let next = reply.next_token.map(|page| PageToken {
            attempt,
            page,
            end: reply.last_rows,
        });
        Ok(Answered {
            reply,
            next,
            attempt,
            encoding,
        })
    }

    /// Page `token` of `record`'s query, and the attempt that answered it: the record may
    /// move on to another attempt while the request waits, and only a first page is served
    /// from another attempt than the token's.
    async fn page_of(
        &self,
        node: &Arc<Coordinator>,
        mut record: QueryRecord,
        token: PageToken,
    ) -> Result<(PageReply, u32), RequestError> {
        let same_attempt = |record: &QueryRecord| {
            if record.attempt != token.attempt && token.page > 0 {
                return Err(errors::driver_lost(format!(
                    "query {} was run again (attempt {}) after its driver died; the pages of attempt {} are gone, run the query again",
                    record.id, record.attempt, token.attempt
                )));
            }
            Ok(record.attempt)
        };
        if let Some(ended) = end_of_earlier_attempt(&record, token.attempt, token.page, token.end) {
            return Ok(ended);
        }
        let attempt = same_attempt(&record)?;
        let end = token;
        let token = token.page;
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
                    let reply = recovery::deliver(node, &record, token, reply).await?;
                    return Ok((reply, attempt));
                }
                return Ok((reply, attempt));
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
        if let Some(ended) = end_of_earlier_attempt(&record, end.attempt, end.page, end.end) {
            return Ok(ended);
        }
        let attempt = same_attempt(&record)?;
        if record.driver_url.is_empty() || answers_alone(&record, token) {
            crate::query::spooled::read_to_the_end(node, &record, token);
            return Ok((reply_from_record(&record, token), attempt));
        }
        if record.driver_url == node.internal_url {
            // Driven here, but not by this process's driver: it died with an earlier run of
            // this coordinator.
            let reply = recovery::driver_silent(node, &record, token).await?;
            return Ok((reply, attempt));
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
        let reply = match fetched {
            Ok(json) => {
                let reply: PageReply = serde_json::from_str(&json)
                    .map_err(|e| errors::internal(&format!("bad page from the driver: {e}")))?;
                recovery::deliver(node, &record, token, reply).await?
            }
            Err(RpcFailure::Remote(e)) if e.code == ErrorCode::NotFound => {
                // The driver does not know the query: it finished and let go, or it restarted.
                let record = self.latest(node, id).await?;
                if answers_alone(&record, token) {
                    crate::query::spooled::read_to_the_end(node, &record, token);
                    reply_from_record(&record, token)
                } else {
                    recovery::driver_forgot(node, &record, token).await?
                }
            }
            Err(e) => {
                tracing::debug!(query = %id, driver = %record.driver_url, error = %e, "cannot fetch a page from the driver");
                recovery::driver_silent(node, &record, token).await?
            }
        };
        // Answers from the record alone ask for the same page again: they name no attempt's
        // pages.
        Ok((reply, attempt))
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
    ) -> Result<(), RequestError> {
        let record = self.record(node, id, slug).await?;
        let allowed = user.is_some_and(|u| node.may_kill_query(u, &record.user));
        if !allowed {
            return Err(RequestError::Denied(format!(
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
            outcome::end_failed(node, &record, errors::cancelled()).await;
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
            .map_err(|e| {
                RequestError::Failed(errors::internal(&format!(
                    "cannot reach the driver of query {id}: {e}"
                )))
            })
    }

    /// `system.runtime.kill_query`: fail query `id` with `message`, if `user` owns it or may
    /// kill others' queries, and stop its driver.
    pub async fn kill(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        user: &str,
        message: Option<&str>,
    ) -> Result<(), QueryError> {
        let record = record::get_latest(&node.store, id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                errors::not_found("NOT_FOUND", format!("Target query not found: {id}"))
            })?;
        if !node.may_kill_query(user, &record.user) {
            return Err(errors::permission_denied(format!(
                "Access Denied: Cannot kill query {id} of user {}",
                record.user
            )));
        }
        let error = errors::administratively_killed(match message {
            Some(message) => format!("Query killed. Message: {message}"),
            None => "Query killed".to_string(),
        });
        if !outcome::kill(node, &record, &error)
            .await
            .map_err(store_unavailable)?
        {
            return Err(errors::user(format!("Target query is not running: {id}")));
        }
        match self.driver(id) {
            Some(driver) => {
                driver.fail(error);
            }
            None if !record.driver_url.is_empty() && record.driver_url != node.internal_url => {
                dispatch::cancel_on(node, &record.driver_url, id).await;
            }
            None => {}
        }
        tracing::info!(query = %id, by = %user, "query killed");
        Ok(())
    }

    async fn latest(&self, node: &Coordinator, id: &str) -> Result<QueryRecord, RequestError> {
        record::get_latest(&node.store, id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| unknown(id))
    }

    pub(crate) async fn record(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
    ) -> Result<QueryRecord, RequestError> {
        let record = record::get(&node.store, id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| unknown(id))?;
        if record.slug != slug {
            return Err(unknown(id));
        }
        Ok(record)
    }
}
