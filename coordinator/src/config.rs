//! The coordinator's configuration: `etc/config.properties`, `etc/state-store.properties` and
//! the seed store's files, with every key declared once here with its default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_proto::properties::{ConfigError, KeySpec, PropertiesFile, Reader};
use shoal_seed_store::SeedStoreConfig;
use shoal_state_store::StoreConfig;

pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "node.id",
        default: None,
        doc: "This coordinator's id: a whole number from 1, unique in the cluster, never reused.",
    },
    KeySpec {
        key: "node.environment",
        default: Some("shoal"),
        doc: "The cluster's name; coordinators and workers of one cluster share it.",
    },
    KeySpec {
        key: "node.data-dir",
        default: Some("data"),
        doc: "Directory of this node's files; relative paths are taken from the etc directory's parent.",
    },
    KeySpec {
        key: "catalog.warehouse",
        default: Some("warehouse"),
        doc: "Where tables written by Shoal keep their Parquet files, on storage every coordinator and worker shares: a directory every node mounts at the same path (a path, relative ones from the etc directory's parent, or a file:// URL), or s3://bucket/prefix in the bucket of an S3 profile under etc/filesystem/ (which workers have too).",
    },
    KeySpec {
        key: "catalog.external-locations",
        default: Some(""),
        doc: "Directories (absolute paths) and s3://bucket/prefix locations, comma separated, under which CREATE TABLE ... WITH (location = ...) may read existing files; empty: no external tables. Only the operator chooses them; users cannot point a table anywhere else.",
    },
    KeySpec {
        key: "catalog.cleanup-interval",
        default: Some("1m"),
        doc: "How often the Raft leader removes files nothing needs: those of dropped tables no running query reads any more, and those of writes that never committed.",
    },
    KeySpec {
        key: "query.max-history",
        default: Some("1000"),
        doc: "Finished queries kept in the replicated query history; the oldest are removed first, in batches of an eighth of this number, but never one whose client may still read it: a coordinator removes its own queries once their client read the last page or abandoned them (query.client.timeout), and those of a coordinator that is gone once they ended query.client.timeout ago.",
    },
    KeySpec {
        key: "query.result-spool",
        default: Some(""),
        doc: "Where drivers spool the pages of results larger than one page as they produce them, so that any coordinator serves the rest of a finished query after its driver died: a directory or s3://bucket/prefix that every node reaches, like catalog.warehouse; empty: _spool under the warehouse; none: no spool (a driver's death after the first page then fails its query).",
    },
    KeySpec {
        key: "query.spooled-segment-ttl",
        default: Some("1h"),
        doc: "How long a client of the spooling protocol may take to download the spooled segments of a finished query: a segment goes when its client acknowledges it, and the leader's sweep removes what is left this long after the query ended.",
    },
    KeySpec {
        key: "query.client.timeout",
        default: Some("5m"),
        doc: "A query whose client has not asked for results for this long is abandoned: cancelled and its results released.",
    },
    KeySpec {
        key: "query.max-concurrent",
        default: Some("0"),
        doc: "Most queries running at once in the whole cluster (all coordinators together); 0 for no limit.",
    },
    KeySpec {
        key: "query.max-queued",
        default: Some("1000"),
        doc: "Most queries waiting for a slot in the whole cluster; a query beyond it fails with QUERY_QUEUE_FULL.",
    },
    KeySpec {
        key: "query.scan-bytes-per-task",
        default: Some("16777216"),
        doc: "Parquet bytes one task scans in the query of an INSERT or CREATE TABLE AS run here; a larger scan is split over more tasks and workers.",
    },
    KeySpec {
        key: "query.admin-users",
        default: Some(""),
        doc: "Users, comma separated, who may see and cancel any user's queries; others see and cancel only their own.",
    },
    KeySpec {
        key: "query.max-run-time",
        default: Some("100d"),
        doc: "Longest a query may take from its submission, queueing included; it fails with EXCEEDED_TIME_LIMIT then. The default of the session property query_max_run_time.",
    },
    KeySpec {
        key: "query.max-execution-time",
        default: Some("100d"),
        doc: "Longest a query's execution may take; it fails with EXCEEDED_TIME_LIMIT then. The default of the session property query_max_execution_time.",
    },
    KeySpec {
        key: "query.max-memory-per-node",
        default: Some(""),
        doc: "Memory a query's operators may hold at its driver (a data size such as 2GB; empty for no limit); beyond it the query fails with EXCEEDED_LOCAL_MEMORY_LIMIT. The default of the session property query_max_memory_per_node.",
    },
    KeySpec {
        key: "query.retry-attempts",
        default: Some("1"),
        doc: "How often a query is run again on the live workers when its driver died before the client received a row.",
    },
    KeySpec {
        key: "log.format",
        default: Some("text"),
        doc: "Log lines on standard error as text or as JSON objects (json).",
    },
    KeySpec {
        key: "worker.timeout",
        default: Some("5s"),
        doc: "A worker not heard from for this long is taken as dead and gets no new work.",
    },
    KeySpec {
        key: "node.internal-address",
        default: Some("127.0.0.1"),
        doc: "Host name or address other nodes and clients use to reach this node.",
    },
    KeySpec {
        key: "node.bind-address",
        default: Some("0.0.0.0"),
        doc: "Address the client and internal listeners bind to.",
    },
    KeySpec {
        key: "http-server.http.port",
        default: Some("8080"),
        doc: "Port of the client API (Trino protocol, admin API, web page); 0 picks a free port.",
    },
    KeySpec {
        key: "http-server.https.enabled",
        default: Some("false"),
        doc: "Serve the client port over TLS (HTTPS) only, with the certificate in http-server.https.keystore.path.",
    },
    KeySpec {
        key: "http-server.https.port",
        default: Some(""),
        doc: "Port of the client API when HTTPS is enabled; empty for http-server.http.port.",
    },
    KeySpec {
        key: "http-server.https.keystore.path",
        default: Some(""),
        doc: "PEM file holding the client port's certificate chain and its private key (relative paths from the etc directory's parent).",
    },
    KeySpec {
        key: "http-server.authentication.type",
        default: Some(""),
        doc: "Client authentication: empty for none, or PASSWORD (HTTP Basic, checked against http-server.authentication.password-file).",
    },
    KeySpec {
        key: "http-server.authentication.password-file",
        default: Some("etc/password.db"),
        doc: "Lines of user:argon2-hash (make them with shoal password-hash); re-read when it changes.",
    },
    KeySpec {
        key: "http-server.authentication.allow-insecure-over-http",
        default: Some("false"),
        doc: "Allow password authentication without HTTPS (passwords then cross the network in clear text).",
    },
    KeySpec {
        key: "internal-communication.http.port",
        default: Some("8081"),
        doc: "Port of the internal API (state-store replication, cluster membership); 0 picks a free port.",
    },
    KeySpec {
        key: "internal-communication.shared-secret",
        default: None,
        doc: "The cluster secret every internal request carries; the same on every node.",
    },
];

