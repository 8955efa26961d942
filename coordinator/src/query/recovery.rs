//! Keeping query records true when nodes die: drivers' progress reports, settling outcomes,
//! running a query again when its driver died before the client got a row, failing it when
//! rows were already delivered, and adopting queries whose coordinator died before handing
//! them to a driver.

use std::sync::Arc;
use std::time::Duration;

use shoal_engine::drive::{DriveState, ProgressReport};
use shoal_engine::driver::Outcome;
use shoal_engine::pages::{PageReply, PageSegment};
use shoal_proto::client::QueryError;
use shoal_state_store::{RaftRole, ReadConsistency};

use crate::error::CoordinatorError;
use crate::node::Coordinator;
use crate::protocol::errors;
use crate::query::admission;
use crate::query::dispatch;
use crate::query::lifecycle::{self, Transition};
use crate::query::outcome;
use crate::query::record::{self, QueryRecord};
use crate::query::replies::{answers_alone, reply_from_record, PAGE_WAIT};
use crate::query::spooled;
use crate::query::statements;
use crate::query::unclaimed;
use crate::registry;

/// A driver's report: progress while it runs, the outcome at the end. Reports of an earlier
/// run of the query, or about a query already settled, are taken and ignored.
pub async fn on_report(
    node: &Arc<Coordinator>,
    report: &ProgressReport,
) -> Result<(), CoordinatorError> {
    if report.state == DriveState::Lost {
        return retry_or_end(node, report).await;
    }
    if report.state != DriveState::Running {
        return outcome::end_as_reported(node, report).await.inspect_err(|e| {
            tracing::warn!(query = %report.query_id, driver = %report.driver_url, error = %e, "cannot record the outcome a driver reported; it reports it again");
        });
    }
    lifecycle::apply(&node.store, &report.query_id, Transition::Progress(report)).await?;
    Ok(())
}

/// The driver failed on a lost node before any row left it. The workers it could not reach get
/// no work until heard from again, and the query runs again on the others, if it only reads
/// and attempts remain; otherwise it fails with the driver's error.
async fn retry_or_end(
    node: &Arc<Coordinator>,
    report: &ProgressReport,
) -> Result<(), CoordinatorError> {
    let Some(record) = record::get_latest(&node.store, &report.query_id).await? else {
        return Ok(());
    };
    if record.attempt != report.attempt || record.state.is_done() {
        return Ok(());
    }
    let again = !record.delivered
        && statements::reads_only(&record.sql)
        && record.attempt < node.config.query_retry_attempts;
    if !again {
        return outcome::end_as_reported(node, report).await;
    }
    let Some(again) = retry(node, &record).await else {
        return Ok(());
    };
    tracing::warn!(query = %record.id, driver = %report.driver_url, attempt = again.attempt, unreachable = ?report.unreachable, error = ?report.error.as_ref().map(|e| &e.message), "the query failed on a lost node before delivering rows; running it again without it");
    node.workers.unreachable(&report.unreachable);
    start_retry(node, again).await;
    Ok(())
}

/// "Not yet": the client asks for `token` again.
fn not_yet(mut reply: PageReply, token: u64) -> PageReply {
    reply.rows.clear();
    reply.segments.clear();
    reply.next_token = Some(token);
    reply.state = "RUNNING".into();
    reply
}

/// A page the driver produced is on its way to the client. Before the first rows leave, the
/// record notes that rows were delivered, so the query is never run again after that; unless
/// the reply hands out every row of a query that only reads, inline: the client's next
/// request is for the end only, answered as finished even after a run of the query after
/// its driver's death (before the record said it ended), so nothing reaches it twice, and
/// the write is saved.
pub async fn deliver(
    node: &Coordinator,
    record: &QueryRecord,
    token: u64,
    reply: PageReply,
) -> Result<PageReply, QueryError> {
    if record.delivered || !reply.has_rows() || whole_inline_result(record, &reply) {
        return Ok(reply);
    }
    let noted = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::Delivered {
            attempt: record.attempt,
            driver_url: &record.driver_url,
        },
    )
    .await;
    match noted {
        Ok(Some(_)) => Ok(reply),
        Ok(None) => match record::get(&node.store, &record.id).await {
            Ok(Some(now)) if now.attempt == record.attempt && now.delivered => Ok(reply),
            _ => Ok(not_yet(reply, token)),
        },
        Err(e) => {
            tracing::debug!(query = %record.id, error = %e, "cannot note the first delivered rows yet");
            Ok(not_yet(reply, token))
        }
    }
}

