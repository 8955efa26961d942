//! The bootstrap claim: a file created at most once per cluster, by the coordinator that
//! initialises the cluster, so that a fresh cluster forms exactly once even when every
//! coordinator starts at the same instant.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::seed::SeedStore;

const CLAIM_FILE: &str = "bootstrap.claim";

/// Who initialises the cluster, and with which members (id to internal URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapClaim {
    pub cluster: String,
    pub by: u64,
    pub members: BTreeMap<u64, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This claim is now the cluster's.
    Won,
    /// Another claim was made first.
    Taken(BootstrapClaim),
}

impl SeedStore {
    /// Make `claim` the cluster's bootstrap claim unless one exists. The claim is written
    /// whole to a temporary file and then hard-linked into place, which fails if the name is
    /// taken, so readers never see a partial claim.
    pub fn claim_bootstrap(&self, claim: &BootstrapClaim) -> std::io::Result<ClaimOutcome> {
        let dir = self.cluster_dir();
        std::fs::create_dir_all(&dir)?;
        let temporary = dir.join(format!(
            ".{CLAIM_FILE}.tmp-{}-{}",
            claim.by,
            std::process::id()
        ));
        {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&serde_json::to_vec(claim).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
        }
        let linked = std::fs::hard_link(&temporary, dir.join(CLAIM_FILE));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
                Ok(ClaimOutcome::Won)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.bootstrap_claim()? {
                    Some(existing) => Ok(ClaimOutcome::Taken(existing)),
                    None => Err(std::io::Error::other(
                        "the bootstrap claim vanished while being read",
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The cluster's bootstrap claim, if one was made.
    pub fn bootstrap_claim(&self) -> std::io::Result<Option<BootstrapClaim>> {
        match std::fs::read(self.cluster_dir().join(CLAIM_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("unreadable bootstrap claim: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeedStoreConfig;

    #[test]
    fn only_the_first_claim_wins_even_under_contention() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SeedStore::new(SeedStoreConfig::new("c", dir.path()));
        let handles: Vec<_> = (1..=8u64)
            .map(|by| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let claim = BootstrapClaim {
                        cluster: "c".into(),
                        by,
                        members: BTreeMap::from([(by, format!("http://n{by}"))]),
                    };
                    store.claim_bootstrap(&claim).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<ClaimOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = outcomes.iter().filter(|o| **o == ClaimOutcome::Won).count();
        assert_eq!(winners, 1);
        let claim = store.bootstrap_claim().unwrap().unwrap();
        for outcome in outcomes {
            if let ClaimOutcome::Taken(existing) = outcome {
                assert_eq!(existing, claim);
            }
        }
    }
}
