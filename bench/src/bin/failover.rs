//! Failover benchmark: 3 coordinators and 2 workers as real processes; clients send a steady
//! stream of short queries to every coordinator and keep long streaming queries running while
//! coordinators are killed with `kill -9` in turn (the Raft leader, a follower, the one holding
//! the most running queries) and restarted. Prints one JSON line: unavailability per kill
//! (the longest time without a successful short query, from the kill until the restarted
//! coordinator is synchronized again; median, max), failed short queries, lost long queries
//! and resynchronisation times.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use serde_json::Value;
use shoal_bench::failover_client::{FailoverClient, Outcome};
use shoal_bench::stats::{longest_gap, median, round3};
use shoal_proto::CLUSTER_SECRET_HEADER;
use shoal_tests::process::ProcessCluster;
use shoal_tests::tpch::{create_tables, generate};
use shoal_tests::trino::TrinoClient;

const COORDINATORS: u64 = 3;
const SHORT_QUERY: &str = "SELECT count(*) FROM tpch.nation";
const LONG_QUERY: &str = "SELECT * FROM tpch.lineitem";

#[derive(Debug, Parser)]
struct Args {
    /// Coordinator kills, cycling through leader, follower, most running queries.
    #[arg(long, default_value_t = 6)]
    kills: usize,
    /// Seconds a killed coordinator stays down (the window unavailability is measured in).
    #[arg(long, default_value_t = 5.0)]
    down_s: f64,
    /// Seconds each long query takes: its client reads the rows at this pace.
    #[arg(long, default_value_t = 8.0)]
    long_query_s: f64,
    /// Clients sending short queries (spread over the coordinators).
    #[arg(long, default_value_t = 3)]
    short_clients: usize,
    /// Clients keeping a long query running each.
    #[arg(long, default_value_t = 3)]
    long_clients: usize,
    /// TPC-H scale factor of the sample tables.
    #[arg(long, default_value_t = 0.01)]
    sf: f64,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
}

/// Which coordinator a kill picks.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    Leader,
    Follower,
    MostRunning,
}

#[derive(Debug, Serialize)]
struct Kill {
    target: Target,
    coordinator: u64,
    unavailability_s: f64,
    resync_s: f64,
}

/// One long query: where it was sent, who drove it, how it ended.
#[derive(Debug, Clone, Serialize)]
struct LongQuery {
    query_id: String,
    /// The coordinator the client sent it to (clients rotate over all of them).
    sent_to: u64,
    /// The node that drove its last attempt (`coordinator N` or a worker's name), as the
    /// query history has it at the end of the run.
    driver: String,
    attempts: u64,
    outcome: String,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    coordinators: u64,
    workers: usize,
    kills: Vec<Kill>,
    unavailability_median_s: f64,
    unavailability_max_s: f64,
    short_queries: usize,
    failed_short_queries: usize,
    long_queries: usize,
    lost_running_queries: usize,
    long: Vec<LongQuery>,
    resync_median_s: f64,
    resync_s: f64,
    client_switches: u64,
    errors: Vec<String>,
}

/// What the client threads saw, as offsets from the start.
#[derive(Default)]
struct Seen {
    short_successes: Vec<Duration>,
    short_failures: Vec<String>,
    long_finished: usize,
    long_lost: Vec<String>,
    long: Vec<LongQuery>,
    switches: u64,
}

struct Shared {
    start: Instant,
    urls: Vec<String>,
    stop: AtomicBool,
    seen: Mutex<Seen>,
}

fn short_client(shared: Arc<Shared>, index: usize) {
    let mut client = FailoverClient::new(shared.urls.clone(), index, "short");
    client.rotate = true;
    while !shared.stop.load(Ordering::Relaxed) {
        let outcome = client.run(SHORT_QUERY, |_| {});
        let done = shared.start.elapsed();
        let mut seen = shared.seen.lock().expect("results");
        match outcome {
            Outcome::Finished { .. } => seen.short_successes.push(done),
            Outcome::Failed { error } | Outcome::GaveUp { error } => {
                seen.short_failures.push(error)
            }
        }
    }
    shared.seen.lock().expect("results").switches += client.switches;
}

