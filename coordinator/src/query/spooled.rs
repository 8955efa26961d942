//! Pages of a finished query served from its result spool once its driver is gone: the
//! record names the spool when it holds every page, so any coordinator answers the rest of the
//! result, and removes the spool when the client has read the end.

use std::path::Path;

use shoal_engine::pages::PageReply;
use shoal_engine::spool;

use crate::node::Coordinator;
use crate::protocol::errors;
use crate::query::record::{QueryRecord, QueryState};
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
        // The client has the whole result.
        if let Err(e) = dir.delete_all().await {
            tracing::warn!(query = %record.id, spool = %url, error = %e, "cannot remove a result spool; the sweep removes it");
        }
        return Some(reply);
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
    if record.state != QueryState::Finished || token < record.pages {
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
/// of it once its client was done), failed, or run again, or finished without naming the
/// spool. The spools of running attempts stay. Returns how many were removed.
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
                QueryState::Failed => true,
                QueryState::Finished => r.spool.as_deref() != Some(dir.url().as_str()),
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
