//! The on-disk format version of a store's data directory, written at creation and checked at
//! every open so that a build never misreads data written by a newer one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult};
use crate::keyspace::{KeySpace, Space};
use crate::snapshot_store;

/// The format this build writes. Bump it whenever the layout of any key space changes, and
/// teach [`upgrade`] to bring the previous format up to it.
///
/// - 1: the current snapshot is one value in the `snapshot` tree.
/// - 2: it is a stream of records cut into chunks in the `state_machine` tree.
/// - 3: the chunks are in a tree of their own, `snapshot_chunks`, by generation.
/// - 4: the Raft log and vote are in a database of their own, in [`LOG_DIR`], so that syncing
///   every append writes only the log, not the state machine's pages.
pub const FORMAT_VERSION: u32 = 4;

/// The subdirectory of a data directory that holds the Raft log's database.
pub const LOG_DIR: &str = "raft-log";

/// What the header records about the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    /// The node id this directory belongs to; a directory is never reused by another node.
    pub node_id: u64,
}

/// The header key space: a single entry, `header`.
pub struct HeaderSpace;

impl KeySpace for HeaderSpace {
    const NAME: &'static str = "header";
    const TREE: &'static str = "header";
    const PREFIX: u8 = b'h';
    type Key = String;
    type Value = Header;
}

const HEADER_KEY: &str = "header";

/// Check the header of an opened database, writing it if the database is new.
pub fn check_or_write_header(db: &sled::Db, path: &str, node_id: u64) -> StoreResult<Header> {
    let space = Space::<HeaderSpace>::open(db)?;
    match space.get(&HEADER_KEY.to_string())? {
        Some(header) if header.format_version > FORMAT_VERSION => Err(StoreError::FormatTooNew {
            path: path.to_string(),
            found: header.format_version,
            supported: FORMAT_VERSION,
        }),
        Some(header) if header.node_id != node_id => Err(StoreError::InvalidArgument(format!(
            "the data directory {path} belongs to node {}, not node {node_id}",
            header.node_id
        ))),
        Some(header) => Ok(header),
        None => write_new_header(&space, node_id),
    }
}

/// Write the header of a new database of node `node_id`, in this build's format.
fn write_new_header(space: &Space<HeaderSpace>, node_id: u64) -> StoreResult<Header> {
    let header = Header {
        format_version: FORMAT_VERSION,
        node_id,
    };
    space.insert(&HEADER_KEY.to_string(), &header)?;
    space.flush()?;
    Ok(header)
}

