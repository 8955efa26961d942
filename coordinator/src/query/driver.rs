//! The query driver: plans and runs a statement with DataFusion and keeps its result pages
//! until the client has read them. Pages are addressed by token; the page for token `t` can be
//! fetched again until token `t + 1` is asked for. For now the driver runs inside the
//! coordinator that accepted the query; other coordinators fetch its pages over internal RPC.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};
use tokio::sync::{watch, Notify};

use crate::protocol::errors;
use crate::protocol::{types, values};
use crate::query::statements::{Prepared, StatementContext};

/// Most rows in one page.
const PAGE_ROWS: usize = 4096;
/// Most pages produced ahead of the client.
const PAGES_AHEAD: usize = 8;

/// What a driver answers for one page token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageReply {
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<Value>>,
    /// The token to ask for next; None once everything was delivered (or the query failed).
    pub next_token: Option<u64>,
    pub state: String,
    pub processed_rows: u64,
    pub elapsed_ms: u64,
    pub error: Option<QueryError>,
    pub update_type: Option<String>,
    pub update_count: Option<u64>,
}

#[derive(Default)]
struct Buffer {
    columns: Option<Vec<Column>>,
    pages: BTreeMap<u64, Vec<Vec<Value>>>,
    /// Token of the next page the producer will add.
    produced: u64,
    finished: bool,
    error: Option<QueryError>,
    rows: u64,
    bytes: u64,
    update_type: Option<String>,
    update_count: Option<u64>,
}

/// One running (or finished) query's execution and buffered pages.
pub struct Driver {
    buffer: Mutex<Buffer>,
    changed: Notify,
    started: Instant,
    /// Milliseconds after `started` of the last page request.
    last_access_ms: std::sync::atomic::AtomicU64,
    /// Why the query was stopped (cancelled or abandoned), once it was.
    stop: watch::Sender<Option<QueryError>>,
}

/// The outcome of a finished driver, for the query record.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rows: u64,
    pub bytes: u64,
    pub error: Option<QueryError>,
}

impl Driver {
    pub fn new() -> Arc<Self> {
        Arc::new(Driver {
            buffer: Mutex::new(Buffer::default()),
            changed: Notify::new(),
            started: Instant::now(),
            last_access_ms: std::sync::atomic::AtomicU64::new(0),
            stop: watch::channel(None).0,
        })
    }

