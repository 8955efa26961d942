//! Reading the seed directory over time: a seed is live while the reader keeps seeing its
//! heartbeat counter change; wall clocks of other hosts are never compared with ours.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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
    warned: HashSet<PathBuf>,
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
    pub fn scan(&mut self) -> Vec<LiveSeed> {
        self.scan_at(Instant::now())
    }

    pub(crate) fn scan_at(&mut self, now: Instant) -> Vec<LiveSeed> {
        let (seeds, skipped) = self.store.read_all();
        let mut still_bad = HashSet::new();
        for skip in skipped {
            if !self.warned.contains(&skip.path) {
                tracing::warn!(path = %skip.path.display(), reason = %skip.reason, "skipping seed file");
            }
            still_bad.insert(skip.path);
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

    #[test]
    fn liveness_follows_observed_changes_not_clocks() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SeedStore::new(SeedStoreConfig::new("c", dir.path()));
        let mut watcher = SeedWatcher::new(store.clone());
        let start = Instant::now();
        store.publish(&seed(1, 0)).unwrap();
        store.publish(&seed(2, 0)).unwrap();
        let live = watcher.scan_at(start);
        assert_eq!(live.len(), 2);
        assert!(
            live.iter().all(|l| !l.confirmed),
            "seen once: not confirmed"
        );

        store.publish(&seed(1, 1)).unwrap();
        let live = watcher.scan_at(start + Duration::from_secs(3));
        assert!(live.iter().any(|l| l.seed.id == 1 && l.confirmed));
        // Seed 2 has not changed for 6 s of the reader's time: expired.
        store.publish(&seed(1, 2)).unwrap();
        let live = watcher.scan_at(start + Duration::from_secs(6));
        assert_eq!(live.iter().map(|l| l.seed.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn bad_partial_and_foreign_files_are_skipped() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SeedStore::new(SeedStoreConfig::new("c", dir.path()));
        store.publish(&seed(1, 0)).unwrap();
        let cluster = store.cluster_dir();
        std::fs::write(cluster.join("coordinator-2.json"), b"{\"format\":1,\"clus").unwrap();
        std::fs::write(cluster.join("notes.txt"), b"hello").unwrap();
        let mut foreign = seed(3, 0);
        foreign.cluster = "other".into();
        std::fs::write(
            cluster.join("coordinator-3.json"),
            serde_json::to_vec(&foreign).unwrap(),
        )
        .unwrap();
        std::fs::write(
            cluster.join("coordinator-4.json"),
            serde_json::to_vec(&seed(5, 0)).unwrap(),
        )
        .unwrap();
        std::fs::write(cluster.join(".coordinator-6.json.tmp-1"), b"partial").unwrap();
        let (seeds, skipped) = store.read_all();
        assert_eq!(seeds.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        let reasons: Vec<String> = skipped.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(skipped.len(), 4, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("not a seed")));
        assert!(reasons.iter().any(|r| r.contains("cluster \"other\"")));
        assert!(reasons.iter().any(|r| r.contains("no .json")));
        assert!(reasons.iter().any(|r| r.contains("names member 5")));
        assert_eq!(SeedWatcher::new(store).scan().len(), 1);
    }

    #[test]
    fn removal_and_missing_directory() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SeedStore::new(SeedStoreConfig::new("c", dir.path().join("absent")));
        assert!(store.read_all().0.is_empty());
        store.publish(&seed(1, 0)).unwrap();
        store.remove(SeedRole::Coordinator, 1).unwrap();
        store.remove(SeedRole::Coordinator, 1).unwrap();
        assert!(store.read_all().0.is_empty());
    }
}
