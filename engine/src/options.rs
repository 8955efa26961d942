//! What a client's session changes about how its query runs (time limits, memory, time
//! zone, parallelism), carried to the query's driver with the query and applied there.

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;

use crate::errors;

/// A time limit, and how the client wrote it (for the message when it is exceeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeLimit {
    pub ms: u64,
    pub shown: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryOptions {
    /// How long the query may take from its submission, queueing included
    /// (`query_max_run_time`).
    #[serde(default)]
    pub max_run: Option<TimeLimit>,
    /// How long its execution may take, from the start at its driver
    /// (`query_max_execution_time`).
    #[serde(default)]
    pub max_execution: Option<TimeLimit>,
    /// The memory its operators may hold at its driver (`query_max_memory_per_node`).
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
    /// The session's time zone: an IANA name or an offset such as `+05:30`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The session's user (`current_user`).
    #[serde(default)]
    pub user: Option<String>,
    /// Partitions each stage runs in (`task_concurrency`: DataFusion's target partitions).
    #[serde(default)]
    pub target_partitions: Option<usize>,
}

/// When a driver gives up on a query, and the error it fails with then.
#[derive(Debug, Clone)]
pub struct Deadline {
    pub at: tokio::time::Instant,
    pub error: QueryError,
}

impl QueryOptions {
    /// The earlier of the query's time limits for a driver starting now, the query having
    /// been submitted at `submitted_ms` (wall clock, milliseconds since the epoch).
    pub fn deadline(&self, submitted_ms: u64, now_ms: u64) -> Option<Deadline> {
        let now = tokio::time::Instant::now();
        let run = self.max_run.as_ref().map(|limit| {
            let left = (submitted_ms + limit.ms).saturating_sub(now_ms);
            Deadline {
                at: now + std::time::Duration::from_millis(left),
                error: errors::exceeded_time_limit(format!(
                    "Query exceeded maximum time limit of {}",
                    limit.shown
                )),
            }
        });
        let execution = self.max_execution.as_ref().map(|limit| Deadline {
            at: now + std::time::Duration::from_millis(limit.ms),
            error: errors::exceeded_time_limit(format!(
                "Query exceeded the maximum execution time limit of {}",
                limit.shown
            )),
        });
        match (run, execution) {
            (Some(run), Some(execution)) => Some(if execution.at < run.at {
                execution
            } else {
                run
            }),
            (run, execution) => run.or(execution),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_earlier_limit_counts_and_run_time_includes_the_wait_before() {
        let limit = |ms| TimeLimit {
            ms,
            shown: format!("{ms}ms"),
        };
        assert!(QueryOptions::default().deadline(0, 0).is_none());
        let options = QueryOptions {
            max_run: Some(limit(10_000)),
            max_execution: Some(limit(5_000)),
            ..QueryOptions::default()
        };
        let now = tokio::time::Instant::now();
        // Submitted 8 s ago: 2 s of run time are left, less than the 5 s of execution.
        let deadline = options.deadline(1_000, 9_000).expect("a deadline");
        assert!(deadline.at <= now + std::time::Duration::from_millis(2_100));
        assert_eq!(deadline.error.error_name, "EXCEEDED_TIME_LIMIT");
        assert!(deadline
            .error
            .message
            .contains("maximum time limit of 10000ms"));
        // Submitted just now: execution ends first.
        let deadline = options.deadline(9_000, 9_000).expect("a deadline");
        assert!(deadline.error.message.contains("execution time limit"));
    }
}
