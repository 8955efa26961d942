//! Coordinators as real processes of the built `shoal` binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// Whether process `pid` runs (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// The `shoal` binary, built (once per test process) if needed.
pub fn shoal_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("SHOAL_BIN") {
                return PathBuf::from(path);
            }
            let exe = std::env::current_exe().expect("running executable");
            // Test executables live in <target>/<profile>/deps, benchmarks in <target>/<profile>.
            let mut profile_dir = exe.parent().expect("executable directory").to_path_buf();
            if profile_dir.ends_with("deps") {
                profile_dir = profile_dir
                    .parent()
                    .map(Path::to_path_buf)
                    .expect("profile directory");
            }
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "--quiet", "-p", "shoal"]);
            // Cargo gives this process its package's variables (CARGO_PKG_NAME, ...). Some
            // build scripts (ring's) rebuild when those change, so the nested build would
            // redo, and undo, what the outer one built: run it with the outer environment.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                let per_package = [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                    || name == "CARGO_PRIMARY_PACKAGE"
                    || name == "CARGO_TARGET_TMPDIR";
                if per_package {
                    build.env_remove(name.as_ref());
                }
            }
            if profile_dir.ends_with("release") {
                build.arg("--release");
            } else {
                // Test builds can inject faults (`SHOAL_FAILPOINTS`); release builds cannot.
                build.args(["--features", "failpoints"]);
            }
            let status = build.status().expect("run cargo build -p shoal");
            assert!(status.success(), "cargo build -p shoal failed");
            let binary = profile_dir.join("shoal");
            assert!(binary.is_file(), "no shoal binary at {}", binary.display());
            binary
        })
        .clone()
}

/// A port that is free now and that nothing else will be handed in the meantime: below the
/// kernel's ephemeral range (32768 and up), where port-0 listeners and the source ports of
/// outgoing connections come from, and never the same twice in this process. (A port taken
/// from the ephemeral range could be given to another socket before the node binds it.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; each starts somewhere else in the range.
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = LOW + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

/// `shoal ROLE --etc ETC`, logging at `filter` to `log`, in network namespace `namespace`
/// if one is given.
fn spawn_role(
    role: &str,
    etc: &Path,
    log: std::fs::File,
    filter: &str,
    env: &[(String, String)],
    namespace: Option<&str>,
) -> Child {
    let mut command = match namespace {
        // `ip netns exec` execs the program itself: the child's pid is the node's.
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(shoal_binary());
            command
        }
        None => Command::new(shoal_binary()),
    };
    command
        .args([role, "--etc"])
        .arg(etc)
        .env("SHOAL_LOG", filter)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start a {role}: {e}"))
}

/// `shoal sql --server SERVERS`, quiet logging, no input; callers add the rest.
pub fn sql_command(servers: &str) -> Command {
    let mut command = Command::new(shoal_binary());
    command
        .args(["sql", "--server", servers])
        .env("SHOAL_LOG", "error")
        .stdin(Stdio::null());
    command
}