pub const STATE_STORE_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "state-store.type",
        default: Some("raft"),
        doc: "The replicated state store; only raft (embedded in the coordinators) exists.",
    },
    KeySpec {
        key: "state-store.bootstrap-expect",
        default: Some("1"),
        doc: "A new cluster forms once this many coordinators have published their seeds.",
    },
    KeySpec {
        key: "state-store.heartbeat-interval",
        default: Some("50ms"),
        doc: "How often the Raft leader contacts every other coordinator.",
    },
    KeySpec {
        key: "state-store.election-timeout.min",
        default: Some("100ms"),
        doc: "A coordinator that hears nothing from the Raft leader starts an election after the leader's lease (state-store.election-timeout.max) plus a time picked at random between this and state-store.election-timeout.max: 300-400 ms of silence by default, so a dead leader is replaced, and writes go on, within about half a second.",
    },
    KeySpec {
        key: "state-store.election-timeout.max",
        default: Some("200ms"),
        doc: "Longest random part of the election timeout, and the leader's lease: how long followers refuse to vote for another after hearing from the leader.",
    },
    KeySpec {
        key: "state-store.snapshot.log-count",
        default: Some("10000"),
        doc: "Build a snapshot after this many log entries; older entries are then purged.",
    },
    KeySpec {
        key: "state-store.request-timeout",
        default: Some("5s"),
        doc: "How long a state-store call waits (for a leader, a quorum) before it fails.",
    },
];

