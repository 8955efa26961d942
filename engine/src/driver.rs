//! A query's driver: runs one prepared statement and keeps its result pages until the client
//! has read them. Pages are addressed by token; the page for token `t` can be fetched again
//! until token `t + 1` is asked for. Pages wait in memory up to a limit, then in the query's
//! result spool on shared storage (which, once a result is larger than one page, holds every
//! page as soon as it is produced) or in files on local disk, and only then does the producer
//! wait for the client.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field};
use futures::StreamExt;
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};
use tokio::sync::{watch, Notify};

use crate::errors;
use crate::page_json::{Cells, PageJson};
use crate::pages::{Away, Buffer, BufferLimits, InSpool, PageReply, Slot, StoredPage};
use crate::spool::Spool;
use shoal_proto::segments::Encoding;

mod segments;
use crate::{types, Prepared};

/// Most rows in one page.
const PAGE_ROWS: usize = 4096;

/// One running (or finished) query's execution and buffered pages.
pub struct Driver {
    buffer: Mutex<Buffer>,
    changed: Notify,
    started: Instant,
    /// Milliseconds after `started` of the last page request.
    last_access_ms: AtomicU64,
    /// Why the query was stopped (cancelled or abandoned), once it was.
    stop: watch::Sender<Option<QueryError>>,
    /// The query went to a driver elsewhere; this one will never produce pages.
    moved: std::sync::atomic::AtomicBool,
    /// A page with rows was handed out.
    delivered: std::sync::atomic::AtomicBool,
    /// Where pages are spooled once the result is larger than one page.
    spool: Option<Arc<Spool>>,
    /// The spool holds every page produced (and the columns).
    spooling: std::sync::atomic::AtomicBool,
    /// The client reads the result as segments of this encoding (the spooling protocol).
    encoding: Option<Encoding>,
    /// A page was handed out as a spooled segment: the spool stays for the client to
    /// download when it read the end.
    referenced: std::sync::atomic::AtomicBool,
}

/// The outcome of a finished driver, for the query record.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rows: u64,
    pub bytes: u64,
    /// Pages of results produced: page tokens `0..pages` hold rows, token `pages` is the end.
    pub pages: u64,
    pub error: Option<QueryError>,
    /// The spool holding every page of a finished result, when it was spooled.
    pub spool: Option<String>,
}

/// What a page request found: a reply, or a reply whose rows must first be read from disk or
/// from the spool.
enum Found {
    Ready(PageReply),
    OnDisk(PageReply, PathBuf),
    InSpool(PageReply, u64),
    /// For a client of the spooling protocol: pages from the reply's token on.
    Segments(PageReply, Vec<segments::Pick>),
}

impl Driver {
    pub fn new(limits: BufferLimits) -> Arc<Self> {
        Self::spooling_to(limits, None)
    }

    /// A driver whose result, once larger than one page, goes to `spool` as it is produced.
    pub fn spooling_to(limits: BufferLimits, spool: Option<Arc<Spool>>) -> Arc<Self> {
        Self::for_client(limits, spool, None)
    }