fn long_client(shared: Arc<Shared>, index: usize, rows: u64, pace: Duration) {
    let mut client = FailoverClient::new(shared.urls.clone(), index, "long");
    // Each long query goes to the next coordinator, the one restarted last included.
    client.rotate = true;
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        // The load itself: a client that reads at a steady pace keeps its query running for
        // `pace` (this waits for the clock on purpose; it synchronises with nothing).
        let outcome = client.run(LONG_QUERY, |so_far| {
            let due = pace.mul_f64(so_far as f64 / rows.max(1) as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        });
        let mut seen = shared.seen.lock().expect("results");
        let ended = match outcome {
            Outcome::Finished { rows: got } if got == rows => {
                seen.long_finished += 1;
                "complete".to_string()
            }
            Outcome::Finished { rows: got } => {
                let short = format!("{got} rows instead of {rows}");
                seen.long_lost.push(short.clone());
                short
            }
            Outcome::Failed { error } | Outcome::GaveUp { error } => {
                seen.long_lost.push(error.clone());
                error
            }
        };
        if let Some((query_id, sent_to)) = client.last_query.clone() {
            seen.long.push(LongQuery {
                query_id,
                sent_to: sent_to as u64 + 1,
                driver: String::new(),
                attempts: 0,
                outcome: ended,
            });
        }
    }
    shared.seen.lock().expect("results").switches += client.switches;
}

/// `long` with the driver and attempts of each query filled in from the query history.
fn drivers_of(cluster: &ProcessCluster, long: &[LongQuery]) -> Vec<LongQuery> {
    let mut names: Vec<(String, String)> = cluster
        .coordinators
        .values()
        .map(|c| (c.internal_url.clone(), format!("coordinator {}", c.id)))
        .collect();
    names.extend(
        cluster
            .workers
            .keys()
            .map(|name| (cluster.worker_url(name), name.clone())),
    );
    let mut client = TrinoClient::new(cluster.client_urls(COORDINATORS), "bench");
    let history = client
        .execute(
            "SELECT query_id, driver, attempt FROM system.runtime.queries WHERE \"user\" = 'long'",
        )
        .map(|r| r.rows)
        .unwrap_or_default();
    long.iter()
        .map(|query| {
            let mut query = query.clone();
            if let Some(row) = history.iter().find(|row| row[0] == query.query_id.as_str()) {
                let url = row[1].as_str().unwrap_or_default();
                query.driver = names
                    .iter()
                    .find(|(u, _)| u == url)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_else(|| url.to_string());
                query.attempts = row[2].as_u64().unwrap_or_default() + 1;
            }
            query
        })
        .collect()
}