/// State-store settings read from `state-store.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStoreSettings {
    pub bootstrap_expect: usize,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    pub snapshot_log_count: u64,
    pub request_timeout: Duration,
}

/// The defaults of the session properties that limit a query, in Trino's notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDefaults {
    pub max_run_time: String,
    pub max_execution_time: String,
    /// Empty for no limit.
    pub max_memory_per_node: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    pub node_id: u64,
    pub cluster: String,
    pub data_dir: PathBuf,
    /// The warehouse: an absolute directory or an `s3://bucket/prefix` URL.
    pub warehouse: String,
    /// The file-system profiles of `etc/filesystem/`.
    pub profiles: shoal_storage::Profiles,
    /// The etc directory the configuration came from (access control reads its files there).
    pub etc_dir: PathBuf,
    /// Where external tables may point: absolute directories and `s3://` prefixes.
    pub external_locations: Vec<String>,
    pub cleanup_interval: Duration,
    pub max_query_history: usize,
    pub query_client_timeout: Duration,
    /// Where result pages are spooled (a directory or `s3://` prefix); None for no spool.
    pub result_spool: Option<String>,
    /// How long the spooled segments of a finished query wait for their client.
    pub spooled_segment_ttl: Duration,
    pub worker_timeout: Duration,
    pub max_concurrent_queries: usize,
    pub query_retry_attempts: u32,
    /// The cluster's defaults of the session properties, as configured (checked).
    pub session_defaults: SessionDefaults,
    pub admin_users: Vec<String>,
    pub scan_bytes_per_task: usize,
    pub max_queued_queries: usize,
    pub advertise_host: String,
    pub bind_address: String,
    pub client_port: u16,
    /// The PEM keystore of the client port when it serves HTTPS.
    pub https_keystore: Option<PathBuf>,
    /// The password file when clients must authenticate.
    pub password_file: Option<PathBuf>,
    pub internal_port: u16,
    pub secret: String,
    /// Log lines as JSON objects.
    pub log_json: bool,
    pub state_store: StateStoreSettings,
    pub seed_store: SeedStoreConfig,
}

/// `path` as given if absolute, else relative to `base`.
fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

