//! The Raft log and vote on sled: entries in the `raft_log` tree, vote, committed and purged
//! pointers in the `raft_state` tree, in a database of their own (the state machine's pages
//! are not synced with every append). Every append and vote is flushed before it is reported.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::StorageIOError;
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader};

use crate::error::{StoreError, StoreResult};
use crate::keyspace::{KeySpace, Space};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Log entries by index.
pub struct LogEntries;
impl KeySpace for LogEntries {
    const NAME: &'static str = "raft_log";
    const TREE: &'static str = "raft_log";
    const PREFIX: u8 = b'l';
    type Key = u64;
    type Value = Entry;
}

/// The last vote this node cast or accepted.
pub struct VoteSpace;
impl KeySpace for VoteSpace {
    const NAME: &'static str = "raft_vote";
    const TREE: &'static str = "raft_state";
    const PREFIX: u8 = b'v';
    type Key = String;
    type Value = Vote;
}

/// Log pointers: `committed` and `last_purged`.
pub struct LogPointers;
impl KeySpace for LogPointers {
    const NAME: &'static str = "raft_log_pointers";
    const TREE: &'static str = "raft_state";
    const PREFIX: u8 = b'p';
    type Key = String;
    type Value = LogId;
}

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// What this member's log held when it was opened. A leader that restarts before losing its
/// term leads on in that term, but the commit index it saved may be behind what it had
/// committed (the pointer is not synced, and openraft starts from it): entries up to
/// `last_index` may already be committed, and been read, elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RestoredLog {
    pub term: u64,
    pub last_index: u64,
}

/// The Raft log storage; clones share the same trees and serve as log readers.
#[derive(Clone)]
pub struct LogStore {
    entries: Space<LogEntries>,
    vote: Space<VoteSpace>,
    pointers: Space<LogPointers>,
}

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &StoreError) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

