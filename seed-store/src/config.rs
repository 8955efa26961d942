//! `seed-store.properties` and the file-system profile it names (local or S3).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_proto::properties::{ConfigError, KeySpec, PropertiesFile, Reader};

/// The keys of `seed-store.properties`.
pub const SEED_STORE_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "seed-store.type",
        default: Some("filebased"),
        doc: "How seeds are stored; only filebased (a directory on shared storage) exists.",
    },
    KeySpec {
        key: "seed-store.filesystem.profile",
        default: Some("local"),
        doc: "Name of the file-system profile under etc/filesystem/ holding the seed directory.",
    },
    KeySpec {
        key: "seed-store.filesystem.seed-dir",
        default: None,
        doc: "The seed directory, shared by every coordinator and worker of the cluster: a directory with a local profile, a key prefix below the profile's s3.prefix with an S3 profile.",
    },
    KeySpec {
        key: "seed-store.seed.heartbeat",
        default: Some("1s"),
        doc: "How often a coordinator rewrites its seed file.",
    },
    KeySpec {
        key: "seed-store.seed.heartbeat.timeout",
        default: Some("5s"),
        doc: "A seed that a reader has not seen change for this long is ignored; a bootstrap claim whose claimant has not been live for three times this long expires, and another coordinator claims again.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedStoreConfig {
    /// Seeds of this cluster live under `<seed_dir>/<cluster>/`.
    pub cluster: String,
    /// The file-system profile holding the seed directory.
    pub profile: String,
    /// The seed directory: a path for a local profile (absolute, resolved), a key prefix
    /// below the bucket and prefix of an S3 profile.
    pub seed_dir: String,
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
}

impl SeedStoreConfig {
    /// Seeds in the local directory `seed_dir`, with the default heartbeats.
    pub fn new(cluster: impl Into<String>, seed_dir: &Path) -> Self {
        SeedStoreConfig {
            cluster: cluster.into(),
            profile: "local".into(),
            seed_dir: seed_dir.display().to_string(),
            heartbeat: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }

    /// How long a bootstrap claim whose claimant is not live stands before another
    /// coordinator may claim again: three heartbeat timeouts of the reader's own clock.
    pub fn claim_expiry(&self) -> Duration {
        self.heartbeat_timeout * 3
    }

    /// Read `etc/seed-store.properties` and check the file-system profile it names. Relative
    /// local paths are taken relative to `base`.
    pub fn load(etc: &Path, base: &Path, cluster: &str) -> Result<Self, ConfigError> {
        let file = PropertiesFile::load(&etc.join("seed-store.properties"), false)?;
        let reader = Reader::new(&file, SEED_STORE_KEYS)?;
        reader.choice("seed-store.type", &["filebased"])?;
        let profile_name = reader.non_empty("seed-store.filesystem.profile")?;
        if profile_name.contains(['/', '\\']) || profile_name.starts_with('.') {
            return Err(reader.invalid(
                "seed-store.filesystem.profile",
                "must be a plain profile name",
            ));
        }
        let profile_path = etc
            .join("filesystem")
            .join(format!("{profile_name}.properties"));
        if !profile_path.is_file() {
            return Err(reader.invalid(
                "seed-store.filesystem.profile",
                format!("no profile file {}", profile_path.display()),
            ));
        }
        let profile_file = PropertiesFile::load(&profile_path, false)?;
        let profile = shoal_storage::Profile::read(&profile_name, &profile_file, base)?;
        let heartbeat = reader.duration("seed-store.seed.heartbeat")?;
        let heartbeat_timeout = reader.duration("seed-store.seed.heartbeat.timeout")?;
        if heartbeat.is_zero() {
            return Err(reader.invalid("seed-store.seed.heartbeat", "must be longer than zero"));
        }
        if heartbeat_timeout <= heartbeat {
            return Err(reader.invalid(
                "seed-store.seed.heartbeat.timeout",
                "must be longer than seed-store.seed.heartbeat",
            ));
        }
        let dir = reader.non_empty("seed-store.filesystem.seed-dir")?;
        let seed_dir = match profile.kind {
            shoal_storage::ProfileKind::Local => {
                let dir = PathBuf::from(dir);
                let dir = if dir.is_absolute() {
                    dir
                } else {
                    base.join(dir)
                };
                dir.display().to_string()
            }
            shoal_storage::ProfileKind::S3(_) => {
                let prefix = dir.trim_matches('/');
                if prefix.contains("://") || !prefix.split('/').all(shoal_storage::is_plain_segment)
                {
                    return Err(reader.invalid(
                        "seed-store.filesystem.seed-dir",
                        "with an S3 profile, a key prefix below the profile's s3.prefix (plain segments joined by /)",
                    ));
                }
                prefix.to_string()
            }
        };
        Ok(SeedStoreConfig {
            cluster: cluster.to_string(),
            profile: profile_name,
            seed_dir,
            heartbeat,
            heartbeat_timeout,
        })
    }
}
