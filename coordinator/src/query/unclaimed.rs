//! Running queries whose driver is alive but does not have them: their owner died between
//! naming the driver in the record and sending it the query, or the driver let go of an
//! outcome that no record took. The Raft leader asks each driver, in one request per driver
//! and round, which attempt of its recorded queries it has; a query missing from its driver
//! for a grace period (longer than a drive request may be on its way) is lost there.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use shoal_engine::drive::paths;

use crate::node::Coordinator;
use crate::query::record::QueryRecord;

/// Queries found missing from their driver: since when, for which attempt and driver.
#[derive(Default)]
pub struct Unclaimed {
    missing: Mutex<HashMap<String, Missing>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Missing {
    attempt: u32,
    driver_url: String,
    since: Instant,
}

impl Unclaimed {
    /// Of `running` (records not done, each naming a live driver), those their driver has not
    /// had, in the same attempt, for `grace` or longer.
    pub async fn lost(
        &self,
        node: &Coordinator,
        running: &[QueryRecord],
        grace: Duration,
    ) -> Vec<QueryRecord> {
        let mut by_driver: HashMap<&str, Vec<&QueryRecord>> = HashMap::new();
        for record in running {
            by_driver
                .entry(&record.driver_url)
                .or_default()
                .push(record);
        }
        let asked =
            join_all(by_driver.into_iter().map(|(url, records)| async move {
                (attempts(node, url, &records).await, records)
            }))
            .await;
        let now = Instant::now();
        let Ok(mut missing) = self.missing.lock() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut lost = Vec::new();
        for (attempts, records) in asked {
            // A driver that does not answer is judged by liveness alone.
            let Some(attempts) = attempts else { continue };
            for (record, there) in records.into_iter().zip(attempts) {
                if there == Some(record.attempt) {
                    continue;
                }
                seen.insert(record.id.as_str());
                let entry = Missing {
                    attempt: record.attempt,
                    driver_url: record.driver_url.clone(),
                    since: now,
                };
                let first = missing.entry(record.id.clone()).or_insert(entry.clone());
                if first.attempt != entry.attempt || first.driver_url != entry.driver_url {
                    *first = entry;
                } else if now.duration_since(first.since) >= grace {
                    lost.push(record.clone());
                }
            }
        }
        missing.retain(|id, _| seen.contains(id.as_str()));
        for record in &lost {
            missing.remove(&record.id);
        }
        lost
    }
}

/// Whether `url`'s driver has attempt `attempt` of query `id`; None when it does not answer.
pub async fn has_attempt(node: &Coordinator, url: &str, id: &str, attempt: u32) -> Option<bool> {
    let ids = [id.to_string()];
    let attempts = ask(node, url, &ids).await?;
    Some(attempts.first().copied().flatten() == Some(attempt))
}

/// The attempt `url`'s driver has of each of `records`; None when it does not answer.
async fn attempts(
    node: &Coordinator,
    url: &str,
    records: &[&QueryRecord],
) -> Option<Vec<Option<u32>>> {
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ask(node, url, &ids).await
}

async fn ask(node: &Coordinator, url: &str, ids: &[String]) -> Option<Vec<Option<u32>>> {
    if url == node.internal_url {
        return Some(node.queries.attempts(ids));
    }
    match node
        .rpc
        .call::<_, Vec<Option<u32>>>(url, paths::DRIVING, ids, node.rpc_timeout())
        .await
    {
        Ok(attempts) if attempts.len() == ids.len() => Some(attempts),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(driver = %url, error = %e, "cannot ask a driver which queries it has");
            None
        }
    }
}