/// Open the Raft log's database of the data directory `dir`, creating it for a new or older
/// directory, and check that it belongs to node `node_id`. When `expect_log` (the directory's
/// header says format 4 or later), the log must be there: a member that lost its vote and log
/// must not rejoin as the voter it was, so that is an error naming the way back.
pub fn open_log_db(dir: &Path, node_id: u64, expect_log: bool) -> StoreResult<sled::Db> {
    let log_dir = dir.join(LOG_DIR);
    let has_log = log_dir.join("conf").exists() || log_dir.join("db").exists();
    if expect_log && !has_log {
        return Err(StoreError::InvalidArgument(format!(
            "the data directory {} has no Raft log ({LOG_DIR} is missing): this member lost \
             its vote and log and must not rejoin as node {node_id}; remove it from the \
             cluster (shoal haadmin remove-coordinator {node_id}), empty its data directory \
             and add it again (shoal haadmin add-coordinator --id {node_id})",
            dir.display(),
        )));
    }
    let db = sled::Config::new()
        .path(&log_dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .map_err(|e| StoreError::sled("raft log database", e))?;
    let space = Space::<HeaderSpace>::open(&db)?;
    match space.get(&HEADER_KEY.to_string())? {
        Some(found) if found.node_id != node_id => Err(StoreError::InvalidArgument(format!(
            "the Raft log in {} belongs to node {}, not node {node_id}",
            log_dir.display(),
            found.node_id,
        ))),
        Some(_) => Ok(db),
        None => write_new_header(&space, node_id).map(|_| db),
    }
}

/// Bring a directory written by an older format (as its checked `header` says) up to this one,
/// then record the new version. Opening a directory of the current format changes nothing
/// but removing what an interrupted upgrade left behind.
pub fn upgrade(
    db: &sled::Db,
    log_db: &sled::Db,
    path: &str,
    header: Header,
    max_encoded_len: u64,
) -> StoreResult<Header> {
    let found = header.format_version;
    if found >= FORMAT_VERSION {
        // The log's trees of format 3, if an upgrade stopped after recording format 4.
        crate::log_store::LogStore::drop_moved(db)?;
        return Ok(header);
    }
    if found < 1 {
        return Err(StoreError::InvalidArgument(format!(
            "the data directory {path} has on-disk format version {found}, which never existed"
        )));
    }
    if found == 1 {
        snapshot_store::upgrade_from_v1(db, max_encoded_len)?;
    }
    if found <= 2 {
        snapshot_store::upgrade_from_v2(db, max_encoded_len)?;
    }
    if found <= 3 {
        crate::log_store::LogStore::move_to(db, log_db)?;
    }
    let upgraded = Header {
        format_version: FORMAT_VERSION,
        ..header
    };
    write_header(db, &upgraded)?;
    tracing::info!(
        data_dir = %path,
        from = found,
        to = FORMAT_VERSION,
        "upgraded the on-disk format"
    );
    crate::log_store::LogStore::drop_moved(db)?;
    Ok(upgraded)
}

/// Read the header without checking it (for tools and tests).
pub fn read_header(db: &sled::Db) -> StoreResult<Option<Header>> {
    Space::<HeaderSpace>::open(db)?.get(&HEADER_KEY.to_string())
}

/// Overwrite the header (for tests of format checks).
pub fn write_header(db: &sled::Db, header: &Header) -> StoreResult<()> {
    let space = Space::<HeaderSpace>::open(db)?;
    space.insert(&HEADER_KEY.to_string(), header)?;
    space.flush()
}

/// What a stopped member's data directory holds, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDirSummary {
    pub format_version: u32,
    pub node_id: u64,
    pub last_applied_index: Option<u64>,
    pub last_applied_term: Option<u64>,
    pub revision: u64,
    pub keys: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub snapshot_id: Option<String>,
}

/// Summarise the data directory at `path` (the member must be stopped: sled locks it).
pub fn inspect(path: &std::path::Path) -> StoreResult<DataDirSummary> {
    if !path.join("conf").exists() && !path.join("db").exists() {
        return Err(StoreError::InvalidArgument(format!(
            "{} is not a state-store data directory",
            path.display()
        )));
    }
    let db = sled::Config::new()
        .path(path)
        .open()
        .map_err(|e| StoreError::sled("database", e))?;
    let header = read_header(&db)?.ok_or_else(|| {
        StoreError::InvalidArgument(format!("{} has no Shoal header", path.display()))
    })?;
    if header.format_version > FORMAT_VERSION {
        return Err(StoreError::FormatTooNew {
            path: path.display().to_string(),
            found: header.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let sm = crate::state_machine::SmShared::open(&db, 1)?;
    let state = sm.applied_state()?;
    let membership = state.membership.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    Ok(DataDirSummary {
        format_version: header.format_version,
        node_id: header.node_id,
        last_applied_index: state.last_applied.map(|l| l.index),
        last_applied_term: state.last_applied.map(|l| l.leader_id.term),
        revision: state.revision,
        keys: sm.key_count()?,
        voters,
        learners,
        snapshot_id: if header.format_version < 2 {
            snapshot_store::legacy_snapshot_id(&db)?
        } else if header.format_version == 2 {
            snapshot_store::v2_snapshot_id(&db)?
        } else {
            sm.current_snapshot_id()?
        },
    })
}