/// `reply` hands out the whole result of a query that only reads, with no segment for the
/// client to download (the spool of an attempt run again would go, and with it such a
/// segment).
fn whole_inline_result(record: &QueryRecord, reply: &PageReply) -> bool {
    reply.last_rows
        && reply.row_offset == 0
        && reply.error.is_none()
        && reply
            .segments
            .iter()
            .all(|s| matches!(s, PageSegment::Inline { .. }))
        && statements::reads_only(&record.sql)
}

/// Whether the node at `url`, in the incarnation `incarnation` (its start time; 0 where
/// unknown), is alive: a node that restarted since is a new one that has none of the old
/// one's queries.
async fn alive(node: &Coordinator, url: &str, incarnation: u64) -> bool {
    let same = |live: u64| incarnation == 0 || live <= incarnation;
    if url == node.internal_url {
        return same(node.started_at_ms);
    }
    if node.started.elapsed() < node.config.worker_timeout {
        return true;
    }
    if let Some(worker) = node
        .workers
        .live()
        .iter()
        .find(|w| w.heartbeat.internal_url == url)
    {
        return same(worker.heartbeat.started_at_ms);
    }
    let member = node
        .store
        .recent_status()
        .await
        .members
        .into_iter()
        .find(|m| m.url == url && m.role != RaftRole::Unknown);
    let Some(member) = member else {
        return false;
    };
    match registry::get(&node.store, member.id, ReadConsistency::Local).await {
        Ok(Some(registered)) => same(registered.started_at_ms),
        _ => true,
    }
}

/// The driver of `record` did not answer for page `token`. If it is alive, the client asks
/// again; if it is dead, the query runs again or fails.
pub async fn driver_silent(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    token: u64,
) -> Result<PageReply, QueryError> {
    let local_driver_gone = record.driver_url == node.internal_url;
    if local_driver_gone || !alive(node, &record.driver_url, record.driver_incarnation).await {
        return answer_after_loss(node, record, token).await;
    }
    let _ = record::wait_for_change(&node.store, &record.id, PAGE_WAIT).await;
    Ok(reply_from_record(record, token))
}

/// The driver of `record` answers but does not know the query: it restarted, it let go of the
/// query just now, or the query is still on its way to it (the record names a driver before
/// it is sent the query). Unless the record settles meanwhile or the driver gets the query
/// within a drive request's timeout, the query is lost there.
pub async fn driver_forgot(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    token: u64,
) -> Result<PageReply, QueryError> {
    let give_up = tokio::time::Instant::now() + node.rpc_timeout() + PAGE_WAIT;
    loop {
        let now = record::get(&node.store, &record.id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| record.clone());
        if answers_alone(&now, token)
            || now.attempt != record.attempt
            || now.driver_url != record.driver_url
        {
            return Ok(reply_from_record(&now, token));
        }
        let has = unclaimed::has_attempt(node, &record.driver_url, &record.id, record.attempt);
        if has.await == Some(true) {
            // It has the query now: the client asks again.
            return Ok(reply_from_record(&now, token));
        }
        if tokio::time::Instant::now() >= give_up {
            return answer_after_loss(node, &now, token).await;
        }
        let _ = record::wait_for_change(&node.store, &record.id, Duration::from_millis(200)).await;
    }
}

