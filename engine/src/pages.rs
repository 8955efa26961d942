//! A driver's result pages: what a page request answers, and the buffer that keeps pages in
//! memory up to a limit and beyond it in the query's result spool (when it has one) or in
//! spill files, deleting each once the client moved on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_proto::client::{Column, QueryError};

use crate::driver::Outcome;
use crate::spool::{Spool, SpooledSegment};

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
    /// The position in the result of the first of `rows`.
    #[serde(default)]
    pub row_offset: u64,
    /// For a client of the spooling protocol: the pages from this token on, as segments
    /// (`rows` is then empty), and `next_token` is the token after the last of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<PageSegment>,
    /// The reply hands out the last rows of a finished result (the next reply only ends it).
    #[serde(default)]
    pub last_rows: bool,
}

impl PageReply {
    /// The reply hands rows to the client (in `rows` or in segments).
    pub fn has_rows(&self) -> bool {
        !self.rows.is_empty() || !self.segments.is_empty()
    }
}

/// One page handed to a client of the spooling protocol as a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PageSegment {
    /// The payload itself: the page's rows encoded as the client asked, base64.
    Inline {
        offset: u64,
        rows: u64,
        size: u64,
        uncompressed: Option<u64>,
        data: String,
    },
    /// A segment in the query's spool, which the client downloads from any coordinator.
    Spooled(SpooledSegment),
}

/// Whether, and how, the result spool holds a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InSpool {
    No,
    /// As `page-N.json`.
    Page,
    /// As a segment of the spooling protocol.
    Segment(SpooledSegment),
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
    /// How many rows it holds, and where the first is in the result.
    pub(crate) rows: u64,
    pub(crate) offset: u64,
    /// The result spool has it too.
    pub(crate) spool: InSpool,
    /// Handed to the client as a spooled segment: the client removes it from the spool by
    /// acknowledging it, not the driver when the client moves on.
    pub(crate) referenced: bool,
}

/// Where a page's rows are when not in memory.
pub(crate) enum Away {
    Disk(PathBuf),
    Spool,
}

impl StoredPage {
    fn new(
        json: Option<String>,
        path: Option<PathBuf>,
        size: usize,
        rows: u64,
        spool: InSpool,
    ) -> Self {
        StoredPage {
            json,
            path,
            size: size as u64,
            rows,
            offset: 0,
            spool,
            referenced: false,
        }
    }

    pub(crate) fn memory(json: String, rows: u64, spool: InSpool) -> Self {
        let size = json.len();
        Self::new(Some(json), None, size, rows, spool)
    }

    pub(crate) fn disk(path: PathBuf, size: usize, rows: u64) -> Self {
        Self::new(None, Some(path), size, rows, InSpool::No)
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
    pub(crate) fn spooled(size: usize, rows: u64, spool: InSpool) -> Self {
        Self::new(None, None, size, rows, spool)
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
    /// Rows in the pages produced so far.
    paged_rows: u64,
    /// Objects of spooled pages the client moved past, to be removed from the spool.
    pub spool_released: Vec<String>,
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
            paged_rows: 0,
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

    /// The token and the row offset of the next page.
    pub(crate) fn next_page(&self) -> (u64, u64) {
        (self.produced, self.paged_rows)
    }

    pub(crate) fn add(&mut self, mut page: StoredPage) {
        if page.path.is_some() {
            self.spill_used += page.size;
        } else if page.json.is_some() {
            self.memory_used += page.size;
        }
        if page.spool != InSpool::No {
            self.spool_used += page.size;
        }
        page.offset = self.paged_rows;
        self.paged_rows += page.rows;
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

    /// Note that the spool holds the pages `written` too.
    pub(crate) fn mark_spooled(&mut self, written: &[(u64, InSpool)]) {
        for (token, spool) in written {
            if let Some(page) = self.pages.get_mut(token) {
                if page.spool == InSpool::No {
                    page.spool = *spool;
                    self.spool_used += page.size;
                }
            }
        }
    }

    /// Note that the client was handed pages `tokens` as spooled segments.
    pub(crate) fn mark_referenced(&mut self, tokens: &[u64]) {
        for token in tokens {
            if let Some(page) = self.pages.get_mut(token) {
                page.referenced = true;
            }
        }
    }

    fn forget(&mut self, token: u64, page: StoredPage) {
        if page.spool != InSpool::No {
            self.spool_used = self.spool_used.saturating_sub(page.size);
            match page.spool {
                _ if page.referenced => {}
                InSpool::Segment(segment) => self.spool_released.push(segment.name.object()),
                _ => self.spool_released.push(Spool::page_object(token)),
            }
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
