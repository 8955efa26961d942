//! `shoal local`: a whole cluster on this machine as child processes on free ports, with a
//! data directory holding each node's files and the seed directory (or, with `--storage s3`,
//! an S3-compatible server holding warehouse, seeds and sample data), and `cluster.json`
//! describing the nodes for scripts and tests.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::http::AdminClient;
use crate::Failure;

mod s3;
mod sample;

/// Where `shoal local` keeps the warehouse, the seeds and the sample data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// Directories of the data directory.
    Local,
    /// A bucket of an S3-compatible server (s3s-fs) started beside the cluster.
    S3,
}

#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// How many coordinators to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    coordinators: u64,
    /// How many workers to start.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=16))]
    workers: u64,
    /// Directory for every node's files and the seed directory (default: a temporary one,
    /// removed at exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only start the cluster and wait for Ctrl-C or SIGTERM, without the SQL shell.
    #[arg(long)]
    no_shell: bool,
    /// Do not load the TPC-H sample tables into schema `tpch`.
    #[arg(long)]
    no_sample_data: bool,
    /// TPC-H scale factor of the sample data.
    #[arg(long, default_value_t = 0.01)]
    sample_scale: f64,
    /// Where the warehouse, the seeds and the sample data live: local directories, or a
    /// bucket of an S3-compatible server on loopback (needs s3s-fs installed).
    #[arg(long, value_enum, default_value = "local")]
    storage: StorageKind,
}

#[derive(Debug, Serialize)]
struct NodeEntry {
    role: &'static str,
    id: serde_json::Value,
    client_url: Option<String>,
    internal_url: String,
    pid: u32,
    log: String,
}

#[derive(Debug, Serialize)]
struct ClusterFile {
    nodes: Vec<NodeEntry>,
}

struct Node {
    entry: NodeEntry,
    exited: bool,
}

/// Exits of children: the node's index and how it ended.
type Exits = mpsc::UnboundedReceiver<(usize, std::io::Result<ExitStatus>)>;

/// Wait for every child in the background, reporting each exit on the returned channel.
fn watch_exits(children: Vec<Child>) -> Exits {
    let (tx, rx) = mpsc::unbounded_channel();
    for (index, mut child) in children.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send((index, child.wait().await));
        });
    }
    rx
}

pub fn run(args: LocalArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::runtime(e.into()))?;
    let result = runtime
        .block_on(run_cluster(args))
        .map_err(Failure::runtime);
    // The shell's thread may still wait for a line; it is not waited for.
    runtime.shutdown_background();
    result
}

async fn run_cluster(args: LocalArgs) -> anyhow::Result<()> {
    let temporary = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("shoal-local-").tempdir()?),
    };
    let data_dir = match (&args.data_dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => bail!("no data directory"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let secret = random_secret();
    let mut s3_server = None;
    if args.storage == StorageKind::S3 {
        let (server, child) = s3::start(&data_dir, free_port)?;
        s3::wait_listening(&server, Duration::from_secs(30)).await?;
        println!(
            "shoal local: S3 server {} (bucket {}, objects under {})",
            server.endpoint(),
            s3::BUCKET,
            s3::Server::bucket_dir(&data_dir).display()
        );
        s3_server = Some((server, child));
    }
    let storage = s3_server.as_ref().map(|(server, _)| server);
    let mut started = Vec::new();
    for id in 1..=args.coordinators {
        started.push(start_coordinator(
            &data_dir,
            id,
            args.coordinators,
            &secret,
            storage,
        )?);
    }
    for index in 1..=args.workers {
        started.push(start_worker(
            &data_dir,
            &format!("worker-{index}"),
            &secret,
            storage,
        )?);
    }
    let (mut nodes, children): (Vec<Node>, Vec<Child>) = started.into_iter().unzip();
    let mut exits = watch_exits(children);
    write_cluster_file(&data_dir, &nodes)?;
    println!("shoal local: data directory {}", data_dir.display());
    match wait_ready(&nodes, Duration::from_secs(60)).await {
        Ok(()) => {
            println!("shoal local: {} coordinators ready", args.coordinators);
            for node in &nodes {
                match &node.entry.client_url {
                    Some(url) => println!("  coordinator {}  {url}", node.entry.id),
                    None => println!("  worker {}  {}", node.entry.id, node.entry.internal_url),
                }
            }
        }
        Err(e) => eprintln!("shoal local: {e:#}"),
    }
    let servers: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.entry.client_url.clone())
        .collect();
    if !args.no_sample_data {
        match sample::load(&data_dir, args.sample_scale, &servers, storage.is_some()).await {
            Ok(()) => println!(
                "shoal local: TPC-H sample tables (scale {}) in schema tpch",
                args.sample_scale
            ),
            Err(e) => eprintln!("shoal local: no sample data: {e:#}"),
        }
    }
    if args.no_shell {
        supervise(&mut nodes, &mut exits).await;
    } else {
        let schema = (!args.no_sample_data).then(|| "tpch".to_string());
        shell_while_supervising(&mut nodes, &mut exits, servers, schema).await;
    }
    stop_all(&mut nodes, &mut exits).await;
    // The nodes withdraw their seeds as they stop: the server goes last.
    if let Some((_, mut child)) = s3_server {
        let _ = child.kill().await;
    }
    drop(temporary);
    Ok(())
}

