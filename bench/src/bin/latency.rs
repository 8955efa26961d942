//! Latency benchmark: what a short query costs. A cluster of real processes (three
//! coordinators and two workers) answers `SELECT 1` through the client protocol: one client
//! on one coordinator (p50 and p99), then 16 and 32 clients spread over the coordinators
//! (queries per second), and 32 clients over five coordinators. The state-store writes per
//! query come from the coordinators' `shoal_state_store_writes_total`, the Raft entries (which
//! batch writes) from `shoal_raft_applied_index`. The peer in the
//! same run is a three-member etcd: one client's put latency, the least a replicated write
//! costs on this machine. Prints one JSON line.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use shoal_bench::etcd::{EtcdClient, EtcdCluster};
use shoal_bench::stats::{round3, summarise, Summary};
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

const SQL: &str = "SELECT 1";

#[derive(Debug, Parser)]
struct Args {
    /// Timed queries of the one client.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Seconds each run of many clients lasts.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Without the result spool (`query.result-spool=none`), to measure what it costs.
    #[arg(long)]
    no_result_spool: bool,
    /// Skip etcd even if it is on PATH.
    #[arg(long)]
    no_etcd: bool,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Serialize)]
struct Run {
    coordinators: u64,
    clients: usize,
    queries: u64,
    queries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// State-store writes (transactions) of all coordinators while the run lasted, per query.
    writes_per_query: f64,
    /// Raft entries applied while the run lasted, per query (several writes may share one).
    raft_entries_per_query: f64,
    /// Queries that failed (each is reported, none is counted as answered).
    errors: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    sql: &'static str,
    workers: usize,
    result_spool: bool,
    /// One client, one coordinator (of three), `samples` queries one after another.
    one_client: Run,
    /// Many clients, each on one coordinator, in turn.
    many_clients: Vec<Run>,
    /// State-store writes per second with no query running (included in the runs' figures).
    idle_writes_per_s: f64,
    etcd_version: Option<String>,
    /// One client's sequential puts to a three-member etcd.
    etcd_put_p50_ms: Option<f64>,
    etcd_put_p99_ms: Option<f64>,
    /// Shoal's `SELECT 1` p50 over etcd's put p50.
    select_1_over_etcd_put_p50: Option<f64>,
    /// Five coordinators' queries per second over three's, 32 clients each.
    five_over_three_coordinators: f64,
}

/// What the coordinators at `urls` report in `/metrics`: the highest Raft log index any of
/// them applied, and the state-store writes of all of them together.
fn counters(urls: &[String]) -> anyhow::Result<(u64, u64)> {
    let mut applied = 0;
    let mut writes = 0;
    for url in urls {
        let text = ureq::get(format!("{url}/metrics"))
            .call()
            .with_context(|| format!("metrics of {url}"))?
            .body_mut()
            .read_to_string()?;
        let sample = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("{url} reports no {name}"))
        };
        applied = applied.max(sample("shoal_raft_applied_index")? as u64);
        writes += sample("shoal_state_store_writes_total")? as u64;
    }
    Ok((applied, writes))
}

fn cluster(coordinators: u64, args: &Args) -> ProcessCluster {
    let mut cluster = ProcessCluster::new(coordinators);
    // The shipped cleanup interval, not the test clusters' one-second sweep.
    cluster.cleanup_interval = "1m".into();
    if args.no_result_spool {
        cluster.extra_config = "query.result-spool=none\n".into();
    }
    cluster.start_joined(coordinators);
    cluster.start_workers_seen(&["w1", "w2"], coordinators);
    cluster
}

