//! The coordinator's queries: accepting statements, running their drivers, keeping their
//! records current, and serving pages whether the driver is here or on another node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;

use crate::node::Coordinator;
use crate::protocol::errors;
use crate::protocol::session::ClientSession;
use crate::query::admission::{self, Limits};
use crate::query::driver::{Driver, PageReply};
use crate::query::id::{random_token, QueryIds};
use crate::query::record::{self, QueryRecord, QueryState};
use crate::query::statements::StatementContext;
use crate::registry::{self, Mode};

/// Internal routes for pages and cancellation of queries whose driver is here.
pub mod paths {
    pub const PAGE: &str = "/query/v1/page";
    pub const CANCEL: &str = "/query/v1/cancel";
}

/// How long a page request waits for the page to be produced before answering "not yet".
const PAGE_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub query_id: String,
    pub token: u64,
}

pub struct Queries {
    ids: QueryIds,
    drivers: Mutex<HashMap<String, Arc<Driver>>>,
}

fn now_ms() -> u64 {
    shoal_seed_store::publisher::now_ms()
}

impl Queries {
    pub fn new(coordinator: u64) -> Self {
        Queries {
            ids: QueryIds::new(coordinator),
            drivers: Mutex::new(HashMap::new()),
        }
    }

    fn driver(&self, id: &str) -> Option<Arc<Driver>> {
        self.drivers.lock().ok()?.get(id).cloned()
    }

    fn forget(&self, id: &str) {
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.remove(id);
        }
    }

    /// Accept `sql`: record it, start its driver, and return its record.
    pub async fn submit(
        &self,
        node: &Arc<Coordinator>,
        session: &ClientSession,
        sql: &str,
    ) -> Result<QueryRecord, QueryError> {
        let unavailable = |e: crate::error::CoordinatorError| {
            errors::unavailable(format!("the state store is unavailable: {e}"))
        };
        let me = registry::get(
            &node.store,
            node.id(),
            shoal_state_store::ReadConsistency::Local,
        )
        .await
        .map_err(unavailable)?;
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
            driver_url: node.internal_url.clone(),
            state: QueryState::Queued,
            created_ms: now_ms(),
            ended_ms: None,
            rows: 0,
            bytes: 0,
            error: None,
        };
        record::put(&node.store, &record)
            .await
            .map_err(unavailable)?;
        let driver = Driver::new();
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.insert(record.id.clone(), driver.clone());
        }
        let statement = StatementContext {
            node: node.clone(),
            store: node.store.clone(),
            warehouse: node.config.warehouse_dir.clone(),
            query_id: record.id.clone(),
            session: session.clone(),
        };
        let running = record.clone();
        let store = node.store.clone();
        let max_history = node.config.max_query_history;
        let limits = Limits {
            max_concurrent: node.config.max_concurrent_queries,
            max_queued: node.config.max_queued_queries,
        };
        let coordinator = node.id();
        tokio::spawn(async move {
            let admitted = tokio::select! {
                admitted = admission::acquire(&store, limits, &running.id, coordinator) => admitted,
                reason = driver.stopped() => Err(reason),
            };
            let outcome = match admitted {
                Ok(()) => {
                    let mut started = running.clone();
                    started.state = QueryState::Running;
                    if let Err(e) = record::put(&store, &started).await {
                        tracing::warn!(query = %started.id, error = %e, "cannot record the start of a query");
                    }
                    driver.run(statement, &running.sql).await
                }
                Err(error) => driver.fail(error),
            };
            admission::release(&store, limits, &running.id).await;
            let mut done = running;
            done.state = if outcome.error.is_some() {
                QueryState::Failed
            } else {
                QueryState::Finished
            };
            done.ended_ms = Some(now_ms());
            done.rows = outcome.rows;
            done.bytes = outcome.bytes;
            done.error = outcome.error;
            if let Err(e) = record::put(&store, &done).await {
                tracing::warn!(query = %done.id, error = %e, "cannot record the end of a query");
            }
            if let Err(e) = record::trim_history(&store, max_history).await {
                tracing::debug!(error = %e, "cannot trim query history");
            }
        });
        Ok(record)
    }

    /// The page `token` of query `id`, from its driver wherever that is.
    pub async fn page(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
        token: u64,
    ) -> Result<PageReply, QueryError> {
        let record = self.record(node, id, slug).await?;
        if let Some(driver) = self.driver(id) {
            let reply = driver.page(token, PAGE_WAIT).await;
            if reply.next_token.is_none() {
                self.forget(id);
            }
            return Ok(reply);
        }
        if record.driver_url == node.internal_url {
            return Err(errors::internal(&format!(
                "the results of query {id} are no longer available"
            )));
        }
        let request = PageRequest {
            query_id: id.to_string(),
            token,
        };
        let json: String = node
            .rpc
            .call(
                &record.driver_url,
                paths::PAGE,
                &request,
                PAGE_WAIT + node.rpc_timeout(),
            )
            .await
            .map_err(|e| {
                errors::internal(&format!(
                    "cannot fetch results of query {id} from its driver: {e}"
                ))
            })?;
        serde_json::from_str(&json)
            .map_err(|e| errors::internal(&format!("bad page from the driver: {e}")))
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
                .filter(|(_, d)| d.idle() > max_idle)
                .map(|(id, d)| (id.clone(), d.clone()))
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

    /// Cancel query `id` wherever its driver is.
    pub async fn cancel(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
    ) -> Result<(), QueryError> {
        let record = self.record(node, id, slug).await?;
        if self.cancel_local(id) || record.state.is_done() {
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

    async fn record(
        &self,
        node: &Arc<Coordinator>,
        id: &str,
        slug: &str,
    ) -> Result<QueryRecord, QueryError> {
        let record = record::get(&node.store, id)
            .await
            .map_err(|e| errors::unavailable(format!("the state store is unavailable: {e}")))?
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