pub(crate) fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for round in 0..4u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(round);
        hasher.write_u128(Instant::now().elapsed().as_nanos());
        hasher.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// A port that is free now, below the kernel's ephemeral range (32768 and up, where port-0
/// listeners and the source ports of outgoing connections come from), so no connection takes
/// it before the node that is handed it binds it; never the same twice in this process.
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // A random start: several `shoal local` running at once hand out different ports.
    static START: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        (hasher.finish() % u64::from(SPAN)) as u16
    });
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = LOW + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {LOW} and {}", LOW + SPAN)
}

/// The warehouse and the external-table location of the coordinators, and the seed-store
/// configuration of every node, for `storage`; writes the bucket's profile into `etc`.
fn storage_settings(
    etc: &Path,
    data_dir: &Path,
    storage: Option<&s3::Server>,
) -> anyhow::Result<(String, String, String)> {
    std::fs::write(
        etc.join("filesystem").join("local.properties"),
        "fs.client.type=local\n",
    )?;
    Ok(match storage {
        None => (
            data_dir.join("warehouse").display().to_string(),
            data_dir.join("sample").display().to_string(),
            format!(
                "seed-store.type=filebased\nseed-store.filesystem.profile=local\nseed-store.filesystem.seed-dir={}\n",
                data_dir.join("seeds").display()
            ),
        ),
        Some(server) => {
            std::fs::write(
                etc.join("filesystem").join(format!("{}.properties", s3::PROFILE)),
                server.profile(),
            )?;
            (
                format!("s3://{}/warehouse", s3::BUCKET),
                format!("s3://{}/sample", s3::BUCKET),
                format!(
                    "seed-store.type=filebased\nseed-store.filesystem.profile={}\nseed-store.filesystem.seed-dir=seeds\n",
                    s3::PROFILE
                ),
            )
        }
    })
}

fn write_etc(
    etc: &Path,
    data_dir: &Path,
    (id, expect): (u64, u64),
    secret: &str,
    ports: (u16, u16),
    storage: Option<&s3::Server>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(etc.join("filesystem"))?;
    let (warehouse, external, seeds) = storage_settings(etc, data_dir, storage)?;
    let node_dir = data_dir.join(format!("coordinator-{id}"));
    std::fs::write(
        etc.join("config.properties"),
        format!(
            "node.id={id}\nnode.environment=local\nnode.data-dir={}\nnode.internal-address=127.0.0.1\n\
             node.bind-address=127.0.0.1\nhttp-server.http.port={}\ninternal-communication.http.port={}\n\
             internal-communication.shared-secret={secret}\ncatalog.warehouse={}\n\
             catalog.external-locations={}\n",
            node_dir.join("data").display(),
            ports.0,
            ports.1,
            warehouse,
            external
        ),
    )?;
    std::fs::write(
        etc.join("state-store.properties"),
        format!("state-store.type=raft\nstate-store.bootstrap-expect={expect}\n"),
    )?;
    std::fs::write(etc.join("seed-store.properties"), seeds)?;
    Ok(())
}