/// Recover `record` from the loss of its driver and answer the page request from the result.
async fn answer_after_loss(
    node: &Arc<Coordinator>,
    record: &QueryRecord,
    token: u64,
) -> Result<PageReply, QueryError> {
    // A finished result in its spool outlives its driver: the rest comes from there.
    let latest = record::get(&node.store, &record.id).await.ok().flatten();
    if let Some(reply) = match &latest {
        Some(now) if now.attempt == record.attempt => spooled::page(node, now, token).await,
        _ => None,
    } {
        return Ok(reply);
    }
    after_driver_loss(node, record, token > 0).await;
    let now = record::get(&node.store, &record.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| record.clone());
    Ok(reply_from_record(&now, token))
}

/// `record`'s driver is dead: run the query again if no row reached the client and attempts
/// remain, else fail it.
async fn after_driver_loss(node: &Arc<Coordinator>, record: &QueryRecord, delivered: bool) {
    let delivered = delivered || record.delivered;
    let reads_only = statements::reads_only(&record.sql);
    if !delivered && reads_only && record.attempt < node.config.query_retry_attempts {
        if let Some(again) = retry(node, record).await {
            tracing::warn!(query = %again.id, driver = %record.driver_url, attempt = again.attempt, "the query's driver died before delivering rows; running the query again");
            start_retry(node, again).await;
        }
        return;
    }
    if !reads_only && statements::writes_with_marker(&record.sql) {
        return settle_write(node, record).await;
    }
    let message = if !reads_only {
        format!(
            "the node running statement {} ({}) died; whether its change took effect is unknown, check before running it again",
            record.id, record.driver_url
        )
    } else if delivered {
        format!(
            "the node driving query {} ({}) died after rows were delivered; run the query again",
            record.id, record.driver_url
        )
    } else {
        format!(
            "the node driving query {} ({}) died and no attempts are left (query.retry-attempts = {})",
            record.id, record.driver_url, node.config.query_retry_attempts
        )
    };
    tracing::warn!(query = %record.id, driver = %record.driver_url, "{message}");
    let error = errors::driver_lost(message);
    let failed = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::DriverLost {
            attempt: record.attempt,
            error: &error,
        },
    )
    .await;
    if let Ok(Some(_)) = failed {
        outcome::give_back(node, &record.id).await;
    }
}

/// The driver of an INSERT or CREATE TABLE AS died: settle whether its write committed (its
/// marker is fenced, so a commit still on its way can never apply) and tell the client which,
/// not a guess. Only when even that cannot be read does the outcome stay unknown.
async fn settle_write(node: &Arc<Coordinator>, record: &QueryRecord) {
    let settled =
        crate::catalog::commit::settle_lost(&node.store, &record.id, record.attempt).await;
    let failed = |message: String| Outcome {
        rows: 0,
        bytes: 0,
        pages: 0,
        error: Some(errors::driver_lost(message)),
        spool: None,
    };
    let (outcome, what) = match settled {
        Ok(Some(rows)) => (
            Outcome {
                rows,
                bytes: 0,
                pages: 0,
                error: None,
                spool: None,
            },
            "it committed",
        ),
        Ok(None) => (
            failed(format!(
                "the node running statement {} ({}) died before its change was committed; it did not take effect",
                record.id, record.driver_url
            )),
            "it did not commit",
        ),
        Err(e) => (
            failed(format!(
                "the node running statement {} ({}) died; whether its change took effect is unknown ({e}), check before running it again",
                record.id, record.driver_url
            )),
            "its outcome is unknown",
        ),
    };
    tracing::warn!(query = %record.id, driver = %record.driver_url, "the driver of a write died; {what}");
    let ended = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::WriteSettled {
            attempt: record.attempt,
            outcome: &outcome,
        },
    )
    .await;
    if let Ok(Some(_)) = ended {
        outcome::give_back(node, &record.id).await;
    }
}

/// Make `record`'s next attempt in its record (waiting, no driver, adopted by this
/// coordinator), unless someone else changed it first or rows were delivered.
async fn retry(node: &Coordinator, record: &QueryRecord) -> Option<QueryRecord> {
    let again = lifecycle::apply(
        &node.store,
        &record.id,
        Transition::Retried {
            attempt: record.attempt,
            driver_url: &record.driver_url,
            owner: (node.id(), node.started_at_ms),
        },
    )
    .await;
    again.ok().flatten()
}