impl CoordinatorConfig {
    /// Read the coordinator's configuration from the etc directory `etc`.
    pub fn load(etc: &Path) -> Result<Self, ConfigError> {
        if !etc.is_dir() {
            return Err(ConfigError {
                file: etc.display().to_string(),
                line: None,
                key: None,
                reason: "not a directory".into(),
            });
        }
        let base = etc
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let file = PropertiesFile::load(&etc.join("config.properties"), false)?;
        let config = Reader::new(&file, CONFIG_KEYS)?;
        let node_id = config.u64("node.id")?;
        if node_id == 0 {
            return Err(config.invalid("node.id", "must be 1 or more"));
        }
        let cluster = config.non_empty("node.environment")?;
        if !cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(config.invalid(
                "node.environment",
                "may hold only letters, digits, '-' and '_'",
            ));
        }
        let data_dir = PathBuf::from(config.non_empty("node.data-dir")?);
        let profiles = shoal_storage::Profiles::load(etc, &base)?;
        let warehouse = Self::load_warehouse(&config, &base, &profiles)?;
        let result_spool = match config.string("query.result-spool")?.as_str() {
            "none" => None,
            "" => Some(format!("{warehouse}/_spool")),
            _ => Some(Self::load_location(
                &config,
                "query.result-spool",
                &base,
                &profiles,
            )?),
        };
        let mut external_locations = Vec::new();
        for location in config.string("catalog.external-locations")?.split(',') {
            let location = location.trim();
            if location.is_empty() {
                continue;
            }
            if let Some(split) = shoal_storage::split_s3_url(location) {
                let (bucket, prefix) =
                    split.map_err(|reason| config.invalid("catalog.external-locations", reason))?;
                external_locations.push(format!("s3://{bucket}/{prefix}"));
                continue;
            }
            let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
            if !path.is_absolute() {
                return Err(config.invalid(
                    "catalog.external-locations",
                    format!("{location:?} is not an absolute path or an s3:// URL"),
                ));
            }
            external_locations.push(path.display().to_string());
        }
        let max_query_history = config.u64("query.max-history")?;
        if max_query_history == 0 {
            return Err(config.invalid("query.max-history", "must be 1 or more"));
        }
        let secret = config.non_empty("internal-communication.shared-secret")?;
        let state_store = Self::load_state_store(etc)?;
        let (client_port, https_keystore) = Self::load_https(&config, &base)?;
        let password_file = Self::load_authentication(&config, &base, https_keystore.is_some())?;
        Ok(CoordinatorConfig {
            node_id,
            data_dir: resolve(&base, data_dir),
            warehouse,
            profiles,
            etc_dir: etc.to_path_buf(),
            external_locations,
            cleanup_interval: config.duration("catalog.cleanup-interval")?,
            max_query_history: max_query_history as usize,
            query_client_timeout: config.duration("query.client.timeout")?,
            result_spool,
            spooled_segment_ttl: config.duration("query.spooled-segment-ttl")?,
            worker_timeout: config.duration("worker.timeout")?,
            log_json: config.choice("log.format", &["text", "json"])? == "json",
            max_concurrent_queries: config.u64("query.max-concurrent")? as usize,
            max_queued_queries: config.u64("query.max-queued")? as usize,
            query_retry_attempts: config.u64("query.retry-attempts")?.min(100) as u32,
            session_defaults: Self::load_session_defaults(&config)?,
            admin_users: config
                .string("query.admin-users")?
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            scan_bytes_per_task: config.u64("query.scan-bytes-per-task")?.max(1) as usize,
            advertise_host: config.non_empty("node.internal-address")?,
            bind_address: config.non_empty("node.bind-address")?,
            client_port,
            https_keystore,
            password_file,
            internal_port: config.u16("internal-communication.http.port")?,
            secret,
            state_store,
            seed_store: SeedStoreConfig::load(etc, &base, &cluster)?,
            cluster,
        })
    }

    /// `catalog.warehouse`: an absolute directory, or an `s3://` URL in the bucket of an S3
    /// profile.
    fn load_warehouse(
        config: &Reader,
        base: &Path,
        profiles: &shoal_storage::Profiles,
    ) -> Result<String, ConfigError> {
        Self::load_location(config, "catalog.warehouse", base, profiles)
    }

    /// The location `key` names: `s3://bucket/prefix` of a known S3 profile, a `file://` URL
    /// or a path (relative ones from `base`).
    fn load_location(
        config: &Reader,
        key: &str,
        base: &Path,
        profiles: &shoal_storage::Profiles,
    ) -> Result<String, ConfigError> {
        let value = config.non_empty(key)?;
        if let Some(split) = shoal_storage::split_s3_url(&value) {
            let (bucket, prefix) = split.map_err(|reason| config.invalid(key, reason))?;
            let known = profiles.iter().any(
                |p| matches!(&p.kind, shoal_storage::ProfileKind::S3(s3) if s3.bucket == bucket),
            );
            if !known {
                return Err(config.invalid(
                    key,
                    format!("no S3 profile under etc/filesystem/ has s3.bucket={bucket}"),
                ));
            }
            return Ok(format!("s3://{bucket}/{prefix}")
                .trim_end_matches('/')
                .to_string());
        }
        let path = match value.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None if value.contains("://") => {
                return Err(config.invalid(key, "only s3:// and file:// URLs exist"))
            }
            None => PathBuf::from(&value),
        };
        Ok(resolve(base, path).display().to_string())
    }

    fn load_session_defaults(config: &Reader) -> Result<SessionDefaults, ConfigError> {
        for key in ["query.max-run-time", "query.max-execution-time"] {
            config.duration(key)?;
        }
        let memory = config.string("query.max-memory-per-node")?;
        if !memory.trim().is_empty() {
            shoal_proto::properties::parse_data_size(&memory)
                .map_err(|reason| config.invalid("query.max-memory-per-node", reason))?;
        }
        Ok(SessionDefaults {
            max_run_time: config.non_empty("query.max-run-time")?,
            max_execution_time: config.non_empty("query.max-execution-time")?,
            max_memory_per_node: memory.trim().to_string(),
        })
    }

    /// The client port and, when it serves HTTPS, its keystore.
    fn load_https(config: &Reader, base: &Path) -> Result<(u16, Option<PathBuf>), ConfigError> {
        let http_port = config.u16("http-server.http.port")?;
        if !config.bool("http-server.https.enabled")? {
            return Ok((http_port, None));
        }
        let port = match config.string("http-server.https.port")?.as_str() {
            "" => http_port,
            _ => config.u16("http-server.https.port")?,
        };
        let keystore = config.string("http-server.https.keystore.path")?;
        if keystore.is_empty() {
            return Err(config.invalid(
                "http-server.https.keystore.path",
                "is required when http-server.https.enabled=true",
            ));
        }
        Ok((port, Some(resolve(base, PathBuf::from(keystore)))))
    }

    /// The password file when client authentication is on.
    fn load_authentication(
        config: &Reader,
        base: &Path,
        https: bool,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let kind = config.string("http-server.authentication.type")?;
        match kind.to_ascii_uppercase().as_str() {
            "" => return Ok(None),
            "PASSWORD" => {}
            _ => {
                return Err(config.invalid(
                    "http-server.authentication.type",
                    "must be empty or PASSWORD",
                ))
            }
        }
        if !https && !config.bool("http-server.authentication.allow-insecure-over-http")? {
            return Err(config.invalid(
                "http-server.authentication.type",
                "PASSWORD needs http-server.https.enabled=true \
                 (or http-server.authentication.allow-insecure-over-http=true)",
            ));
        }
        let file = config.non_empty("http-server.authentication.password-file")?;
        Ok(Some(resolve(base, PathBuf::from(file))))
    }

    fn load_state_store(etc: &Path) -> Result<StateStoreSettings, ConfigError> {
        let file = PropertiesFile::load(&etc.join("state-store.properties"), true)?;
        let reader = Reader::new(&file, STATE_STORE_KEYS)?;
        reader.choice("state-store.type", &["raft"])?;
        let bootstrap_expect = reader.u64("state-store.bootstrap-expect")?;
        if !(1..=9).contains(&bootstrap_expect) {
            return Err(reader.invalid("state-store.bootstrap-expect", "must be from 1 to 9"));
        }
        let settings = StateStoreSettings {
            bootstrap_expect: bootstrap_expect as usize,
            heartbeat_interval: reader.duration("state-store.heartbeat-interval")?,
            election_timeout_min: reader.duration("state-store.election-timeout.min")?,
            election_timeout_max: reader.duration("state-store.election-timeout.max")?,
            snapshot_log_count: reader.u64("state-store.snapshot.log-count")?,
            request_timeout: reader.duration("state-store.request-timeout")?,
        };
        if settings.election_timeout_min <= settings.heartbeat_interval {
            return Err(reader.invalid(
                "state-store.election-timeout.min",
                "must be longer than state-store.heartbeat-interval",
            ));
        }
        if settings.election_timeout_max <= settings.election_timeout_min {
            return Err(reader.invalid(
                "state-store.election-timeout.max",
                "must be longer than state-store.election-timeout.min",
            ));
        }
        if settings.snapshot_log_count == 0 {
            return Err(reader.invalid("state-store.snapshot.log-count", "must be 1 or more"));
        }
        Ok(settings)
    }

    /// Whether `user` may see and cancel every user's queries (`query.admin-users`).
    pub fn is_admin(&self, user: &str) -> bool {
        self.admin_users.iter().any(|a| a == user)
    }

    /// The state store's own data directory inside the node's.
    pub fn state_store_dir(&self) -> PathBuf {
        self.data_dir.join("state-store")
    }

    pub fn store_config(&self, internal_url: &str) -> StoreConfig {
        let mut store = StoreConfig::new(self.node_id, self.state_store_dir(), internal_url)
            .with_secret(self.secret.clone());
        let settings = &self.state_store;
        store.heartbeat_interval = settings.heartbeat_interval;
        store.election_timeout_min = settings.election_timeout_min;
        store.election_timeout_max = settings.election_timeout_max;
        store.snapshot_after_logs = settings.snapshot_log_count;
        store.request_timeout = settings.request_timeout;
        // Formation admits an empty store only once the cluster does not know it as a voter.
        store.wait_to_accept_raft = true;
        store
    }
}
