//! The worker's configuration: `etc/config.properties` with the worker's keys, and the seed
//! store's files through which it finds the coordinators.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_proto::properties::{ConfigError, KeySpec, PropertiesFile, Reader};
use shoal_seed_store::SeedStoreConfig;

pub const WORKER_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "node.id",
        default: None,
        doc: "This worker's id: letters, digits, '-' and '_', unique among the cluster's workers.",
    },
    KeySpec {
        key: "node.environment",
        default: Some("shoal"),
        doc: "The cluster's name; it must be the coordinators' node.environment.",
    },
    KeySpec {
        key: "node.data-dir",
        default: Some("data"),
        doc: "Directory of this worker's files; relative paths are taken from the etc directory's parent.",
    },
    KeySpec {
        key: "node.internal-address",
        default: Some("127.0.0.1"),
        doc: "Host name or address coordinators and other workers use to reach this worker.",
    },
    KeySpec {
        key: "node.bind-address",
        default: Some("0.0.0.0"),
        doc: "Address the internal listener binds to.",
    },
    KeySpec {
        key: "internal-communication.http.port",
        default: Some("8082"),
        doc: "Port of the worker's internal API; 0 picks a free port.",
    },
    KeySpec {
        key: "internal-communication.shared-secret",
        default: None,
        doc: "The cluster secret every internal request carries; the same on every node.",
    },
    KeySpec {
        key: "log.format",
        default: Some("text"),
        doc: "Log lines on standard error as text or as JSON objects (json).",
    },
    KeySpec {
        key: "worker.heartbeat-interval",
        default: Some("1s"),
        doc: "How often the worker announces itself to every coordinator it finds.",
    },
    KeySpec {
        key: "query.scan-bytes-per-task",
        default: Some("16777216"),
        doc: "Parquet bytes one task scans; a larger scan is split into more tasks over more workers.",
    },
    KeySpec {
        key: "query.max-buffer-memory",
        default: Some("67108864"),
        doc: "Bytes of result pages one query driven here keeps in memory ahead of its client; more go to spill files.",
    },
    KeySpec {
        key: "query.spill-path",
        default: Some("spill"),
        doc: "Directory for result pages beyond the memory limit; relative paths are taken from node.data-dir. Emptied at start.",
    },
    KeySpec {
        key: "query.max-spill",
        default: Some("4294967296"),
        doc: "Bytes of result pages one query keeps in spill files, and of its unread pages in the result spool; beyond it the query waits for its client.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub id: String,
    pub cluster: String,
    pub data_dir: PathBuf,
    pub advertise_host: String,
    pub bind_address: String,
    pub internal_port: u16,
    pub secret: String,
    pub heartbeat_interval: Duration,
    /// Log lines as JSON objects.
    pub log_json: bool,
    pub scan_bytes_per_task: u64,
    pub buffer_memory_bytes: u64,
    pub spill_dir: PathBuf,
    pub spill_bytes: u64,
    pub seed_store: SeedStoreConfig,
    /// The file-system profiles of `etc/filesystem/` (tables on S3 are read through them).
    pub profiles: shoal_storage::Profiles,
}

fn plain_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl WorkerConfig {
    pub fn load(etc: &Path) -> Result<Self, ConfigError> {
        let base = etc
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let file = PropertiesFile::load(&etc.join("config.properties"), false)?;
        let config = Reader::new(&file, WORKER_KEYS)?;
        let id = config.non_empty("node.id")?;
        if !plain_name(&id) {
            return Err(config.invalid("node.id", "may hold only letters, digits, '-' and '_'"));
        }
        let cluster = config.non_empty("node.environment")?;
        if !plain_name(&cluster) {
            return Err(config.invalid(
                "node.environment",
                "may hold only letters, digits, '-' and '_'",
            ));
        }
        let heartbeat_interval = config.duration("worker.heartbeat-interval")?;
        if heartbeat_interval.is_zero() {
            return Err(config.invalid("worker.heartbeat-interval", "must be longer than zero"));
        }
        let data_dir = PathBuf::from(config.non_empty("node.data-dir")?);
        let data_dir = if data_dir.is_absolute() {
            data_dir
        } else {
            base.join(data_dir)
        };
        let spill_dir = data_dir.join(config.non_empty("query.spill-path")?);
        Ok(WorkerConfig {
            id,
            data_dir,
            scan_bytes_per_task: config.u64("query.scan-bytes-per-task")?.max(1),
            buffer_memory_bytes: config.u64("query.max-buffer-memory")?,
            spill_dir,
            spill_bytes: config.u64("query.max-spill")?,
            advertise_host: config.non_empty("node.internal-address")?,
            bind_address: config.non_empty("node.bind-address")?,
            internal_port: config.u16("internal-communication.http.port")?,
            secret: config.non_empty("internal-communication.shared-secret")?,
            heartbeat_interval,
            log_json: config.choice("log.format", &["text", "json"])? == "json",
            seed_store: SeedStoreConfig::load(etc, &base, &cluster)?,
            profiles: shoal_storage::Profiles::load(etc, &base)?,
            cluster,
        })
    }
}
