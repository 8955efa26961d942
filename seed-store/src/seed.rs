//! Seeds: one JSON object per member under `<seed-dir>/<cluster>/`, each written whole.

use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shoal_storage::{Location, Storage, StorageError};

use crate::config::SeedStoreConfig;

/// The seed file format this build writes and reads.
pub const SEED_FORMAT: u32 = 1;

/// A seed is a few hundred bytes; anything much larger is not one.
const MAX_SEED_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedRole {
    Coordinator,
}

impl SeedRole {
    fn prefix(self) -> &'static str {
        match self {
            SeedRole::Coordinator => "coordinator",
        }
    }
}

/// What a member publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub format: u32,
    pub cluster: String,
    pub role: SeedRole,
    pub id: u64,
    pub client_url: String,
    pub internal_url: String,
    /// Informative only: the publisher's wall clock when it started (milliseconds since 1970).
    pub started_at_ms: u64,
    /// Incremented on every refresh; readers judge freshness by seeing it change.
    pub heartbeat: u64,
}

/// Why an object in the seed directory was not taken as a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The object's full name (a path or an `s3://` URL).
    pub name: String,
    pub reason: String,
}

/// The seed directory of one cluster, on a local file system or in an S3 bucket.
#[derive(Debug, Clone)]
pub struct SeedStore {
    config: SeedStoreConfig,
    /// `<seed-dir>/<cluster>`.
    dir: Location,
}

impl SeedStore {
    /// The seed directory the configuration names, through the profiles of `storage`.
    pub fn open(config: SeedStoreConfig, storage: &Storage) -> Result<Self, StorageError> {
        let seeds = storage.in_profile(&config.profile, &config.seed_dir, Path::new("/"))?;
        Self::at(config, &seeds)
    }

    /// The cluster's directory below the seed directory `seeds`.
    pub fn at(config: SeedStoreConfig, seeds: &Location) -> Result<Self, StorageError> {
        let dir = seeds.child(&config.cluster)?;
        Ok(SeedStore { config, dir })
    }

    pub fn config(&self) -> &SeedStoreConfig {
        &self.config
    }

    /// `<seed-dir>/<cluster>`.
    pub fn cluster_dir(&self) -> &Location {
        &self.dir
    }

    fn file_name(role: SeedRole, id: u64) -> String {
        format!("{}-{id}.json", role.prefix())
    }

    /// The full name of a member's seed.
    pub fn name_of(&self, role: SeedRole, id: u64) -> String {
        self.dir
            .name_of(&Self::file_name(role, id))
            .unwrap_or_else(|_| Self::file_name(role, id))
    }

    /// Write `seed` whole: readers see the old seed or the new one, never a part.
    pub async fn publish(&self, seed: &Seed) -> Result<(), StorageError> {
        let body =
            serde_json::to_vec(seed).map_err(|e| StorageError::BadLocation(e.to_string()))?;
        self.dir
            .put(&Self::file_name(seed.role, seed.id), Bytes::from(body))
            .await
    }

    /// Remove a member's seed; a missing one is not an error.
    pub async fn remove(&self, role: SeedRole, id: u64) -> Result<(), StorageError> {
        self.dir.delete(&Self::file_name(role, id)).await
    }

    /// Every readable seed of this cluster, and every object that was skipped with the reason.
    pub async fn read_all(&self) -> (Vec<Seed>, Vec<Skipped>) {
        let mut seeds = Vec::new();
        let mut skipped = Vec::new();
        let entries = match self.dir.list().await {
            Ok(entries) => entries,
            Err(e) => {
                skipped.push(Skipped {
                    name: self.dir.url(),
                    reason: format!("cannot list the seed directory: {e}"),
                });
                return (seeds, skipped);
            }
        };
        for entry in entries {
            if entry.name.starts_with('.') || crate::bootstrap::is_claim_name(&entry.name) {
                continue;
            }
            match self.read_one(&entry.name, entry.size).await {
                Ok(seed) => seeds.push(seed),
                Err(reason) => skipped.push(Skipped {
                    name: entry.full_name,
                    reason,
                }),
            }
        }
        seeds.sort_by_key(|s| (s.role.prefix(), s.id));
        (seeds, skipped)
    }

    async fn read_one(&self, name: &str, size: u64) -> Result<Seed, String> {
        if !name.ends_with(".json") {
            return Err("not a seed file (no .json ending)".into());
        }
        if size > MAX_SEED_BYTES {
            return Err(format!("too large for a seed ({size} bytes)"));
        }
        let bytes = match self.dir.get(name).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err("removed while being read".into()),
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        if bytes.len() as u64 > MAX_SEED_BYTES {
            return Err(format!("too large for a seed ({} bytes)", bytes.len()));
        }
        let seed: Seed = serde_json::from_slice(&bytes).map_err(|e| format!("not a seed: {e}"))?;
        if seed.format != SEED_FORMAT {
            return Err(format!("seed format {} is not {SEED_FORMAT}", seed.format));
        }
        if seed.cluster != self.config.cluster {
            return Err(format!("belongs to cluster {:?}", seed.cluster));
        }
        if name != Self::file_name(seed.role, seed.id) {
            return Err(format!("names member {} but is called {name}", seed.id));
        }
        Ok(seed)
    }
}