/// One coordinator's files and, while it runs, its process.
pub struct CoordinatorProcess {
    pub id: u64,
    pub etc: PathBuf,
    pub client_url: String,
    pub internal_url: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl CoordinatorProcess {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// How the process ended, once it has (None while it runs or when it was never started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The node's data directory (its state store among it).
    pub fn data_dir(&self) -> PathBuf {
        self.etc
            .parent()
            .map(|dir| dir.join("data"))
            .unwrap_or_else(|| self.etc.join("data"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A cluster of coordinator processes sharing one seed directory.
pub struct ProcessCluster {
    pub dir: tempfile::TempDir,
    pub secret: String,
    pub bootstrap_expect: u64,
    /// Lines added to every coordinator's config.properties.
    pub extra_config: String,
    /// `catalog.cleanup-interval` of the coordinators: 1s, so tests see files go soon.
    pub cleanup_interval: String,
    /// Lines added to every worker's config.properties.
    pub worker_extra_config: String,
    /// Environment of coordinators started from now on (e.g. `SHOAL_FAILPOINTS`).
    pub coordinator_env: Vec<(String, String)>,
    pub coordinators: BTreeMap<u64, CoordinatorProcess>,
    pub workers: BTreeMap<String, Child>,
    /// When the coordinators serve HTTPS: the PEM file of the authority their certificate
    /// chains to (client URLs are then https://, and haadmin trusts it).
    pub client_ca: Option<PathBuf>,
    /// When coordinators run in network namespaces of their own (see [`ProcessCluster::cut`]).
    pub network: Option<crate::netns::Network>,
    /// `catalog.warehouse` of the coordinators; None for a directory of the cluster's.
    pub warehouse: Option<String>,
    /// Files (path inside etc, text) written into every coordinator's and worker's etc
    /// directory, such as file-system profiles.
    pub etc_files: Vec<(String, String)>,
    /// Locations allowed to external tables besides [`ProcessCluster::external_dir`].
    pub external_locations: Vec<String>,
    /// The file-system profile (one of [`ProcessCluster::etc_files`]) and directory of the
    /// seeds; None for [`ProcessCluster::seed_dir`] on the local file system.
    pub seed_profile: Option<(String, String)>,
}

impl ProcessCluster {
    pub fn new(bootstrap_expect: u64) -> Self {
        ProcessCluster {
            dir: tempfile::Builder::new()
                .prefix("shoal-test-")
                .tempdir()
                .expect("tempdir"),
            secret: "process-test-secret".into(),
            bootstrap_expect,
            extra_config: String::new(),
            cleanup_interval: "1s".into(),
            worker_extra_config: String::new(),
            coordinator_env: Vec::new(),
            coordinators: BTreeMap::new(),
            workers: BTreeMap::new(),
            client_ca: None,
            network: None,
            warehouse: None,
            etc_files: Vec::new(),
            external_locations: Vec::new(),
            seed_profile: None,
        }
    }

    /// Run coordinators configured from now on in network namespaces of their own, so that
    /// [`ProcessCluster::cut`] can partition them. Panics where namespaces cannot be made.
    pub fn use_network_namespaces(&mut self) {
        match crate::netns::Network::new() {
            Ok(network) => self.network = Some(network),
            Err(e) => panic!("this test needs network namespaces (root and iproute2): {e}"),
        }
    }

    /// Cut coordinator `id` off every other node (`cut`), or link it again; its clients
    /// still reach it. Needs [`ProcessCluster::use_network_namespaces`].
    pub fn cut(&self, id: u64, cut: bool) -> Result<(), String> {
        self.network
            .as_ref()
            .ok_or("the cluster runs without network namespaces")?
            .cut(id, cut)
    }

    /// Where this cluster's external tables may point (`catalog.external-locations`).
    pub fn external_dir(&self) -> PathBuf {
        self.dir.path().join("external")
    }

    pub fn seed_dir(&self) -> PathBuf {
        self.dir.path().join("seeds")
    }

    /// `seed-store.properties` of every node: fast heartbeats, seeds where the cluster keeps
    /// them.
    fn seed_store_properties(&self) -> String {
        let (profile, dir) = self
            .seed_profile
            .clone()
            .unwrap_or_else(|| ("local".into(), self.seed_dir().display().to_string()));
        format!(
            "seed-store.filesystem.profile={profile}\nseed-store.filesystem.seed-dir={dir}\n\
             seed-store.seed.heartbeat=200ms\nseed-store.seed.heartbeat.timeout=1s\n"
        )
    }

    /// Write coordinator `id`'s etc directory (once; later starts reuse it and its ports).
    pub fn configure(&mut self, id: u64) -> &CoordinatorProcess {
        if !self.coordinators.contains_key(&id) {
            let node_dir = self.dir.path().join(format!("coordinator-{id}"));
            let etc = node_dir.join("etc");
            std::fs::create_dir_all(etc.join("filesystem")).expect("etc");
            let (client, internal) = (free_port(), free_port());
            let (bind, internal_ip, client_ip) = match self.network.as_mut() {
                Some(network) => {
                    network
                        .namespace(id)
                        .unwrap_or_else(|e| panic!("coordinator {id}'s namespace: {e}"));
                    (
                        "0.0.0.0".to_string(),
                        network.internal_ip(id),
                        network.client_ip(id),
                    )
                }
                None => ("127.0.0.1".into(), "127.0.0.1".into(), "127.0.0.1".into()),
            };
            let files = [
                (
                    "config.properties",
                    format!(
                        "node.id={id}\nnode.environment=test\nnode.data-dir={}\nnode.bind-address={bind}\n\
                         node.internal-address={internal_ip}\n\
                         http-server.http.port={client}\ninternal-communication.http.port={internal}\n\
                         internal-communication.shared-secret={}\ncatalog.warehouse={}\n\
                         catalog.external-locations={}\ncatalog.cleanup-interval={}\n{}",
                        node_dir.join("data").display(),
                        self.secret,
                        self.warehouse.clone().unwrap_or_else(|| self.dir
                            .path()
                            .join("warehouse")
                            .display()
                            .to_string()),
                        std::iter::once(self.external_dir().display().to_string())
                            .chain(self.external_locations.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(","),
                        self.cleanup_interval,
                        self.extra_config
                    ),
                ),
                (
                    "state-store.properties",
                    format!("state-store.bootstrap-expect={}\n", self.bootstrap_expect),
                ),
                ("seed-store.properties", self.seed_store_properties()),
                ("filesystem/local.properties", "fs.client.type=local\n".to_string()),
            ];
            for (name, text) in files
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .chain(self.etc_files.iter().cloned())
            {
                std::fs::write(etc.join(name), text).expect("write etc");
            }
            self.coordinators.insert(
                id,
                CoordinatorProcess {
                    id,
                    etc,
                    client_url: format!(
                        "{}://{client_ip}:{client}",
                        if self.client_ca.is_some() {
                            "https"
                        } else {
                            "http"
                        }
                    ),
                    internal_url: format!("http://{internal_ip}:{internal}"),
                    log: node_dir.join("coordinator.log"),
                    child: None,
                },
            );
        }
        &self.coordinators[&id]
    }

    /// Start coordinator `id` (configuring it first if new).
    pub fn start(&mut self, id: u64) {
        self.configure(id);
        let coordinator = self.coordinators.get_mut(&id).expect("configured");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&coordinator.log)
            .expect("log file");
        let namespace = self
            .network
            .as_mut()
            .map(|n| n.namespace(id).expect("the coordinator's namespace"));
        let child = spawn_role(
            "coordinator",
            &coordinator.etc,
            log,
            "info,openraft=error",
            &self.coordinator_env,
            namespace.as_deref(),
        );
        coordinator.child = Some(child);
    }

    /// Start coordinators 1..=`count` and wait until every one has joined the cluster.
    pub fn start_joined(&mut self, count: u64) {
        for id in 1..=count {
            self.start(id);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for id in 1..=count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if crate::poll(left, || self.joined_state(id)).is_none() {
                let logs: Vec<String> = (1..=count)
                    .map(|n| format!("--- coordinator {n}\n{}", self.coordinators[&n].log_text()))
                    .collect();
                panic!(
                    "coordinator {id} did not join within 60 s\n{}",
                    logs.join("\n")
                );
            }
        }
    }

    /// Print the last lines of every node's log, for a test that failed with this cluster.
    pub fn print_log_tails(&self) {
        const LINES: usize = 150;
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        };
        for (id, coordinator) in &self.coordinators {
            eprintln!(
                "--- coordinator {id} (last {LINES} lines)\n{}",
                tail(&coordinator.log)
            );
        }
        for name in self.workers.keys() {
            let log = self
                .dir
                .path()
                .join(format!("worker-{name}"))
                .join("worker.log");
            eprintln!("--- worker {name} (last {LINES} lines)\n{}", tail(&log));
        }
    }

    /// The client URLs of coordinators 1..=`count`.
    pub fn client_urls(&self, count: u64) -> Vec<String> {
        (1..=count).map(|id| self.client_url(id)).collect()
    }

    /// Start worker `name`, finding the coordinators through the cluster's seed directory.
    pub fn start_worker(&mut self, name: &str) {
        let etc = self.configure_worker(name);
        let dir = etc.parent().expect("the worker's directory").to_path_buf();
        let log = std::fs::File::create(dir.join("worker.log")).expect("worker log");
        let child = spawn_role("worker", &etc, log, "info", &[], None);
        self.workers.insert(name.to_string(), child);
    }

    /// Write worker `name`'s etc directory and return it.
    pub fn configure_worker(&mut self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("worker-{name}"));
        let etc = dir.join("etc");
        std::fs::create_dir_all(etc.join("filesystem")).expect("worker etc");
        // With coordinators in namespaces, workers are on the bridge's own address.
        let address = self
            .network
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.host_ip());
        let files = [
            (
                "config.properties",
                format!(
                    "node.id={name}\nnode.environment=test\nnode.data-dir={}\nnode.bind-address={address}\n\
                     node.internal-address={address}\n\
                     internal-communication.http.port=0\ninternal-communication.shared-secret={}\n\
                     worker.heartbeat-interval=200ms\n{}",
                    dir.join("data").display(),
                    self.secret,
                    self.worker_extra_config
                ),
            ),
            ("seed-store.properties", self.seed_store_properties()),
            ("filesystem/local.properties", "fs.client.type=local\n".to_string()),
        ];
        for (file, text) in files
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .chain(self.etc_files.iter().cloned())
        {
            std::fs::write(etc.join(file), text).expect("write worker etc");
        }
        etc
    }

    /// Start workers `names` and wait until coordinators 1..=`coordinators` all see them, so
    /// queries from then on are driven by workers.
    pub fn start_workers_seen(&mut self, names: &[&str], coordinators: u64) {
        for name in names {
            self.start_worker(name);
        }
        let expected = self.workers.len() as u64;
        for id in 1..=coordinators {
            let mut client = crate::trino::TrinoClient::new(vec![self.client_url(id)], "harness");
            crate::wait_until(
                Duration::from_secs(60),
                &format!("coordinator {id} sees {expected} workers"),
                || {
                    client
                        .execute("SELECT count(*) FROM system.runtime.nodes WHERE NOT coordinator")
                        .is_ok_and(|r| r.rows[0][0] == expected)
                },
            );
        }
    }

    /// Worker `name`'s internal URL, as coordinator 1 lists it in `system.runtime.nodes`.
    pub fn worker_url(&self, name: &str) -> String {
        let rows = crate::trino::TrinoClient::new(vec![self.client_url(1)], "harness")
            .execute(&format!(
                "SELECT http_uri FROM system.runtime.nodes WHERE node_id = '{name}'"
            ))
            .expect("the nodes table")
            .rows;
        rows.first()
            .and_then(|row| row[0].as_str())
            .unwrap_or_else(|| panic!("coordinator 1 does not list worker {name}"))
            .to_string()
    }

    /// `kill -9` of worker `name`.
    pub fn kill_worker(&mut self, name: &str) {
        if let Some(mut child) = self.workers.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.coordinators.get_mut(&id).and_then(|c| c.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stays but answers nothing until [`ProcessCluster::resume`].
    pub fn pause(&self, id: u64) {
        self.signal(id, nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT after [`ProcessCluster::pause`].
    pub fn resume(&self, id: u64) {
        self.signal(id, nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, id: u64, signal: nix::sys::signal::Signal) {
        if let Some(child) = self.coordinators.get(&id).and_then(|c| c.child.as_ref()) {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// The pid of coordinator `id` while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.coordinators
            .get(&id)
            .and_then(|c| c.child.as_ref())
            .map(|c| c.id())
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 15 s).
    pub fn stop(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        let mut child = self
            .coordinators
            .get_mut(&id)
            .and_then(|c| c.child.take())?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        match crate::poll(Duration::from_secs(15), || child.try_wait().ok().flatten()) {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }

    pub fn client_url(&self, id: u64) -> String {
        self.coordinators[&id].client_url.clone()
    }

    /// Run `shoal haadmin ARGS... --json` with the cluster secret.
    pub fn haadmin(&self, args: &[&str]) -> Output {
        let mut command = Command::new(shoal_binary());
        command.arg("haadmin").args(args);
        if let Some(ca) = &self.client_ca {
            command.arg("--ca-file").arg(ca);
        }
        command
            .env("SHOAL_CLUSTER_SECRET", &self.secret)
            .env("SHOAL_LOG", "error")
            .output()
            .expect("run haadmin")
    }

    /// `haadmin --json SUBCOMMAND --server <coordinator id>` as JSON, or None on failure.
    pub fn admin_json(&self, id: u64, subcommand: &[&str]) -> Option<Value> {
        let server = self.client_url(id);
        let mut args = vec!["--json"];
        args.extend_from_slice(subcommand);
        args.extend_from_slice(&["--server", &server]);
        let output = self.haadmin(&args);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The coordinator's HA state once it has joined the cluster and knows a leader.
    pub fn joined_state(&self, id: u64) -> Option<Value> {
        self.admin_json(id, &["get-state"])
            .filter(|s| s["joined"] == true && s["leader"].is_u64())
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        let ids: Vec<u64> = self.coordinators.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
        let workers: Vec<String> = self.workers.keys().cloned().collect();
        for name in workers {
            self.kill_worker(&name);
        }
    }
}