/// GET an admin path on coordinator `id` with the cluster secret.
fn admin(cluster: &ProcessCluster, id: u64, path: &str) -> Option<Value> {
    ureq::get(format!("{}{path}", cluster.client_url(id)))
        .header(CLUSTER_SECRET_HEADER, &cluster.secret)
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

fn leader(cluster: &ProcessCluster) -> Option<u64> {
    (1..=COORDINATORS).find_map(|id| admin(cluster, id, "/v1/admin/state")?["leader"].as_u64())
}

fn most_running(cluster: &ProcessCluster) -> Option<u64> {
    let mut client = TrinoClient::new(cluster.client_urls(COORDINATORS), "bench");
    let result = client
        .execute(
            "SELECT coordinator, count(*) FROM system.runtime.queries \
             WHERE state = 'RUNNING' AND query NOT LIKE '%system.runtime%' \
             GROUP BY coordinator ORDER BY 2 DESC, 1 LIMIT 1",
        )
        .ok()?;
    result.rows.first()?.first()?.as_u64()
}

/// How many long queries are running, as the cluster's query history says.
fn running_long_queries(cluster: &ProcessCluster) -> Option<u64> {
    let mut client = TrinoClient::new(cluster.client_urls(COORDINATORS), "bench");
    let result = client
        .execute("SELECT count(*) FROM system.runtime.queries WHERE state = 'RUNNING' AND \"user\" = 'long'")
        .ok()?;
    result.rows.first()?.first()?.as_u64()
}

fn pick(cluster: &ProcessCluster, target: Target) -> anyhow::Result<u64> {
    let leader = leader(cluster).context("no coordinator knows a leader")?;
    Ok(match target {
        Target::Leader => leader,
        Target::Follower => (1..=COORDINATORS)
            .find(|id| *id != leader)
            .context("no follower")?,
        Target::MostRunning => most_running(cluster).unwrap_or(leader),
    })
}

/// Whether coordinator `id` answers as a member that knows the leader, and the cluster, asked
/// through another coordinator, lists it as Synchronized.
fn synchronized(cluster: &ProcessCluster, id: u64) -> bool {
    let rejoined = admin(cluster, id, "/v1/admin/state")
        .is_some_and(|state| state["joined"] == true && state["leader"].is_u64());
    rejoined
        && (1..=COORDINATORS)
            .filter(|other| *other != id)
            .any(|other| {
                admin(cluster, other, "/v1/admin/coordinators")
                    .and_then(|rows| {
                        rows.as_array()?
                            .iter()
                            .find(|row| row["node_id"] == id)
                            .map(|row| row["summary_state"] == "Synchronized")
                    })
                    .unwrap_or(false)
            })
}

fn start_cluster(args: &Args) -> anyhow::Result<(ProcessCluster, u64)> {
    let mut cluster = ProcessCluster::new(COORDINATORS);
    // The benchmark's own user looks at every client's running queries.
    // A history long enough to still hold every long query at the end of the run.
    cluster.extra_config = "query.admin-users=bench\nquery.max-history=1000000\n".into();
    let data = cluster.external_dir().join("tpch-data");
    generate(&data, args.sf)?;
    cluster.start_joined(COORDINATORS);
    cluster.start_workers_seen(&["w1", "w2"], COORDINATORS);
    let mut client = TrinoClient::new(cluster.client_urls(1), "bench");
    create_tables(&mut client, &data)?;
    let rows = client.execute("SELECT count(*) FROM tpch.lineitem")?.rows[0][0]
        .as_u64()
        .context("a row count")?;
    Ok((cluster, rows))
}

/// Kill one coordinator, keep it down for `down`, restart it and time its resynchronisation.
fn kill_and_restart(
    cluster: &mut ProcessCluster,
    shared: &Shared,
    target: Target,
    down: Duration,
) -> anyhow::Result<(Kill, Duration, Duration)> {
    let coordinator = pick(cluster, target)?;
    let killed_at = shared.start.elapsed();
    cluster.kill(coordinator);
    // The fault itself: the coordinator stays dead for `down` while the clients go on.
    std::thread::sleep(down);
    let restarted = Instant::now();
    cluster.start(coordinator);
    shoal_tests::poll(Duration::from_secs(120), || {
        synchronized(cluster, coordinator).then_some(())
    })
    .with_context(|| format!("coordinator {coordinator} not synchronized within 120 s"))?;
    let resync = restarted.elapsed();
    // Unavailability is measured from the kill until the restarted coordinator is back.
    let window_end = shared.start.elapsed();
    let kill = Kill {
        target,
        coordinator,
        unavailability_s: 0.0,
        resync_s: round3(resync.as_secs_f64()),
    };
    Ok((kill, killed_at, window_end))
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.kills = 2;
        args.down_s = 2.5;
        args.long_query_s = 2.0;
        args.short_clients = 2;
        args.long_clients = 1;
    }
    let (mut cluster, rows) = start_cluster(&args)?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        urls: cluster.client_urls(COORDINATORS),
        stop: AtomicBool::new(false),
        seen: Mutex::new(Seen::default()),
    });
    let pace = Duration::from_secs_f64(args.long_query_s);
    let mut threads = Vec::new();
    for index in 0..args.short_clients {
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || short_client(shared, index)));
    }
    for index in 0..args.long_clients {
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || {
            long_client(shared, index, rows, pace)
        }));
    }
    // The first kill comes once every long query runs and short queries succeed.
    let going = || {
        let short = !shared
            .seen
            .lock()
            .expect("results")
            .short_successes
            .is_empty();
        short && running_long_queries(&cluster) >= Some(args.long_clients as u64)
    };
    shoal_tests::poll(Duration::from_secs(60), || going().then_some(()))
        .context("the clients did not get going within 60 s")?;

    let targets = [Target::Leader, Target::Follower, Target::MostRunning];
    let mut kills = Vec::new();
    let mut errors = Vec::new();
    for round in 0..args.kills {
        let target = targets[round % targets.len()];
        match kill_and_restart(
            &mut cluster,
            &shared,
            target,
            Duration::from_secs_f64(args.down_s),
        ) {
            Ok(kill) => kills.push(kill),
            Err(e) => errors.push(format!("kill {round}: {e:#}")),
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }

    let seen = std::mem::take(&mut *shared.seen.lock().expect("results"));
    let kills: Vec<Kill> = kills
        .into_iter()
        .map(|(mut kill, from, to)| {
            kill.unavailability_s =
                round3(longest_gap(&seen.short_successes, from, to).as_secs_f64());
            kill
        })
        .collect();
    let unavailability: Vec<f64> = kills.iter().map(|k| k.unavailability_s).collect();
    let resync: Vec<f64> = kills.iter().map(|k| k.resync_s).collect();
    let long = drivers_of(&cluster, &seen.long);
    errors.extend(seen.short_failures.iter().take(5).cloned());
    errors.extend(seen.long_lost.iter().take(5).cloned());
    let report = Report {
        bench: "failover",
        coordinators: COORDINATORS,
        workers: cluster.workers.len(),
        unavailability_median_s: round3(median(&unavailability)),
        unavailability_max_s: unavailability.iter().copied().fold(0.0, f64::max),
        short_queries: seen.short_successes.len() + seen.short_failures.len(),
        failed_short_queries: seen.short_failures.len(),
        long_queries: seen.long_finished + seen.long_lost.len(),
        lost_running_queries: seen.long_lost.len(),
        long,
        resync_median_s: round3(median(&resync)),
        resync_s: resync.iter().copied().fold(0.0, f64::max),
        client_switches: seen.switches,
        kills,
        errors,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
