//! Answering a client's page request from the query's record alone, when no driver has the
//! page: a settled query's end, or "not yet" while it waits for a driver.

use std::time::Duration;

use shoal_engine::pages::PageReply;
use shoal_proto::client::QueryError;

use crate::protocol::errors;
use crate::query::record::{now_ms, QueryRecord, QueryState};

/// How long a page request waits for the page to be produced before answering "not yet".
pub const PAGE_WAIT: Duration = Duration::from_secs(1);

/// Whether `record`, settled, answers page `token` by itself: a failure always does; a
/// finished run only at the end of its results (earlier pages exist only at its driver).
pub(crate) fn answers_alone(record: &QueryRecord, token: u64) -> bool {
    match record.state {
        QueryState::Failed => true,
        QueryState::Finished => token >= record.pages,
        QueryState::Queued | QueryState::Dispatching | QueryState::Running => false,
    }
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
        QueryState::Dispatching => ("DISPATCHING", Some(token)),
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
        row_offset: 0,
        segments: Vec::new(),
        last_rows: false,
    }
}