    /// A driver whose client reads pages as segments of `encoding` (when it has one); its
    /// `spool`, if any, is written in the same encoding.
    pub fn for_client(
        limits: BufferLimits,
        spool: Option<Arc<Spool>>,
        encoding: Option<Encoding>,
    ) -> Arc<Self> {
        Arc::new(Driver {
            spool,
            spooling: std::sync::atomic::AtomicBool::new(false),
            encoding,
            referenced: std::sync::atomic::AtomicBool::new(false),
            buffer: Mutex::new(Buffer::new(limits)),
            changed: Notify::new(),
            started: Instant::now(),
            last_access_ms: AtomicU64::new(0),
            stop: watch::channel(None).0,
            moved: std::sync::atomic::AtomicBool::new(false),
            delivered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn with_buffer<T>(&self, f: impl FnOnce(&mut Buffer) -> T) -> T {
        let mut guard = match self.buffer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Run the statement `prepare` yields to completion, filling the buffer.
    pub async fn run(
        self: &Arc<Self>,
        prepare: impl Future<Output = Result<Prepared, QueryError>>,
        sql: &str,
    ) -> Outcome {
        self.run_until(prepare, sql, None).await
    }

    /// [`Driver::run`], failing the query with the deadline's error when it is not done by
    /// then (its session's time limits).
    pub async fn run_until(
        self: &Arc<Self>,
        prepare: impl Future<Output = Result<Prepared, QueryError>>,
        sql: &str,
        deadline: Option<crate::options::Deadline>,
    ) -> Outcome {
        let expired = async {
            match &deadline {
                Some(deadline) => {
                    tokio::time::sleep_until(deadline.at).await;
                    deadline.error.clone()
                }
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = self.execute(prepare, sql) => result,
            reason = self.stopped() => Err(reason),
            error = expired => Err(error),
        };
        let mut outcome = self.with_buffer(|b| {
            match result {
                Ok(()) => b.finished = true,
                Err(error) => b.fail(error),
            }
            b.outcome()
        });
        outcome.spool = self.complete_spool();
        if outcome.error.is_some() {
            self.fail_spool();
        }
        self.changed.notify_waiters();
        outcome
    }

    /// The spool's URL once it holds every page of the finished result.
    pub fn complete_spool(&self) -> Option<String> {
        let spooling = self.spooling.load(Ordering::SeqCst);
        let finished = self.with_buffer(|b| b.finished && b.error.is_none());
        match &self.spool {
            Some(spool) if spooling && finished => Some(spool.url().to_string()),
            _ => None,
        }
    }

    /// The client read the end of the result: remove the spool in the background, unless
    /// the client was handed segments of it to download (their acknowledgements and the
    /// coordinators' sweep remove those).
    pub fn remove_spool(&self) {
        if !self.referenced.load(Ordering::SeqCst) {
            self.discard_spool();
        }
    }

    /// The query failed: remove its spool in the background, except the segments the client
    /// was handed (it may still download them before it reads the failure; their
    /// acknowledgements and the coordinators' sweep remove those).
    fn fail_spool(&self) {
        if self.referenced.load(Ordering::SeqCst) {
            self.drop_released_from_spool();
        } else {
            self.discard_spool();
        }
    }

    /// Remove the spool in the background (the query failed or was given up).
    pub fn discard_spool(&self) {
        if let Some(spool) = self.spool.clone() {
            if self.spooling.load(Ordering::SeqCst) {
                tokio::spawn(async move { spool.remove().await });
            }
        }
    }

    /// Write `json` (`rows` rows from row `offset`) as page `token` to the spool (the result
    /// is larger than its first page); the first time, the columns and the pages still held
    /// go first.
    async fn spool_page(
        &self,
        spool: &Spool,
        token: u64,
        offset: u64,
        rows: u64,
        json: &str,
    ) -> Result<InSpool, QueryError> {
        if !self.spooling.load(Ordering::SeqCst) {
            let columns = self.with_buffer(|b| b.columns.clone()).unwrap_or_default();
            spool.write_columns(&columns).await?;
            type Held = (u64, u64, u64, Option<String>, Option<PathBuf>);
            let held: Vec<Held> = self.with_buffer(|b| {
                b.pages
                    .iter()
                    .map(|(token, page)| {
                        let path = match page.away() {
                            Away::Disk(path) => Some(path),
                            Away::Spool => None,
                        };
                        let json = page.json().map(str::to_string);
                        (*token, page.offset, page.rows, json, path)
                    })
                    .collect()
            });
            let mut written = Vec::new();
            for (held_token, offset, rows, json, path) in held {
                let json = match (json, path) {
                    (Some(json), _) => json,
                    (None, Some(path)) => serde_json::to_string(&read_spill(&path).await?)
                        .map_err(|e| errors::internal(&e.to_string()))?,
                    (None, None) => continue,
                };
                let spooled = spool.write(held_token, offset, rows, &json).await?;
                written.push((held_token, in_spool(spooled)));
            }
            self.with_buffer(|b| b.mark_spooled(&written));
            self.spooling.store(true, Ordering::SeqCst);
        }
        Ok(in_spool(spool.write(token, offset, rows, json).await?))
    }

    /// Remove from the spool the pages the client moved past.
    fn drop_released_from_spool(&self) {
        let released = self.with_buffer(|b| std::mem::take(&mut b.spool_released));
        if let (Some(spool), false) = (self.spool.clone(), released.is_empty()) {
            tokio::spawn(async move { spool.remove_objects(&released).await });
        }
    }

    async fn execute(
        &self,
        prepare: impl Future<Output = Result<Prepared, QueryError>>,
        sql: &str,
    ) -> Result<(), QueryError> {
        match prepare.await? {
            Prepared::Query(frame) => {
                let schema = frame.schema().as_arrow().clone();
                let columns: Vec<Column> =
                    schema.fields().iter().map(|f| types::column(f)).collect();
                self.with_buffer(|b| b.columns = Some(columns));
                self.changed.notify_waiters();
                let stream = frame
                    .execute_stream()
                    .await
                    .map_err(|e| errors::from_datafusion(&e, sql))?;
                self.stream(stream, sql).await
            }
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
                self.push_page(vec![vec![value]]).await
            }
        }
    }

    async fn stream(
        &self,
        mut stream: datafusion::execution::SendableRecordBatchStream,
        sql: &str,
    ) -> Result<(), QueryError> {
        let internal = |e: datafusion::arrow::error::ArrowError| errors::internal(&e.to_string());
        let mut page = PageJson::default();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| errors::from_datafusion(&e, sql))?;
            let bytes = batch.get_array_memory_size() as u64;
            let count = batch.num_rows();
            self.with_buffer(|b| {
                b.rows += count as u64;
                b.bytes += bytes;
            });
            // The pages this batch completes, written before any is pushed (pushing waits).
            let mut full = Vec::new();
            {
                let mut cells = Cells::new(&batch).map_err(internal)?;
                let mut start = 0;
                while start < count {
                    let take = (PAGE_ROWS - page.rows()).min(count - start);
                    page.push(&mut cells, start..start + take)
                        .map_err(internal)?;
                    start += take;
                    if page.rows() == PAGE_ROWS {
                        full.push(page.take().map_err(internal)?);
                    }
                }
            }
            for (json, rows) in full {
                self.push_json(json, rows).await?;
            }
        }
        if page.rows() > 0 {
            let (json, rows) = page.take().map_err(internal)?;
            self.push_json(json, rows).await?;
        }
        Ok(())
    }

    /// Add a page of `rows`.
    async fn push_page(&self, rows: Vec<Vec<Value>>) -> Result<(), QueryError> {
        let json = serde_json::to_string(&rows).map_err(|e| errors::internal(&e.to_string()))?;
        self.push_json(json, rows.len() as u64).await
    }

    /// Add a page: in memory if it fits, else (once the result is larger than one page) only
    /// in the spool, else in a spill file, else wait for the client.
    async fn push_json(&self, json: String, count: u64) -> Result<(), QueryError> {
        let (token, offset) = self.with_buffer(|b| b.next_page());
        let spool = self.spool.clone().filter(|_| token > 0);
        loop {
            let notified = self.changed.notified();
            let slot = self.with_buffer(|b| b.place(json.len() as u64, spool.is_some()));
            let mut in_spool = InSpool::No;
            if let (Some(spool), Slot::Memory | Slot::Spool) = (&spool, &slot) {
                in_spool = self.spool_page(spool, token, offset, count, &json).await?;
            }
            match slot {
                Slot::Memory => {
                    self.with_buffer(|b| b.add(StoredPage::memory(json, count, in_spool)));
                    self.changed.notify_waiters();
                    return Ok(());
                }
                Slot::Spool => {
                    let page = StoredPage::spooled(json.len(), count, in_spool);
                    self.with_buffer(|b| b.add(page));
                    self.changed.notify_waiters();
                    return Ok(());
                }
                Slot::Disk(path) => {
                    write_spill(&path, &json).await?;
                    self.with_buffer(|b| b.add(StoredPage::disk(path, json.len(), count)));
                    self.changed.notify_waiters();
                    return Ok(());
                }
                Slot::Full => notified.await,
            }
        }
    }

    pub fn cancel(&self) {
        self.halt(errors::cancelled());
    }

    /// Fail the query before it ran (not admitted, for example).
    pub fn fail(&self, error: QueryError) -> Outcome {
        let outcome = self.with_buffer(|b| {
            b.fail(error);
            b.outcome()
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

    /// The query is driven elsewhere from now on: page requests waiting here return at once.
    pub fn move_away(&self) {
        self.moved.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Whether a page with rows was handed out.
    pub fn delivered(&self) -> bool {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Whether results are still being produced (not finished, failed or stopped).
    pub fn is_running(&self) -> bool {
        !self.is_stopped() && self.with_buffer(|b| !b.finished && b.error.is_none())
    }

    pub fn is_moved(&self) -> bool {
        self.moved.load(Ordering::SeqCst)
    }

    /// Whether the query was cancelled or abandoned.
    pub fn is_stopped(&self) -> bool {
        self.stop.borrow().is_some()
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

    /// How long no client has asked for a page.
    pub fn idle(&self) -> Duration {
        let last = self.last_access_ms.load(Ordering::SeqCst);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// Rows produced so far and their size in Arrow memory.
    pub fn progress(&self) -> (u64, u64) {
        self.with_buffer(|b| (b.rows, b.bytes))
    }

    /// Pages of results produced so far.
    pub fn pages(&self) -> u64 {
        self.with_buffer(|b| b.produced)
    }

    /// Bytes of pages held in memory and in spill files.
    pub fn held(&self) -> (u64, u64) {
        self.with_buffer(|b| b.held())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The page for `token`, waiting up to `wait` for it to be produced. Asking for `token`
    /// releases every earlier page.
    pub async fn page(&self, token: u64, wait: Duration) -> PageReply {
        self.last_access_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
        if self.with_buffer(|b| b.release_before(token)) {
            self.drop_released_from_spool();
            // The producer may be waiting for the room just freed.
            self.changed.notify_waiters();
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            let give_up = tokio::time::Instant::now() >= deadline || self.is_moved();
            let elapsed_ms = self.started.elapsed().as_millis() as u64;
            let segments = self.encoding.is_some();
            let found = self.with_buffer(|b| b.find(token, give_up, elapsed_ms, segments));
            let reply = match found {
                Some(Found::Ready(reply)) => reply,
                Some(Found::OnDisk(mut reply, path)) => {
                    match read_spill(&path).await {
                        Ok(rows) => reply.rows = rows,
                        Err(error) => self.fail_reply(&mut reply, error),
                    }
                    reply
                }
                Some(Found::InSpool(mut reply, token)) => {
                    let read = match &self.spool {
                        Some(spool) => spool.read_page(token).await,
                        None => Err(errors::internal("a spooled page without a spool")),
                    };
                    match read {
                        Ok(rows) => reply.rows = rows,
                        Err(error) => self.fail_reply(&mut reply, error),
                    }
                    reply
                }
                Some(Found::Segments(reply, picks)) => self.segments(reply, picks).await,
                None => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                    continue;
                }
            };
            if reply.has_rows() {
                self.delivered.store(true, Ordering::SeqCst);
            }
            return reply;
        }
    }

    fn fail_reply(&self, reply: &mut PageReply, error: QueryError) {
        self.fail(error.clone());
        reply.state = "FAILED".into();
        reply.next_token = None;
        reply.error = Some(error);
    }
}

impl Buffer {
    fn find(&self, token: u64, give_up: bool, elapsed_ms: u64, segments: bool) -> Option<Found> {
        let reply =
            |rows: Vec<Vec<Value>>, next_token: Option<u64>, state: &str, b: &Buffer| PageReply {
                columns: b.columns.clone(),
                rows,
                next_token,
                state: state.to_string(),
                processed_rows: b.rows,
                elapsed_ms,
                error: b.error.clone(),
                update_type: b.update_type.clone(),
                update_count: b.update_count,
                row_offset: 0,
                segments: Vec::new(),
                last_rows: false,
            };
        if self.error.is_some() {
            return Some(Found::Ready(reply(Vec::new(), None, "FAILED", self)));
        }
        if let Some(page) = self.pages.get(&token) {
            // Whether the reply hands out the last rows of the finished result; the client
            // still asks once more, for the end (so a lost reply can be asked for again).
            let last = |pages: u64| self.finished && token + pages >= self.produced;
            let running = PageReply {
                row_offset: page.offset,
                last_rows: last(1),
                ..reply(Vec::new(), Some(token + 1), "RUNNING", self)
            };
            if segments {
                let picks = self.pick_segments(token);
                let next_token = Some(token + picks.len() as u64);
                return Some(Found::Segments(
                    PageReply {
                        next_token,
                        last_rows: last(picks.len() as u64),
                        ..running
                    },
                    picks,
                ));
            }
            return Some(match page.rows_in_memory() {
                Some(Ok(rows)) => Found::Ready(PageReply { rows, ..running }),
                Some(Err(e)) => Found::Ready(PageReply {
                    state: "FAILED".into(),
                    next_token: None,
                    error: Some(errors::internal(&e)),
                    ..running
                }),
                None => match page.away() {
                    Away::Disk(path) => Found::OnDisk(running, path),
                    Away::Spool => Found::InSpool(running, token),
                },
            });
        }
        if self.finished && token >= self.produced {
            return Some(Found::Ready(reply(Vec::new(), None, "FINISHED", self)));
        }
        give_up.then(|| {
            let state = if self.columns.is_some() {
                "RUNNING"
            } else {
                "QUEUED"
            };
            Found::Ready(reply(Vec::new(), Some(token), state, self))
        })
    }
}

fn in_spool(spooled: Option<crate::spool::SpooledSegment>) -> InSpool {
    match spooled {
        Some(segment) => InSpool::Segment(segment),
        None => InSpool::Page,
    }
}

async fn write_spill(path: &std::path::Path, json: &str) -> Result<(), QueryError> {
    let spill_error = |e: std::io::Error| {
        errors::internal(&format!("cannot spill results to {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(spill_error)?;
    }
    tokio::fs::write(path, json.as_bytes())
        .await
        .map_err(spill_error)
}

async fn read_spill(path: &std::path::Path) -> Result<Vec<Vec<Value>>, QueryError> {
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        errors::internal(&format!(
            "cannot read spilled results {}: {e}",
            path.display()
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| errors::internal(&format!("spilled results are unreadable: {e}")))
}

#[cfg(test)]
mod tests;
