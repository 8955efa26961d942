//! Reading the seed directory over time: a seed is live while the reader keeps seeing its
//! heartbeat counter change; wall clocks of other hosts are never compared with ours.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::seed::{Seed, SeedRole, SeedStore};

/// A seed the reader currently takes as live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSeed {
    pub seed: Seed,
    /// The reader has seen this seed's heartbeat change, so its owner was alive recently.
    /// A seed seen only once may be a leftover of a member that died.
    pub confirmed: bool,
}

struct Observation {
    heartbeat: u64,
    changed_at: Instant,
    confirmed: bool,
}

/// Follows one cluster's seed directory.
pub struct SeedWatcher {
    store: SeedStore,
    observed: HashMap<(SeedRole, u64), Observation>,
    warned: HashSet<String>,
}

impl SeedWatcher {
    pub fn new(store: SeedStore) -> Self {
        SeedWatcher {
            store,
            observed: HashMap::new(),
            warned: HashSet::new(),
        }
    }

    pub fn store(&self) -> &SeedStore {
        &self.store
    }

    /// Read the directory and return the seeds that are live now.
    pub async fn scan(&mut self) -> Vec<LiveSeed> {
        let read = self.store.read_all().await;
        self.judge(read, Instant::now())
    }

    pub(crate) fn judge(
        &mut self,
        (seeds, skipped): (Vec<Seed>, Vec<crate::seed::Skipped>),
        now: Instant,
    ) -> Vec<LiveSeed> {
        let mut still_bad = HashSet::new();
        for skip in skipped {
            if !self.warned.contains(&skip.name) {
                tracing::warn!(name = %skip.name, reason = %skip.reason, "skipping seed file");
            }
            still_bad.insert(skip.name);
        }
        self.warned = still_bad;
        let timeout = self.store.config().heartbeat_timeout;
        let mut live = Vec::new();
        let mut present = HashSet::new();
        for seed in seeds {
            let key = (seed.role, seed.id);
            present.insert(key);
            let observation = self.observed.entry(key).or_insert(Observation {
                heartbeat: seed.heartbeat,
                changed_at: now,
                confirmed: false,
            });
            if observation.heartbeat != seed.heartbeat {
                observation.heartbeat = seed.heartbeat;
                observation.changed_at = now;
                observation.confirmed = true;
            }
            if now.duration_since(observation.changed_at) <= timeout {
                let confirmed = observation.confirmed;
                live.push(LiveSeed { seed, confirmed });
            }
        }
        self.observed.retain(|key, _| present.contains(key));
        live
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::SeedStoreConfig;

    fn seed(id: u64, heartbeat: u64) -> Seed {
        Seed {
            format: crate::seed::SEED_FORMAT,
            cluster: "c".into(),
            role: SeedRole::Coordinator,
            id,
            client_url: format!("http://127.0.0.1:{id}"),
            internal_url: format!("http://127.0.0.1:1{id}"),
            started_at_ms: 0,
            heartbeat,
        }
    }

    fn store_in(dir: &std::path::Path) -> SeedStore {
        let seeds = shoal_storage::local_location(dir).expect("location");
        SeedStore::at(SeedStoreConfig::new("c", dir), &seeds).expect("store")
    }

    #[tokio::test]
    async fn liveness_follows_observed_changes_not_clocks() {
        let dir = tempfile::TempDir::new().expect("dir");
        let store = store_in(dir.path());
        let mut watcher = SeedWatcher::new(store.clone());
        let start = Instant::now();
        store.publish(&seed(1, 0)).await.expect("publish");
        store.publish(&seed(2, 0)).await.expect("publish");
        let live = watcher.judge(store.read_all().await, start);
        assert_eq!(live.len(), 2);
        assert!(
            live.iter().all(|l| !l.confirmed),
            "seen once: not confirmed"
        );

        store.publish(&seed(1, 1)).await.expect("publish");
        let live = watcher.judge(store.read_all().await, start + Duration::from_secs(3));
        assert!(live.iter().any(|l| l.seed.id == 1 && l.confirmed));
        // Seed 2 has not changed for 6 s of the reader's time: expired.
        store.publish(&seed(1, 2)).await.expect("publish");
        let live = watcher.judge(store.read_all().await, start + Duration::from_secs(6));
        assert_eq!(live.iter().map(|l| l.seed.id).collect::<Vec<_>>(), vec![1]);
    }

    #[tokio::test]
    async fn bad_partial_and_foreign_objects_are_skipped() {
        let dir = tempfile::TempDir::new().expect("dir");
        let store = store_in(dir.path());
        store.publish(&seed(1, 0)).await.expect("publish");
        let cluster = store.cluster_dir();
        let put = |name: &'static str, bytes: Vec<u8>| async move {
            cluster.put(name, Bytes::from(bytes)).await.expect("put")
        };
        put("coordinator-2.json", b"{\"format\":1,\"clus".to_vec()).await;
        put("notes.txt", b"hello".to_vec()).await;
        let mut foreign = seed(3, 0);
        foreign.cluster = "other".into();
        put(
            "coordinator-3.json",
            serde_json::to_vec(&foreign).expect("json"),
        )
        .await;
        put(
            "coordinator-4.json",
            serde_json::to_vec(&seed(5, 0)).expect("json"),
        )
        .await;
        put(".coordinator-6.json.tmp-1", b"partial".to_vec()).await;
        put("bootstrap.claim", b"{}".to_vec()).await;
        let (seeds, skipped) = store.read_all().await;
        assert_eq!(seeds.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        let reasons: Vec<String> = skipped.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(skipped.len(), 4, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("not a seed")));
        assert!(reasons.iter().any(|r| r.contains("cluster \"other\"")));
        assert!(reasons.iter().any(|r| r.contains("no .json")));
        assert!(reasons.iter().any(|r| r.contains("names member 5")));
        assert_eq!(SeedWatcher::new(store).scan().await.len(), 1);
    }

    #[tokio::test]
    async fn removal_and_missing_directory() {
        let dir = tempfile::TempDir::new().expect("dir");
        let store = store_in(&dir.path().join("absent"));
        assert!(store.read_all().await.0.is_empty());
        store.publish(&seed(1, 0)).await.expect("publish");
        store
            .remove(SeedRole::Coordinator, 1)
            .await
            .expect("remove");
        store
            .remove(SeedRole::Coordinator, 1)
            .await
            .expect("remove again");
        assert!(store.read_all().await.0.is_empty());
    }
}
