//! Seed files: one JSON file per member under `<seed-dir>/<cluster>/`, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SeedStoreConfig;

/// The seed file format this build writes and reads.
pub const SEED_FORMAT: u32 = 1;

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

/// Why a file in the seed directory was not taken as a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The seed directory of one cluster.
#[derive(Debug, Clone)]
pub struct SeedStore {
    config: SeedStoreConfig,
}

impl SeedStore {
    pub fn new(config: SeedStoreConfig) -> Self {
        SeedStore { config }
    }

    pub fn config(&self) -> &SeedStoreConfig {
        &self.config
    }

    /// `<seed-dir>/<cluster>`.
    pub fn cluster_dir(&self) -> PathBuf {
        self.config.seed_dir.join(&self.config.cluster)
    }

    fn file_name(role: SeedRole, id: u64) -> String {
        format!("{}-{id}.json", role.prefix())
    }

    pub fn path_of(&self, role: SeedRole, id: u64) -> PathBuf {
        self.cluster_dir().join(Self::file_name(role, id))
    }

    /// Write `seed` atomically: a temporary file, fsync, rename, fsync of the directory.
    pub fn publish(&self, seed: &Seed) -> std::io::Result<()> {
        let dir = self.cluster_dir();
        std::fs::create_dir_all(&dir)?;
        let final_path = self.path_of(seed.role, seed.id);
        let temporary = dir.join(format!(
            ".{}.tmp-{}",
            Self::file_name(seed.role, seed.id),
            std::process::id()
        ));
        let body = serde_json::to_vec(seed).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&body)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &final_path)?;
        sync_dir(&dir);
        Ok(())
    }

    /// Remove a member's seed file; a missing file is not an error.
    pub fn remove(&self, role: SeedRole, id: u64) -> std::io::Result<()> {
        match std::fs::remove_file(self.path_of(role, id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => {
                sync_dir(&self.cluster_dir());
                Ok(())
            }
        }
    }

    /// Every readable seed of this cluster, and every file that was skipped with the reason.
    pub fn read_all(&self) -> (Vec<Seed>, Vec<Skipped>) {
        let mut seeds = Vec::new();
        let mut skipped = Vec::new();
        let entries = match std::fs::read_dir(self.cluster_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (seeds, skipped),
            Err(e) => {
                skipped.push(Skipped {
                    path: self.cluster_dir(),
                    reason: format!("cannot list the seed directory: {e}"),
                });
                return (seeds, skipped);
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            match self.read_one(&path, &name) {
                Ok(seed) => seeds.push(seed),
                Err(reason) => skipped.push(Skipped { path, reason }),
            }
        }
        seeds.sort_by_key(|s| (s.role.prefix(), s.id));
        (seeds, skipped)
    }

    fn read_one(&self, path: &Path, name: &str) -> Result<Seed, String> {
        if !name.ends_with(".json") {
            return Err("not a seed file (no .json ending)".into());
        }
        let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
        if bytes.len() > 64 * 1024 {
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

/// Make a rename durable; a failure only weakens durability, so it is logged, not returned.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync the seed directory");
    }
}