fn read_logs_error(e: &StoreError) -> StorageError {
    io_error(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_logs_error(e: &StoreError) -> StorageError {
    io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl LogStore {
    pub fn open(db: &sled::Db) -> StoreResult<Self> {
        Ok(LogStore {
            entries: Space::open(db)?,
            vote: Space::open(db)?,
            pointers: Space::open(db)?,
        })
    }

    /// Copy the log's trees of a format-3 data directory's database `from` into the log's own
    /// database `to`, replacing whatever an interrupted copy left there, and flush it. Where
    /// `from` holds no log at all there is nothing to move, and `to` is left as it is.
    pub(crate) fn move_to(from: &sled::Db, to: &sled::Db) -> StoreResult<()> {
        let names = [LogEntries::TREE, VoteSpace::TREE];
        let mut empty = true;
        for name in names {
            if from
                .tree_names()
                .iter()
                .any(|t| t.as_ref() == name.as_bytes())
            {
                let tree = from
                    .open_tree(name)
                    .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
                empty &= tree.is_empty();
            }
        }
        if empty {
            return Ok(());
        }
        for name in names {
            let source = from
                .open_tree(name)
                .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
            let target = to
                .open_tree(name)
                .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
            target
                .clear()
                .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
            let mut batch = sled::Batch::default();
            for item in source.iter() {
                let (key, value) = item.map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
                batch.insert(key, value);
            }
            target
                .apply_batch(batch)
                .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
        }
        to.flush()
            .map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
        Ok(())
    }

    /// Remove the log's trees from the state machine's database once they were moved.
    pub(crate) fn drop_moved(db: &sled::Db) -> StoreResult<()> {
        for name in [LogEntries::TREE, VoteSpace::TREE] {
            if db
                .drop_tree(name)
                .map_err(|e| StoreError::sled(LogEntries::NAME, e))?
            {
                tracing::info!(tree = name, "removed the raft log's old tree");
            }
        }
        Ok(())
    }

    /// Whether a vote was ever saved (this member voted or heard a leader).
    pub(crate) fn has_vote(&self) -> StoreResult<bool> {
        Ok(self.vote.get(&VOTE.to_string())?.is_some())
    }

    /// The term of the saved vote and the last log index, as this member left them. Read
    /// before Raft starts: a leader that restarts keeps its term (see [`RestoredLog`]).
    pub(crate) fn restored(&self) -> StoreResult<RestoredLog> {
        let vote: Option<Vote> = self.vote.get(&VOTE.to_string())?;
        let last = self.last_entry_log_id()?.or(self.last_purged()?);
        Ok(RestoredLog {
            term: vote.map_or(0, |v| v.leader_id().term),
            last_index: last.map_or(0, |l| l.index),
        })
    }

    fn last_purged(&self) -> StoreResult<Option<LogId>> {
        self.pointers.get(&LAST_PURGED.to_string())
    }

    fn last_entry_log_id(&self) -> StoreResult<Option<LogId>> {
        match self.entries.iter().next_back() {
            Some(entry) => Ok(Some(entry?.1.log_id)),
            None => Ok(None),
        }
    }

    fn read_range(&self, range: impl RangeBounds<u64>) -> StoreResult<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for item in self.entries.range_from(&start) {
            let (index, entry) = item?;
            if !range.contains(&index) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn remove_range(&self, range: impl RangeBounds<u64>) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        for raw in self
            .entries
            .tree()
            .range(Space::<LogEntries>::key_bytes(&start)..vec![LogEntries::PREFIX + 1])
        {
            let (key, _) = raw.map_err(|e| StoreError::sled(LogEntries::NAME, e))?;
            let index = key
                .get(1..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt {
                    keyspace: LogEntries::NAME,
                    key: format!("{key:?}"),
                    reason: "malformed log index".into(),
                })?;
            if !range.contains(&index) {
                break;
            }
            batch.remove(key);
        }
        self.entries.apply_batch(batch)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range).map_err(|e| read_logs_error(&e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged = self.last_purged().map_err(|e| read_logs_error(&e))?;
        let last = self.last_entry_log_id().map_err(|e| read_logs_error(&e))?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write = |e: &StoreError| io_error(ErrorSubject::Vote, ErrorVerb::Write, e);
        self.vote
            .insert(&VOTE.to_string(), vote)
            .map_err(|e| write(&e))?;
        self.vote.flush_async().await.map_err(|e| write(&e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.vote
            .get(&VOTE.to_string())
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Read, &e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Tests make the pointer never reach the disk: what a crash before the next sync does.
        fail::fail_point!("raft-commit-pointer-lost", |_| Ok(()));
        let result = match committed {
            Some(log_id) => self.pointers.insert(&COMMITTED.to_string(), &log_id),
            None => self.pointers.remove(&COMMITTED.to_string()),
        };
        result.map_err(|e| write_logs_error(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.pointers
            .get(&COMMITTED.to_string())
            .map_err(|e| read_logs_error(&e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut count = 0usize;
        for entry in entries {
            Space::<LogEntries>::batch_insert(&mut batch, &entry.log_id.index, &entry)
                .map_err(|e| write_logs_error(&e))?;
            count += 1;
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| write_logs_error(&e))?;
        let started = std::time::Instant::now();
        let flushed = self.entries.flush_async().await;
        tracing::trace!(
            entries = count,
            flush_us = started.elapsed().as_micros() as u64,
            "appended to raft log"
        );
        callback.log_io_completed(flushed.map_err(|e| std::io::Error::other(e.to_string())));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "truncating raft log");
        self.remove_range(log_id.index..)
            .map_err(|e| write_logs_error(&e))?;
        self.entries
            .flush_async()
            .await
            .map_err(|e| write_logs_error(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "purging raft log");
        self.pointers
            .insert(&LAST_PURGED.to_string(), &log_id)
            .map_err(|e| write_logs_error(&e))?;
        self.pointers
            .flush_async()
            .await
            .map_err(|e| write_logs_error(&e))?;
        self.remove_range(..=log_id.index)
            .map_err(|e| write_logs_error(&e))
    }
}
