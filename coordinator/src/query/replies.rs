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

/// The end a client asks for (`end`: the reply before handed out the last rows) of attempt
/// `attempt`, page `page`, when the record has moved on to a later attempt (run again after
/// that attempt's driver died before the record said it ended): the client has every row, so
/// the result is finished for it, and nothing of the later attempt is handed to it.
pub(crate) fn end_of_earlier_attempt(
    record: &QueryRecord,
    attempt: u32,
    page: u64,
    end: bool,
) -> Option<(PageReply, u32)> {
    if !end || record.attempt == attempt {
        return None;
    }
    let reply = PageReply {
        state: "FINISHED".into(),
        next_token: None,
        error: None,
        ..reply_from_record(record, page)
    };
    Some((reply, attempt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::manager::PageToken;

    #[test]
    fn page_tokens_name_their_attempt_and_the_end() {
        let parse = |text: &str| text.parse::<PageToken>();
        let token = |attempt, page, end| PageToken { attempt, page, end };
        assert_eq!(parse("7"), Ok(token(0, 7, false)));
        assert_eq!(parse("1.3"), Ok(token(1, 3, false)));
        assert_eq!(parse("1.3e"), Ok(token(1, 3, true)));
        assert_eq!(token(2, 5, true).to_string(), "2.5e");
        assert_eq!(token(2, 5, false).to_string(), "2.5");
        assert!(parse("1.x").is_err() && parse("e").is_err() && parse("1.3ee").is_err());
    }

    #[test]
    fn only_the_end_of_an_earlier_attempt_is_answered_as_finished() {
        let record = QueryRecord {
            attempt: 1,
            state: QueryState::Running,
            ..crate::query::record::sample("q")
        };
        let (reply, attempt) =
            end_of_earlier_attempt(&record, 0, 1, true).expect("the end of attempt 0");
        assert_eq!(attempt, 0);
        assert_eq!((reply.state.as_str(), reply.next_token), ("FINISHED", None));
        assert!(reply.rows.is_empty() && reply.error.is_none());
        assert!(
            end_of_earlier_attempt(&record, 0, 1, false).is_none(),
            "a page, not the end"
        );
        assert!(
            end_of_earlier_attempt(&record, 1, 1, true).is_none(),
            "the current attempt"
        );
    }
}
