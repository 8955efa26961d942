//! Pages of a finished query served from its result spool once its driver is gone: the
//! record names the spool when it holds every page, so any coordinator answers the rest of the
//! result, and removes the spool when the client has read the end. For a client of the
//! spooling protocol the rest of the result is handed out as segments, which it downloads
//! from any coordinator and acknowledges ([`segment_dir`]).

use std::path::Path;

use shoal_engine::pages::{PageReply, PageSegment};
use shoal_engine::spool;
use shoal_storage::Location;

use crate::node::Coordinator;
use crate::protocol::errors;
use crate::query::record::{now_ms, QueryRecord, QueryState};
use crate::query::replies::reply_from_record;

/// The reply for page `token` of `record` from its spool; None when the record names no
/// spool (the result was one page, or the query did not finish).
pub async fn page(node: &Coordinator, record: &QueryRecord, token: u64) -> Option<PageReply> {
    let url = record.spool.as_ref()?;
    if record.state != QueryState::Finished {
        return None;
    }
    let mut reply = reply_from_record(record, token);
    let dir = match node.storage.location(url, Path::new("/")) {
        Ok(dir) => dir,
        Err(e) => return Some(unreadable(reply, record, &e.to_string())),
    };
    if token >= record.pages {
        if record.encoding.is_some() {
            // Its segments are the client's: acknowledgements and the sweep remove them.
            return Some(reply);
        }
        // The client has the whole result.
        if let Err(e) = dir.delete_all().await {
            tracing::warn!(query = %record.id, spool = %url, error = %e, "cannot remove a result spool; the sweep removes it");
        }
        return Some(reply);
    }
    if record.encoding.is_some() {
        return Some(match segments_from(&dir, token, record.pages).await {
            Ok((columns, segments)) => {
                reply.columns = Some(columns);
                reply.segments = segments;
                reply.next_token = Some(record.pages);
                reply.state = "RUNNING".into();
                tracing::debug!(query = %record.id, token, "handed out the rest of a result as spooled segments");
                reply
            }
            Err(e) => unreadable(reply, record, &e.message),
        });
    }
    let read = async {
        let columns = spool::read_columns(&dir).await?;
        let rows = spool::read_page(&dir, token).await?;
        Ok::<_, shoal_proto::client::QueryError>((columns, rows))
    };
    match read.await {
        Ok((columns, rows)) => {
            reply.columns = Some(columns);
            reply.rows = rows;
            reply.next_token = Some(token + 1);
            reply.state = "RUNNING".into();
            tracing::debug!(query = %record.id, token, "served a page from the result spool");
            Some(reply)
        }
        Err(e) => Some(unreadable(reply, record, &e.message)),
    }
}

/// The client read the end of `record`'s result: remove its spool, if it has one, in the
/// background.
pub fn read_to_the_end(node: &Coordinator, record: &QueryRecord, token: u64) {
    let Some(url) = record.spool.clone() else {
        return;
    };
    if record.state != QueryState::Finished || token < record.pages || record.encoding.is_some() {
        return;
    }
    let storage = node.storage.clone();
    tokio::spawn(async move {
        let removed = match storage.location(&url, Path::new("/")) {
            Ok(dir) => dir
                .delete_all()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = removed {
            tracing::warn!(spool = %url, error = %e, "cannot remove a result spool; the sweep removes it");
        }
    });
}

/// The columns and the segments `from..pages` of the spool at `dir`, all of them.
async fn segments_from(
    dir: &Location,
    from: u64,
    pages: u64,
) -> Result<(Vec<shoal_proto::client::Column>, Vec<PageSegment>), shoal_proto::client::QueryError> {
    let columns = spool::read_columns(dir).await?;
    let segments = spool::list_segments(dir, from).await?;
    let complete = segments.len() as u64 == pages.saturating_sub(from)
        && segments
            .iter()
            .zip(from..)
            .all(|(segment, token)| segment.name.token == token);
    if !complete {
        return Err(shoal_engine::errors::internal(&format!(
            "segments {from} to {pages} are not all in {}",
            dir.url()
        )));
    }
    Ok((
        columns,
        segments.into_iter().map(PageSegment::Spooled).collect(),
    ))
}

/// Where attempt `attempt` of query `id` keeps its segments, for a client that knows the
/// query's slug (the secret in its URIs); None for an unknown query or a wrong slug.
pub async fn segment_dir(
    node: &Coordinator,
    id: &str,
    slug: &str,
    attempt: u32,
) -> Result<Option<Location>, String> {
    let record = match crate::query::record::get(&node.store, id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !shoal_proto::same_secret(record.slug.as_bytes(), slug.as_bytes()) {
        return Ok(None);
    }
    let url = match &record.spool {
        Some(url) if record.attempt == attempt => url.clone(),
        _ => match crate::query::dispatch::spool_of(node, id, attempt) {
            Some(url) => url,
            None => return Ok(None),
        },
    };
    node.storage
        .location(&url, Path::new("/"))
        .map(Some)
        .map_err(|e| e.to_string())
}

fn unreadable(mut reply: PageReply, record: &QueryRecord, reason: &str) -> PageReply {
    tracing::warn!(query = %record.id, %reason, "the result spool of a query whose driver is gone cannot be read");
    reply.state = "FAILED".into();
    reply.next_token = None;
    reply.error = Some(errors::driver_lost(format!(
        "the node driving query {} ({}) died and its spooled result cannot be read: {reason}",
        record.id, record.driver_url
    )));
    reply
}

/// Remove the spools nobody will read: of attempts whose record is gone (the history let go
/// of it once its client was done), run again, failed (unless read as segments), or
/// finished without naming the spool; and of queries read as segments, finished or failed,
/// once every segment was acknowledged or `query.spooled-segment-ttl` after the query
/// ended. The spools of running attempts stay.
/// Returns how many were removed.
pub async fn sweep(node: &Coordinator) -> usize {
    let Some(root) = &node.spool_root else {
        return 0;
    };
    let names = match root.list_dirs().await {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the result spools");
            return 0;
        }
    };
    let mut removed = 0;
    for name in names {
        let Some((id, attempt)) = spool::parse_spool_name(&name) else {
            continue;
        };
        let record = match crate::query::record::get(&node.store, id).await {
            Ok(record) => record,
            Err(_) => continue,
        };
        let Ok(dir) = root.child(&name) else {
            continue;
        };
        let stale = match &record {
            None => true,
            Some(r) if r.attempt != attempt => true,
            Some(r) => match r.state {
                QueryState::Failed if r.encoding.is_none() => true,
                QueryState::Finished if r.spool.as_deref() != Some(dir.url().as_str()) => true,
                // Read as segments: the client may still download those it was handed, of
                // a finished query or of one that failed after handing them out.
                QueryState::Finished | QueryState::Failed if r.encoding.is_some() => {
                    let ttl = node.config.spooled_segment_ttl.as_millis() as u64;
                    let expired = r.ended_ms.is_some_and(|ended| ended + ttl < now_ms());
                    expired
                        || spool::list_segments(&dir, 0)
                            .await
                            .is_ok_and(|left| left.is_empty())
                }
                QueryState::Finished | QueryState::Failed => false,
                QueryState::Queued | QueryState::Dispatching | QueryState::Running => false,
            },
        };
        if stale {
            match dir.delete_all().await {
                Ok(_) => removed += 1,
                Err(e) => tracing::warn!(spool = %name, error = %e, "cannot remove a result spool"),
            }
        }
    }
    removed
}