/// Start the attempt `again` made by [`retry`], keeping the query's admission slot.
async fn start_retry(node: &Arc<Coordinator>, again: QueryRecord) {
    if let Err(e) = admission::hand_over(
        &node.store,
        admission::limits(node),
        &again.id,
        admission::holder(node),
    )
    .await
    {
        tracing::warn!(query = %again.id, error = %e.message, "the admission slot of a re-run stays with its previous holder");
    }
    let session = outcome::session_of(&again);
    dispatch::start(node.clone(), again, session, false);
}

/// One round of the Raft leader's care for queries: adopt queries of dead coordinators that
/// never reached a driver, and recover queries whose driver died or does not have them.
pub async fn sweep(node: &Arc<Coordinator>) {
    if node.started.elapsed() < node.config.worker_timeout {
        return;
    }
    let records = match record::list(&node.store).await {
        Ok(records) => records,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list queries to look after");
            return;
        }
    };
    let live = registry::live_starts(&node.store).await;
    // The owner is gone when it is no member that answers, or restarted since it took the query.
    let owner_gone = |q: &QueryRecord| {
        let restarted = |live: u64| q.owner_incarnation != 0 && live > q.owner_incarnation;
        if q.coordinator == node.id() {
            return restarted(node.started_at_ms);
        }
        match live.get(&q.coordinator) {
            None => true,
            Some(start) => start.is_some_and(restarted),
        }
    };
    let mut driven = Vec::new();
    for query in records.into_iter().filter(|r| !r.state.is_done()) {
        if query.driver_url.is_empty() {
            if owner_gone(&query) {
                adopt(node, &query).await;
            }
        } else if !alive(node, &query.driver_url, query.driver_incarnation).await {
            after_driver_loss(node, &query, false).await;
        } else {
            driven.push(query);
        }
    }
    // Longer than a drive request may be on its way to the driver the record names.
    let grace = node.rpc_timeout() * 2;
    for query in node.unclaimed.lost(node, &driven, grace).await {
        tracing::warn!(query = %query.id, driver = %query.driver_url, attempt = query.attempt, "the driver of a running query does not have it");
        after_driver_loss(node, &query, false).await;
    }
}

/// Take over a query whose coordinator died before handing it to a driver.
async fn adopt(node: &Arc<Coordinator>, query: &QueryRecord) {
    let adopted = lifecycle::apply(
        &node.store,
        &query.id,
        Transition::Adopted {
            from: (query.coordinator, query.owner_incarnation),
            owner: (node.id(), node.started_at_ms),
        },
    )
    .await;
    if let Ok(Some(adopted)) = adopted {
        tracing::info!(query = %adopted.id, from = query.coordinator, "adopting a query whose coordinator died before it ran");
        let session = outcome::session_of(&adopted);
        dispatch::start(node.clone(), adopted, session, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_read_only_result_handed_out_inline_goes_without_a_delivered_mark() {
        let record = |sql: &str| QueryRecord {
            sql: sql.to_string(),
            ..record::sample("q")
        };
        let whole = PageReply {
            rows: vec![vec![serde_json::json!(1)]],
            next_token: Some(1),
            last_rows: true,
            ..crate::query::replies::reply_from_record(&record("SELECT 1"), 0)
        };
        assert!(whole_inline_result(&record("SELECT 1"), &whole));
        // Statements that write keep the mark.
        assert!(!whole_inline_result(
            &record("INSERT INTO t VALUES (1)"),
            &whole
        ));
        let later = PageReply {
            row_offset: 4096,
            ..whole.clone()
        };
        assert!(
            !whole_inline_result(&record("SELECT 1"), &later),
            "not from the first row"
        );
        let more = PageReply {
            last_rows: false,
            ..whole.clone()
        };
        assert!(
            !whole_inline_result(&record("SELECT 1"), &more),
            "more rows follow"
        );
    }
}
