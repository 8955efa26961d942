//! `seed-store.properties` and the file-system profile it names.

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
        doc: "The seed directory, shared by every coordinator and worker of the cluster.",
    },
    KeySpec {
        key: "seed-store.seed.heartbeat",
        default: Some("1s"),
        doc: "How often a coordinator rewrites its seed file.",
    },
    KeySpec {
        key: "seed-store.seed.heartbeat.timeout",
        default: Some("5s"),
        doc: "A seed that a reader has not seen change for this long is ignored.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedStoreConfig {
    /// Seeds of this cluster live under `<seed_dir>/<cluster>/`.
    pub cluster: String,
    pub seed_dir: PathBuf,
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
}

impl SeedStoreConfig {
    pub fn new(cluster: impl Into<String>, seed_dir: impl Into<PathBuf>) -> Self {
        SeedStoreConfig {
            cluster: cluster.into(),
            seed_dir: seed_dir.into(),
            heartbeat: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }

    /// Read `etc/seed-store.properties` and its file-system profile. Relative paths are taken
    /// relative to `base`.
    pub fn load(etc: &Path, base: &Path, cluster: &str) -> Result<Self, ConfigError> {
        let file = PropertiesFile::load(&etc.join("seed-store.properties"), false)?;
        let reader = Reader::new(&file, SEED_STORE_KEYS)?;
        reader.choice("seed-store.type", &["filebased"])?;
        let profile = reader.non_empty("seed-store.filesystem.profile")?;
        if profile.contains(['/', '\\']) || profile.starts_with('.') {
            return Err(reader.invalid(
                "seed-store.filesystem.profile",
                "must be a plain profile name",
            ));
        }
        let profile_path = etc.join("filesystem").join(format!("{profile}.properties"));
        if !profile_path.is_file() {
            return Err(reader.invalid(
                "seed-store.filesystem.profile",
                format!("no profile file {}", profile_path.display()),
            ));
        }
        let profile_file = PropertiesFile::load(&profile_path, false)?;
        let profile = shoal_storage::Profile::read(&profile, &profile_file, base)?;
        if profile.kind != shoal_storage::ProfileKind::Local {
            return Err(reader.invalid(
                "seed-store.filesystem.profile",
                format!(
                    "profile {} is not local; seeds live on a local or NFS directory only",
                    profile.name
                ),
            ));
        }
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
        let seed_dir = PathBuf::from(reader.non_empty("seed-store.filesystem.seed-dir")?);
        Ok(SeedStoreConfig {
            cluster: cluster.to_string(),
            seed_dir: if seed_dir.is_absolute() {
                seed_dir
            } else {
                base.join(seed_dir)
            },
            heartbeat,
            heartbeat_timeout,
        })
    }
}