fn start_coordinator(
    data_dir: &Path,
    id: u64,
    expect: u64,
    secret: &str,
    storage: Option<&s3::Server>,
) -> anyhow::Result<(Node, Child)> {
    let node_dir = data_dir.join(format!("coordinator-{id}"));
    let etc = node_dir.join("etc");
    // A data directory from an earlier run keeps its configuration: same ports, same secret,
    // so the restarted coordinators find each other where the state store knows them.
    let ports = if etc.join("config.properties").is_file() {
        let config = shoal_coordinator::CoordinatorConfig::load(&etc)
            .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
        (config.client_port, config.internal_port)
    } else {
        let ports = (free_port()?, free_port()?);
        write_etc(&etc, data_dir, (id, expect), secret, ports, storage)?;
        ports
    };
    let log_path = node_dir.join("coordinator.log");
    let child = spawn_node("coordinator", &etc, &log_path)?;
    Ok((
        Node {
            entry: NodeEntry {
                role: "coordinator",
                id: serde_json::Value::from(id),
                client_url: Some(format!("http://127.0.0.1:{}", ports.0)),
                internal_url: format!("http://127.0.0.1:{}", ports.1),
                pid: child.id().unwrap_or_default(),
                log: log_path.display().to_string(),
            },
            exited: false,
        },
        child,
    ))
}

