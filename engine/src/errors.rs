//! Query errors as the Trino protocol reports them: a message, an error name and code in the
//! style of Trino's standard error codes, the error type, and the location of syntax errors.

use shoal_proto::client::{ErrorLocation, QueryError};

pub(crate) fn error(
    message: String,
    code: i64,
    name: &str,
    kind: &str,
    location: Option<ErrorLocation>,
) -> QueryError {
    QueryError {
        message,
        sql_state: None,
        error_code: code,
        error_name: name.to_string(),
        error_type: kind.to_string(),
        error_location: location,
        failure_info: None,
    }
}

pub fn user(message: impl Into<String>) -> QueryError {
    error(message.into(), 0, "GENERIC_USER_ERROR", "USER_ERROR", None)
}

pub fn syntax(message: impl Into<String>, location: Option<ErrorLocation>) -> QueryError {
    error(message.into(), 1, "SYNTAX_ERROR", "USER_ERROR", location)
}

pub fn cancelled() -> QueryError {
    error(
        "Query was canceled".into(),
        3,
        "USER_CANCELED",
        "USER_ERROR",
        None,
    )
}

pub fn abandoned() -> QueryError {
    error(
        "Query was abandoned: its client stopped asking for results".into(),
        2,
        "ABANDONED_QUERY",
        "USER_ERROR",
        None,
    )
}

pub fn queue_full(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        131074,
        "QUERY_QUEUE_FULL",
        "INSUFFICIENT_RESOURCES",
        None,
    )
}

/// The query ran longer than `query_max_run_time` or `query_max_execution_time` allow.
pub fn exceeded_time_limit(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        131075,
        "EXCEEDED_TIME_LIMIT",
        "INSUFFICIENT_RESOURCES",
        None,
    )
}

/// The query's operators needed more memory than `query_max_memory_per_node` allows.
pub fn exceeded_local_memory_limit(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        131079,
        "EXCEEDED_LOCAL_MEMORY_LIMIT",
        "INSUFFICIENT_RESOURCES",
        None,
    )
}

/// A session property that does not exist, or a value it does not take.
pub fn invalid_session_property(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        14,
        "INVALID_SESSION_PROPERTY",
        "USER_ERROR",
        None,
    )
}

/// The query was killed by `system.runtime.kill_query`.
pub fn administratively_killed(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        38,
        "ADMINISTRATIVELY_KILLED",
        "USER_ERROR",
        None,
    )
}

/// Whether `error` is a failure of the cluster (a node lost, an internal error) rather than
/// of the query itself: before any row left, such a query may run again.
pub fn is_retryable(error: &QueryError) -> bool {
    error.error_type == "INTERNAL_ERROR"
}

pub fn not_found(name: &str, message: impl Into<String>) -> QueryError {
    let code = match name {
        "TABLE_NOT_FOUND" => 46,
        "COLUMN_NOT_FOUND" => 47,
        "SCHEMA_NOT_FOUND" => 48,
        "CATALOG_NOT_FOUND" => 44,
        _ => 5,
    };
    error(message.into(), code, name, "USER_ERROR", None)
}

pub fn already_exists(name: &str, message: impl Into<String>) -> QueryError {
    let code = if name == "SCHEMA_ALREADY_EXISTS" {
        51
    } else {
        52
    };
    error(message.into(), code, name, "USER_ERROR", None)
}

/// Parameters that do not fit the statement (Trino's INVALID_PARAMETER_USAGE).
pub fn invalid_parameter_usage(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        0,
        "INVALID_PARAMETER_USAGE",
        "USER_ERROR",
        None,
    )
}

/// A user error Trino names `name` whose number Shoal does not carry (reported as 0, like
/// GENERIC_USER_ERROR): clients match the name.
pub fn named_user_error(name: &str, message: impl Into<String>) -> QueryError {
    error(message.into(), 0, name, "USER_ERROR", None)
}

pub fn permission_denied(message: impl Into<String>) -> QueryError {
    error(message.into(), 4, "PERMISSION_DENIED", "USER_ERROR", None)
}

pub fn not_supported(message: impl Into<String>) -> QueryError {
    error(message.into(), 13, "NOT_SUPPORTED", "USER_ERROR", None)
}

pub fn internal(message: &str) -> QueryError {
    error(
        message.to_string(),
        65536,
        "GENERIC_INTERNAL_ERROR",
        "INTERNAL_ERROR",
        None,
    )
}

/// This coordinator is draining (backup mode): the client should use another one.
pub fn draining(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        65545,
        "SERVER_SHUTTING_DOWN",
        "INTERNAL_ERROR",
        None,
    )
}

pub fn unavailable(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        65540,
        "SERVER_STARTING_UP",
        "INTERNAL_ERROR",
        None,
    )
}

/// The node driving the query died after the client had received rows, so the query cannot be
/// run again without delivering rows twice.
pub fn driver_lost(message: impl Into<String>) -> QueryError {
    error(
        message.into(),
        65542,
        "REMOTE_HOST_GONE",
        "INTERNAL_ERROR",
        None,
    )
}

/// The line and column of a parser message such as "... at Line: 1, Column: 8".
pub fn location_in(message: &str) -> Option<ErrorLocation> {
    let after = &message[message.find("Line: ")? + "Line: ".len()..];
    let line: u64 = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let after = &after[after.find("Column: ")? + "Column: ".len()..];
    let column: u64 = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(ErrorLocation {
        line_number: line,
        column_number: column,
    })
}

/// The position just after the last character of `sql`.
pub(crate) fn end_of(sql: &str) -> ErrorLocation {
    let line_number = sql.lines().count().max(1) as u64;
    let last = sql.lines().last().unwrap_or_default();
    ErrorLocation {
        line_number,
        column_number: last.chars().count() as u64 + 1,
    }
}

pub use crate::classify::{from_datafusion, planning_error};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_locations() {
        let location =
            location_in("Expected: an expression, found: FROM at Line: 2, Column: 8").unwrap();
        assert_eq!((location.line_number, location.column_number), (2, 8));
        assert!(location_in("no location here").is_none());
    }
}
