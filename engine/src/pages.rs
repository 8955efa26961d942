//! A driver's result pages: what a page request answers, and the buffer that keeps pages in
//! memory up to a limit and beyond it in the query's result spool (when it has one) or in
//! spill files, deleting each once the client moved on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};

use crate::driver::Outcome;

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

/// How much of its results a query may hold ahead of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferLimits {
    /// Bytes of pages (as JSON) kept in memory.
    pub memory_bytes: u64,
    /// This query's own spill directory; None keeps everything in memory.
    pub spill_dir: Option<PathBuf>,
    /// Bytes of pages kept in spill files.
    pub spill_bytes: u64,
    /// Bytes of unread pages kept in the result spool, when the query has one.
    pub spool_bytes: u64,
}

impl BufferLimits {
    pub fn in_memory(memory_bytes: u64) -> Self {
        BufferLimits {
            memory_bytes,
            spill_dir: None,
            spill_bytes: 0,
            spool_bytes: 0,
        }
    }
}

/// One buffered page: its rows as JSON, in memory, in a spill file or only in the spool.
#[derive(Debug)]
pub(crate) struct StoredPage {
    json: Option<String>,
    path: Option<PathBuf>,
    size: u64,
    /// The result spool has it too.
    spooled: bool,
}

/// Where a page's rows are when not in memory.
pub(crate) enum Away {
    Disk(PathBuf),
    Spool,
}

impl StoredPage {
    pub(crate) fn memory(json: String, spooled: bool) -> Self {
        StoredPage {
            size: json.len() as u64,
            json: Some(json),
            path: None,
            spooled,
        }
    }

    pub(crate) fn disk(path: PathBuf, size: usize) -> Self {
        StoredPage {
            json: None,
            path: Some(path),
            size: size as u64,
            spooled: false,
        }
    }

    /// The rows, if the page is in memory.
    pub(crate) fn rows_in_memory(&self) -> Option<Result<Vec<Vec<Value>>, String>> {
        self.json
            .as_ref()
            .map(|json| serde_json::from_str(json).map_err(|e| e.to_string()))
    }

    /// Where the rows are, for a page not in memory.
    pub(crate) fn away(&self) -> Away {
        match &self.path {
            Some(path) => Away::Disk(path.clone()),
            None => Away::Spool,
        }
    }

    /// A page whose rows only the spool holds.
    pub(crate) fn spooled(size: usize) -> Self {
        StoredPage {
            json: None,
            path: None,
            size: size as u64,
            spooled: true,
        }
    }

    /// The rows as JSON, for a page in memory.
    pub(crate) fn json(&self) -> Option<&str> {
        self.json.as_deref()
    }
}

/// Where the next page goes.
pub(crate) enum Slot {
    Memory,
    Disk(PathBuf),
    /// Only in the spool, which has it already.
    Spool,
    Full,
}

#[derive(Debug)]
pub(crate) struct Buffer {
    pub columns: Option<Vec<Column>>,
    pub pages: BTreeMap<u64, StoredPage>,
    /// Token of the next page the producer will add.
    pub produced: u64,
    pub finished: bool,
    pub error: Option<QueryError>,
    pub rows: u64,
    pub bytes: u64,
    pub update_type: Option<String>,
    pub update_count: Option<u64>,
    limits: BufferLimits,
    memory_used: u64,
    spill_used: u64,
    spool_used: u64,
    /// Tokens of spooled pages the client moved past, to be removed from the spool.
    pub spool_released: Vec<u64>,
}

impl Buffer {
    pub(crate) fn new(limits: BufferLimits) -> Self {
        Buffer {
            columns: None,
            pages: BTreeMap::new(),
            produced: 0,
            finished: false,
            error: None,
            rows: 0,
            bytes: 0,
            update_type: None,
            update_count: None,
            limits,
            memory_used: 0,
            spill_used: 0,
            spool_used: 0,
            spool_released: Vec::new(),
        }
    }

    /// Where a page of `size` bytes fits now; `spooled` when the spool holds it already. An
    /// empty buffer always takes one page, so a page larger than the limits still moves.
    pub(crate) fn place(&self, size: u64, spooled: bool) -> Slot {
        if spooled && !self.pages.is_empty() && self.spool_used + size > self.limits.spool_bytes {
            return Slot::Full;
        }
        if self.pages.is_empty() || self.memory_used + size <= self.limits.memory_bytes {
            return Slot::Memory;
        }
        if spooled {
            return Slot::Spool;
        }
        match &self.limits.spill_dir {
            Some(dir) if self.spill_used + size <= self.limits.spill_bytes => {
                Slot::Disk(dir.join(format!("page-{}.json", self.produced)))
            }
            _ => Slot::Full,
        }
    }

    pub(crate) fn add(&mut self, page: StoredPage) {
        if page.path.is_some() {
            self.spill_used += page.size;
        } else if page.json.is_some() {
            self.memory_used += page.size;
        }
        if page.spooled {
            self.spool_used += page.size;
        }
        self.pages.insert(self.produced, page);
        self.produced += 1;
    }

    /// Drop every page before `token`: the client has them. True if any page was dropped.
    pub(crate) fn release_before(&mut self, token: u64) -> bool {
        let kept = self.pages.split_off(&token);
        let released = std::mem::replace(&mut self.pages, kept);
        let any = !released.is_empty();
        for (token, page) in released {
            self.forget(token, page);
        }
        any
    }

    /// Note that the spool holds the pages `tokens` too.
    pub(crate) fn mark_spooled(&mut self, tokens: &[u64]) {
        for token in tokens {
            if let Some(page) = self.pages.get_mut(token) {
                if !page.spooled {
                    page.spooled = true;
                    self.spool_used += page.size;
                }
            }
        }
    }

    fn forget(&mut self, token: u64, page: StoredPage) {
        if page.spooled {
            self.spool_used = self.spool_used.saturating_sub(page.size);
            self.spool_released.push(token);
        }
        if page.json.is_none() && page.path.is_none() {
            return;
        }
        match page.path {
            Some(path) => {
                self.spill_used = self.spill_used.saturating_sub(page.size);
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::debug!(path = %path.display(), error = %e, "cannot remove a spill file");
                }
            }
            None => self.memory_used = self.memory_used.saturating_sub(page.size),
        }
    }

    /// Fail the query: its pages are of no use any more.
    pub(crate) fn fail(&mut self, error: QueryError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        let _ = self.release_before(u64::MAX);
    }

    pub(crate) fn outcome(&self) -> Outcome {
        Outcome {
            rows: self.rows,
            bytes: self.bytes,
            pages: self.produced,
            error: self.error.clone(),
            spool: None,
        }
    }

    /// Bytes held in memory and in spill files.
    pub(crate) fn held(&self) -> (u64, u64) {
        (self.memory_used, self.spill_used)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(dir) = &self.limits.spill_dir {
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot remove a spill directory");
                }
            }
        }
    }
}