    fn with_buffer<T>(&self, f: impl FnOnce(&mut Buffer) -> T) -> T {
        let mut guard = match self.buffer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Run `sql` to completion, filling the buffer.
    pub async fn run(self: &Arc<Self>, statement: StatementContext, sql: &str) -> Outcome {
        let result = tokio::select! {
            result = self.execute(statement, sql) => result,
            reason = self.stopped() => Err(reason),
        };
        let outcome = self.with_buffer(|b| {
            match result {
                Ok(()) => b.finished = true,
                Err(error) => b.error = Some(error),
            }
            Outcome {
                rows: b.rows,
                bytes: b.bytes,
                error: b.error.clone(),
            }
        });
        self.changed.notify_waiters();
        outcome
    }

    async fn execute(&self, statement: StatementContext, sql: &str) -> Result<(), QueryError> {
        match statement.prepare(sql).await? {
            Prepared::Query(frame) => self.stream(frame, sql).await,
            Prepared::Update { update_type, rows } => {
                let (column, value) = match rows {
                    Some(rows) => (Field::new("rows", DataType::Int64, true), Value::from(rows)),
                    None => (
                        Field::new("result", DataType::Boolean, true),
                        Value::Bool(true),
                    ),
                };
                self.with_buffer(|b| {
                    b.columns = Some(vec![types::column(&column)]);
                    b.update_type = Some(update_type);
                    b.update_count = rows;
                });
                self.push_page(vec![vec![value]]).await;
                Ok(())
            }
        }
    }

    async fn stream(&self, frame: DataFrame, sql: &str) -> Result<(), QueryError> {
        let schema = frame.schema().as_arrow().clone();
        let columns: Vec<Column> = schema.fields().iter().map(|f| types::column(f)).collect();
        self.with_buffer(|b| b.columns = Some(columns));
        self.changed.notify_waiters();
        let mut stream = frame
            .execute_stream()
            .await
            .map_err(|e| errors::from_datafusion(&e, sql))?;
        let mut pending: Vec<Vec<Value>> = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| errors::from_datafusion(&e, sql))?;
            let bytes = batch.get_array_memory_size() as u64;
            let rows = values::batch_rows(&batch).map_err(|e| errors::internal(&e.to_string()))?;
            self.with_buffer(|b| {
                b.rows += rows.len() as u64;
                b.bytes += bytes;
            });
            pending.extend(rows);
            while pending.len() >= PAGE_ROWS {
                let rest = pending.split_off(PAGE_ROWS);
                self.push_page(std::mem::replace(&mut pending, rest)).await;
            }
        }
        if !pending.is_empty() {
            self.push_page(pending).await;
        }
        Ok(())
    }

    /// Add a page, waiting while the client is too far behind.
    async fn push_page(&self, rows: Vec<Vec<Value>>) {
        loop {
            let notified = self.changed.notified();
            let added = self.with_buffer(|b| {
                if b.pages.len() >= PAGES_AHEAD {
                    return false;
                }
                let token = b.produced;
                b.pages.insert(token, rows.clone());
                b.produced += 1;
                true
            });
            if added {
                self.changed.notify_waiters();
                return;
            }
            notified.await;
        }
    }

    pub fn cancel(&self) {
        self.halt(errors::cancelled());
    }

    /// Fail the query before it ran (not admitted, for example).
    pub fn fail(&self, error: QueryError) -> Outcome {
        let outcome = self.with_buffer(|b| {
            b.error = Some(error);
            Outcome {
                rows: 0,
                bytes: 0,
                error: b.error.clone(),
            }
        });
        self.changed.notify_waiters();
        outcome
    }

    /// Completes when the query was cancelled or abandoned; the error says which.
    pub async fn stopped(&self) -> QueryError {
        let mut reason = self.stop.subscribe();
        let stopped = reason
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone());
        stopped.unwrap_or_else(errors::cancelled)
    }

    /// Stop because no client asked for results for too long.
    pub fn abandon(&self) {
        self.halt(errors::abandoned());
    }

    /// Record the first reason the query was stopped and wake everything waiting on it.
    fn halt(&self, reason: QueryError) {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
        self.changed.notify_waiters();
    }

    /// The page for `token`, waiting up to `wait` for it to be produced. Asking for `token`
    /// releases every earlier page.
    /// How long no client has asked for a page.
    pub fn idle(&self) -> Duration {
        let last = self
            .last_access_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    pub async fn page(&self, token: u64, wait: Duration) -> PageReply {
        self.last_access_ms.store(
            self.started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            if let Some(reply) = self.try_page(token, tokio::time::Instant::now() >= deadline) {
                self.changed.notify_waiters();
                return reply;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                continue;
            }
        }
    }

    fn try_page(&self, token: u64, give_up: bool) -> Option<PageReply> {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        self.with_buffer(|b| {
            b.pages.retain(|t, _| *t >= token);
            let reply = |rows: Vec<Vec<Value>>,
                         next_token: Option<u64>,
                         state: &str,
                         b: &Buffer| PageReply {
                columns: b.columns.clone(),
                rows,
                next_token,
                state: state.to_string(),
                processed_rows: b.rows,
                elapsed_ms,
                error: b.error.clone(),
                update_type: b.update_type.clone(),
                update_count: b.update_count,
            };
            if b.error.is_some() {
                return Some(reply(Vec::new(), None, "FAILED", b));
            }
            if let Some(rows) = b.pages.get(&token) {
                return Some(reply(rows.clone(), Some(token + 1), "RUNNING", b));
            }
            if b.finished && token >= b.produced {
                return Some(reply(Vec::new(), None, "FINISHED", b));
            }
            give_up.then(|| {
                let state = if b.columns.is_some() {
                    "RUNNING"
                } else {
                    "QUEUED"
                };
                reply(Vec::new(), Some(token), state, b)
            })
        })
    }
}
