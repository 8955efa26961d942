//! How an attempt of a query ended, recorded: by its driver's report, by this coordinator's
//! own driver, or settled as failed; then its admission slot goes back and the history is
//! trimmed when it is time.

use shoal_engine::drive::ProgressReport;
use shoal_engine::driver::Outcome;
use shoal_proto::client::QueryError;

use crate::error::CoordinatorError;
use crate::node::Coordinator;
use crate::protocol::session::{ClientSession, Family};
use crate::query::admission;
use crate::query::history;
use crate::query::lifecycle::{self, Transition};
use crate::query::record::QueryRecord;

/// The session a query was submitted with, as far as its record keeps it.
pub fn session_of(record: &QueryRecord) -> ClientSession {
    ClientSession {
        family: Family::Trino,
        user: record.user.clone(),
        source: record.source.clone(),
        catalog: record.catalog.clone(),
        schema: record.schema.clone(),
        properties: record.properties.clone(),
        time_zone: record.time_zone.clone(),
        transaction_id: None,
        prepared: Default::default(),
        encoding: record.encoding,
    }
}

/// Record the end of run `attempt` of query `id`, driven at `driver_url`, and free its slot.
/// False when the record declined it (another attempt or driver, or settled already); an
/// error when it could not be written, so that whoever reports it tries again.
pub async fn end(
    node: &Coordinator,
    id: &str,
    attempt: u32,
    driver_url: &str,
    outcome: Outcome,
) -> Result<bool, CoordinatorError> {
    let ended = lifecycle::apply(
        &node.store,
        id,
        Transition::Ended {
            attempt,
            driver_url,
            outcome: &outcome,
        },
    )
    .await;
    match ended {
        Ok(Some(record)) => {
            let ended_ms = record.ended_ms.unwrap_or(record.created_ms);
            node.metrics
                .observe_query(ended_ms.saturating_sub(record.created_ms) as f64 / 1000.0);
            give_back(node, id).await;
            history::ended(node).await;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(e) => {
            tracing::warn!(query = %id, error = %e, "cannot record the end of a query");
            Err(e)
        }
    }
}

/// [`end`] for an outcome this coordinator's own driver produced: tried again (for up
/// to `within`) until the record has it, since nobody else will report it.
pub async fn end_here(
    node: &Coordinator,
    id: &str,
    attempt: u32,
    driver_url: &str,
    outcome: Outcome,
    within: std::time::Duration,
) {
    let give_up = tokio::time::Instant::now() + within;
    let mut pause = std::time::Duration::from_millis(50);
    while end(node, id, attempt, driver_url, outcome.clone())
        .await
        .is_err()
    {
        if tokio::time::Instant::now() >= give_up {
            tracing::warn!(query = %id, "gave up recording the end of a query; the sweep settles it");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// Settle a query that is not running anywhere as failed with `error`.
pub async fn end_failed(node: &Coordinator, record: &QueryRecord, error: QueryError) {
    let driver_url = record.driver_url.clone();
    let outcome = Outcome {
        rows: record.rows,
        bytes: record.bytes,
        pages: record.pages,
        error: Some(error),
        spool: None,
    };
    let _ = end(node, &record.id, record.attempt, &driver_url, outcome).await;
}

/// Record the outcome a driver reported; an error (for the driver to try again) when the
/// record could not be written. A failpoint lets tests lose the write.
pub async fn end_as_reported(
    node: &Coordinator,
    report: &ProgressReport,
) -> Result<(), CoordinatorError> {
    fail::fail_point!("query-outcome-not-recorded", |_| {
        Err(CoordinatorError::Internal(
            "failpoint query-outcome-not-recorded".into(),
        ))
    });
    let outcome = Outcome {
        rows: report.rows,
        bytes: report.bytes,
        pages: report.pages,
        error: report.error.clone(),
        spool: report.spool.clone(),
    };
    end(
        node,
        &report.query_id,
        report.attempt,
        &report.driver_url,
        outcome,
    )
    .await?;
    Ok(())
}

/// Give back an ended query's admission slot; one that could not be given back is freed by
/// the leader's sweep of slots of ended queries.
pub async fn give_back(node: &Coordinator, id: &str) {
    if let Err(e) = admission::release(&node.store, admission::limits(node), id).await {
        tracing::warn!(query = %id, error = %e.message, "admission slot not given back; the leader's sweep frees it");
    }
}

/// Fail `record`'s attempt with `error` (`system.runtime.kill_query`) and give its slot back;
/// false when it had ended already. Its driver is stopped by the caller.
pub async fn kill(
    node: &Coordinator,
    record: &QueryRecord,
    error: &QueryError,
) -> Result<bool, CoordinatorError> {
    let killed = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::Killed {
            attempt: record.attempt,
            error,
        },
    )
    .await?;
    if killed.is_none() {
        return Ok(false);
    }
    give_back(node, &record.id).await;
    history::ended(node).await;
    Ok(true)
}
