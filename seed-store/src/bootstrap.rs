//! The bootstrap claim: an object created at most once per generation, by the coordinator that
//! initialises the cluster, so that a fresh cluster forms exactly once even when every
//! coordinator starts at the same instant. Generation 1 is `bootstrap.claim`, generation N
//! `bootstrap.claim.N`; the newest one stands. A claim whose claimant died before
//! initialising expires, and the next generation is claimed the same way.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shoal_storage::StorageError;

use crate::seed::SeedStore;

const CLAIM_NAME: &str = "bootstrap.claim";

/// Who initialises the cluster, and with which members (id to internal URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapClaim {
    pub cluster: String,
    /// 1 for the first claim, one more for each claim made after an expired one.
    #[serde(default = "first_generation")]
    pub generation: u32,
    pub by: u64,
    pub members: BTreeMap<u64, String>,
}

fn first_generation() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This claim is now the cluster's.
    Won,
    /// Another claim of this generation was made first.
    Taken(BootstrapClaim),
}

/// The object name of generation `generation`.
fn claim_name(generation: u32) -> String {
    match generation {
        0 | 1 => CLAIM_NAME.to_string(),
        n => format!("{CLAIM_NAME}.{n}"),
    }
}

/// The generation an object name holds, if it is a claim's.
fn generation_of(name: &str) -> Option<u32> {
    if name == CLAIM_NAME {
        return Some(1);
    }
    let n: u32 = name
        .strip_prefix(CLAIM_NAME)?
        .strip_prefix('.')?
        .parse()
        .ok()?;
    (n >= 2 && claim_name(n) == name).then_some(n)
}

/// Whether `name` is a bootstrap claim's (not a seed).
pub(crate) fn is_claim_name(name: &str) -> bool {
    generation_of(name).is_some()
}

fn unreadable(e: serde_json::Error) -> StorageError {
    StorageError::BadLocation(format!("unreadable bootstrap claim: {e}"))
}

impl SeedStore {
    /// Make `claim` its generation's claim unless one exists: a conditional create
    /// (`If-None-Match: *` on S3, a hard link on a local file system), so exactly one of
    /// any number of racing claimants wins and readers never see a partial claim.
    pub async fn claim_bootstrap(
        &self,
        claim: &BootstrapClaim,
    ) -> Result<ClaimOutcome, StorageError> {
        let name = claim_name(claim.generation);
        let body = serde_json::to_vec(claim).map_err(unreadable)?;
        if self.cluster_dir().put_new(&name, Bytes::from(body)).await? {
            return Ok(ClaimOutcome::Won);
        }
        match self.cluster_dir().get(&name).await? {
            Some(bytes) => Ok(ClaimOutcome::Taken(
                serde_json::from_slice(&bytes).map_err(unreadable)?,
            )),
            None => Err(StorageError::BadLocation(
                "the bootstrap claim vanished while being read".into(),
            )),
        }
    }

    /// The newest bootstrap claim of the cluster, if one was made.
    pub async fn bootstrap_claim(&self) -> Result<Option<BootstrapClaim>, StorageError> {
        let newest = self
            .cluster_dir()
            .list()
            .await?
            .iter()
            .filter_map(|entry| generation_of(&entry.name))
            .max();
        let Some(generation) = newest else {
            return Ok(None);
        };
        match self.cluster_dir().get(&claim_name(generation)).await? {
            Some(bytes) => {
                let mut claim: BootstrapClaim =
                    serde_json::from_slice(&bytes).map_err(unreadable)?;
                claim.generation = generation;
                Ok(Some(claim))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeedStoreConfig;

    fn claim(generation: u32, by: u64) -> BootstrapClaim {
        BootstrapClaim {
            cluster: "c".into(),
            generation,
            by,
            members: BTreeMap::from([(by, format!("http://n{by}"))]),
        }
    }

    #[test]
    fn claim_names_and_generations_round_trip() {
        for generation in [1, 2, 3, 17] {
            assert_eq!(generation_of(&claim_name(generation)), Some(generation));
        }
        for name in [
            "bootstrap.claim.1",
            "bootstrap.claim.02",
            "bootstrap.claimx",
            "x",
        ] {
            assert_eq!(generation_of(name), None, "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn only_the_first_claim_of_a_generation_wins_even_under_contention() {
        let dir = tempfile::TempDir::new().expect("dir");
        let seeds = shoal_storage::local_location(dir.path()).expect("location");
        let store = SeedStore::at(SeedStoreConfig::new("c", dir.path()), &seeds).expect("store");
        assert_eq!(store.bootstrap_claim().await.expect("read"), None);
        for generation in [1, 2] {
            let racers: Vec<_> = (1..=8u64)
                .map(|by| {
                    let store = store.clone();
                    tokio::spawn(async move { store.claim_bootstrap(&claim(generation, by)).await })
                })
                .collect();
            let mut outcomes = Vec::new();
            for racer in racers {
                outcomes.push(racer.await.expect("task").expect("claim"));
            }
            let winners = outcomes.iter().filter(|o| **o == ClaimOutcome::Won).count();
            assert_eq!(winners, 1, "generation {generation}: {outcomes:?}");
            let newest = store
                .bootstrap_claim()
                .await
                .expect("read")
                .expect("a claim");
            assert_eq!(newest.generation, generation);
            for outcome in outcomes {
                if let ClaimOutcome::Taken(existing) = outcome {
                    assert_eq!(existing, newest);
                }
            }
        }
        // Seeds are not confused with claims, nor claims with seeds.
        assert!(store.read_all().await.1.is_empty());
    }
}