fn write_cluster_file(data_dir: &Path, nodes: &[Node]) -> anyhow::Result<()> {
    let file = ClusterFile {
        nodes: nodes
            .iter()
            .map(|n| NodeEntry {
                role: n.entry.role,
                id: n.entry.id.clone(),
                client_url: n.entry.client_url.clone(),
                internal_url: n.entry.internal_url.clone(),
                pid: n.entry.pid,
                log: n.entry.log.clone(),
            })
            .collect(),
    };
    let path = data_dir.join("cluster.json");
    let temporary = data_dir.join(".cluster.json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(&file)?)?;
    std::fs::rename(&temporary, &path)?;
    Ok(())
}

/// Wait until every coordinator says it is no longer starting.
async fn wait_ready(nodes: &[Node], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for node in nodes {
        let Some(url) = &node.entry.client_url else {
            continue;
        };
        let client = AdminClient::new(url, None, None)?;
        loop {
            let info = client.get::<serde_json::Value>("/v1/info").await;
            if matches!(&info, Ok(v) if v["starting"] == false) {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "coordinator {} not ready within {timeout:?} (log: {})",
                    node.entry.id,
                    node.entry.log
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn report_exit(node: &mut Node, status: std::io::Result<ExitStatus>) {
    node.exited = true;
    let how = match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    println!(
        "shoal local: {} {} (pid {}) exited: {how} (log: {})",
        node.entry.role, node.entry.id, node.entry.pid, node.entry.log
    );
}

/// Report children that die, one line each, until Ctrl-C or SIGTERM.
async fn supervise(nodes: &mut [Node], exits: &mut Exits) {
    let stop = crate::signals::terminated();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            exit = exits.recv() => match exit {
                Some((index, status)) => report_exit(&mut nodes[index], status),
                None => return,
            },
        }
    }
}

/// Run the SQL shell on every coordinator until it ends (Ctrl-D) or SIGTERM, reporting nodes
/// that exit meanwhile. Ctrl-C belongs to the shell: it cancels the running query.
async fn shell_while_supervising(
    nodes: &mut [Node],
    exits: &mut Exits,
    servers: Vec<String>,
    schema: Option<String>,
) {
    let handle = tokio::runtime::Handle::current();
    let shell = tokio::task::spawn_blocking(move || {
        if let Err(failure) = crate::sql::shell_on(&handle, servers, schema) {
            eprintln!("shoal local: {failure}");
        }
    });
    tokio::pin!(shell);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(terminated);
    loop {
        tokio::select! {
            _ = &mut shell => return,
            _ = &mut terminated => return,
            exit = exits.recv() => match exit {
                Some((index, status)) => report_exit(&mut nodes[index], status),
                None => return,
            },
        }
    }
}

fn signal(nodes: &[Node], signal: nix::sys::signal::Signal) {
    for node in nodes.iter().filter(|n| !n.exited) {
        let pid = nix::unistd::Pid::from_raw(node.entry.pid as i32);
        let _ = nix::sys::signal::kill(pid, signal);
    }
}

/// Wait until every child has exited or `timeout` passed; true if all exited.
async fn await_exits(nodes: &mut [Node], exits: &mut Exits, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while nodes.iter().any(|n| !n.exited) {
        match tokio::time::timeout_at(deadline, exits.recv()).await {
            Ok(Some((index, _))) => nodes[index].exited = true,
            Ok(None) | Err(_) => return false,
        }
    }
    true
}

/// SIGTERM every child, then SIGKILL whatever is still running after 10 s.
async fn stop_all(nodes: &mut [Node], exits: &mut Exits) {
    println!("shoal local: stopping");
    signal(nodes, nix::sys::signal::Signal::SIGTERM);
    if await_exits(nodes, exits, Duration::from_secs(10)).await {
        return;
    }
    for node in nodes.iter().filter(|n| !n.exited) {
        eprintln!(
            "shoal local: {} {} did not stop in time; killing it",
            node.entry.role, node.entry.id
        );
    }
    signal(nodes, nix::sys::signal::Signal::SIGKILL);
    await_exits(nodes, exits, Duration::from_secs(5)).await;
}

fn start_worker(
    data_dir: &Path,
    name: &str,
    secret: &str,
    storage: Option<&s3::Server>,
) -> anyhow::Result<(Node, Child)> {
    let node_dir = data_dir.join(name);
    let etc = node_dir.join("etc");
    let port = if etc.join("config.properties").is_file() {
        shoal_worker::WorkerConfig::load(&etc)
            .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?
            .internal_port
    } else {
        let port = free_port()?;
        std::fs::create_dir_all(etc.join("filesystem"))?;
        std::fs::write(
            etc.join("config.properties"),
            format!(
                "node.id={name}\nnode.environment=local\nnode.data-dir={}\nnode.internal-address=127.0.0.1\n\
                 node.bind-address=127.0.0.1\ninternal-communication.http.port={port}\n\
                 internal-communication.shared-secret={secret}\n",
                node_dir.join("data").display()
            ),
        )?;
        let (_, _, seeds) = storage_settings(&etc, data_dir, storage)?;
        std::fs::write(etc.join("seed-store.properties"), seeds)?;
        port
    };
    let log_path = node_dir.join("worker.log");
    let child = spawn_node("worker", &etc, &log_path)?;
    Ok((
        Node {
            entry: NodeEntry {
                role: "worker",
                id: serde_json::Value::from(name),
                client_url: None,
                internal_url: format!("http://127.0.0.1:{port}"),
                pid: child.id().unwrap_or_default(),
                log: log_path.display().to_string(),
            },
            exited: false,
        },
        child,
    ))
}

/// Run `shoal ROLE --etc ETC` with its output in `log`.
fn spawn_node(role: &str, etc: &Path, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log)?;
    Command::new(std::env::current_exe()?)
        .arg(role)
        .arg("--etc")
        .arg(etc)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // A process group of its own: Ctrl-C in the terminal reaches `shoal local` (which
        // cancels the shell's query or stops the cluster in order), not every node at once.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start a {role}"))
}