/// `clients` clients, client `i` on coordinator `i % urls.len()`, each running `SELECT 1`
/// one after another for `seconds`; or `samples` queries when there is one client.
fn run(
    urls: &[String],
    clients: usize,
    seconds: f64,
    samples: Option<usize>,
) -> anyhow::Result<Run> {
    let before = counters(urls)?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            std::thread::spawn(move || {
                let mut client = TrinoClient::new(vec![url], "bench");
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                loop {
                    let done = match samples {
                        Some(n) => latencies.len() + errors as usize >= n,
                        None => Instant::now() >= until,
                    };
                    if done {
                        break;
                    }
                    let one = Instant::now();
                    match client.execute(SQL) {
                        Ok(_) => latencies.push(one.elapsed()),
                        Err(e) => {
                            errors += 1;
                            eprintln!("{SQL} failed: {e}");
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for thread in threads {
        let (mine, failed) = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))?;
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed();
    let after = counters(urls)?;
    let summary: Summary = summarise(latencies, elapsed);
    Ok(Run {
        coordinators: urls.len() as u64,
        clients,
        queries: summary.operations,
        queries_per_s: round3(summary.per_second),
        p50_ms: round3(summary.p50_ms),
        p99_ms: round3(summary.p99_ms),
        writes_per_query: round3(
            after.1.saturating_sub(before.1) as f64 / summary.operations.max(1) as f64,
        ),
        raft_entries_per_query: round3(
            after.0.saturating_sub(before.0) as f64 / summary.operations.max(1) as f64,
        ),
        errors,
    })
}

/// One client's `samples` sequential puts to a three-member etcd, when etcd is on PATH.
fn etcd_puts(args: &Args, samples: usize) -> anyhow::Result<Option<(String, Summary)>> {
    let binary = match (args.no_etcd, EtcdCluster::binary()) {
        (false, Some(binary)) => binary,
        _ => return Ok(None),
    };
    let version = EtcdCluster::version(&binary).unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        let etcd = EtcdCluster::start(&binary, dir.path()).await?;
        let mut client = EtcdClient::connect(&etcd.client_urls[0]).await?;
        let mut latencies = Vec::with_capacity(samples);
        let started = Instant::now();
        for i in 0..samples {
            let one = Instant::now();
            client
                .put(format!("latency/{i}").into_bytes(), b"1".to_vec())
                .await?;
            latencies.push(one.elapsed());
        }
        anyhow::Ok(summarise(latencies, started.elapsed()))
    })?;
    Ok(Some((version, summary)))
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.samples = 20;
        args.seconds = 1.0;
    }
    let warm_up = (args.samples / 10).max(5);

    let three = cluster(3, &args);
    let urls = three.client_urls(3);
    run(&urls[..1], 1, 0.0, Some(warm_up))?;
    let idle_started = Instant::now();
    let idle_before = counters(&urls)?.1;
    // A pause, measured: how many writes the cluster makes on its own.
    std::thread::sleep(Duration::from_secs_f64(args.seconds.min(3.0)));
    let idle = counters(&urls)?.1.saturating_sub(idle_before) as f64
        / idle_started.elapsed().as_secs_f64();
    let one_client = run(&urls[..1], 1, 0.0, Some(args.samples))?;
    let mut many_clients = Vec::new();
    for clients in [16, 32] {
        many_clients.push(run(&urls, clients, args.seconds, None)?);
    }
    drop(three);

    let five = cluster(5, &args);
    let urls = five.client_urls(5);
    run(&urls, 5, 0.0, Some(warm_up))?;
    many_clients.push(run(&urls, 32, args.seconds, None)?);
    drop(five);

    let etcd = etcd_puts(&args, args.samples)?;
    let per_s = |coordinators: u64| {
        many_clients
            .iter()
            .find(|r| r.coordinators == coordinators && r.clients == 32)
            .map_or(0.0, |r| r.queries_per_s)
    };
    let report = Report {
        bench: "latency",
        sql: SQL,
        workers: 2,
        result_spool: !args.no_result_spool,
        idle_writes_per_s: round3(idle),
        etcd_version: etcd.as_ref().map(|(v, _)| v.clone()),
        etcd_put_p50_ms: etcd.as_ref().map(|(_, s)| round3(s.p50_ms)),
        etcd_put_p99_ms: etcd.as_ref().map(|(_, s)| round3(s.p99_ms)),
        select_1_over_etcd_put_p50: etcd
            .as_ref()
            .map(|(_, s)| round3(one_client.p50_ms / s.p50_ms.max(1e-9))),
        five_over_three_coordinators: round3(per_s(5) / per_s(3).max(1e-9)),
        one_client,
        many_clients,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
