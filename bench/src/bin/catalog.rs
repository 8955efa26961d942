//! Catalog benchmark: does a big catalog cost a query anything? Two clusters of real processes
//! (a coordinator and a worker each) run side by side: one keeps an empty catalog, the other
//! gets `--tables` tables of 30 columns each and a table that took `--inserts` INSERTs. The
//! p50 latency of `SELECT 1` and of a one-table `SELECT count(*)` is then measured on both in
//! alternating rounds, so whatever else the machine does weighs on both alike. Prints one JSON
//! line with both measurements and their ratios (big catalog over empty; the goal is at most
//! 1.2).

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use shoal_bench::stats::{round3, summarise};
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

#[derive(Debug, Parser)]
struct Args {
    /// Tables to create for the big catalog.
    #[arg(long, default_value_t = 2000)]
    tables: usize,
    /// INSERTs into one table of the big catalog.
    #[arg(long, default_value_t = 2000)]
    inserts: usize,
    /// Timed runs of each query per measurement.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Rounds the timed runs are split into, alternating between the two clusters.
    #[arg(long, default_value_t = 8)]
    rounds: usize,
    /// Queries run before the first measurement, so the query history (`query.max-history`,
    /// 1000) is as full in both measurements and only the catalog differs.
    #[arg(long, default_value_t = 1100)]
    fill_history: usize,
    /// Clients creating tables and inserting at once.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Serialize)]
struct Latencies {
    select_1_p50_ms: f64,
    count_p50_ms: f64,
    /// CPU time the coordinator and the worker spent per timed query (user + system).
    coordinator_cpu_ms_per_query: f64,
    worker_cpu_ms_per_query: f64,
}

/// CPU time (user + system) of process `pid` so far, in milliseconds; 0 where unknown.
fn cpu_ms(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) * 10.0
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    coordinators: u64,
    workers: usize,
    tables: usize,
    columns_per_table: usize,
    inserts: usize,
    samples: usize,
    /// Rounds the samples were split into, alternating between the clusters.
    rounds: usize,
    /// Queries run first to fill the query history.
    fill_history: usize,
    empty: Latencies,
    big: Latencies,
    /// `count(*)` of the table that took every INSERT (one file per INSERT).
    many_inserts_count_p50_ms: f64,
    /// Big catalog over empty catalog.
    select_1_ratio: f64,
    count_ratio: f64,
    create_tables_per_s: f64,
    inserts_per_s: f64,
}

fn p50(client: &mut TrinoClient, sql: &str, samples: usize) -> anyhow::Result<f64> {
    let mut latencies = Vec::with_capacity(samples);
    let started = Instant::now();
    time(client, sql, samples, &mut latencies)?;
    Ok(summarise(latencies, started.elapsed()).p50_ms)
}

/// Run `sql` `samples` times, adding each latency to `latencies`.
fn time(
    client: &mut TrinoClient,
    sql: &str,
    samples: usize,
    latencies: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    for _ in 0..samples {
        let one = Instant::now();
        client
            .execute(sql)
            .with_context(|| format!("{sql} failed"))?;
        latencies.push(one.elapsed());
    }
    Ok(())
}

/// One of the two clusters: its client, and the coordinator's and worker's process ids.
struct Side {
    cluster: ProcessCluster,
    urls: Vec<String>,
    client: TrinoClient,
    pids: (Option<u32>, Option<u32>),
}

impl Side {
    /// A cluster with `bench.one` and a query history filled by `fill_history` queries.
    fn start(fill_history: usize, writers: usize) -> anyhow::Result<Side> {
        let mut cluster = ProcessCluster::new(1);
        // The shipped cleanup interval: the test clusters' one-second sweep of the warehouse
        // would otherwise be measured as a cost of the catalog's size.
        cluster.cleanup_interval = "1m".into();
        cluster.start_joined(1);
        cluster.start_workers_seen(&["w1"], 1);
        let urls = cluster.client_urls(1);
        let mut client = TrinoClient::new(urls.clone(), "bench");
        client.execute("CREATE SCHEMA bench")?;
        client.execute("CREATE TABLE bench.one AS SELECT 1 AS x")?;
        in_parallel(&urls, writers, fill_history, |_| "SELECT 1".to_string())?;
        let pids = (
            cluster.pid(1),
            cluster.workers.values().next().map(|w| w.id()),
        );
        Ok(Side {
            cluster,
            urls,
            client,
            pids,
        })
    }
}

/// What one side measured over all rounds.
#[derive(Default)]
struct Measured {
    select_1: Vec<Duration>,
    count: Vec<Duration>,
    cpu_ms: (f64, f64),
    elapsed: Duration,
}

impl Measured {
    /// One round on `side`: `samples` of each query.
    fn round(&mut self, side: &mut Side, samples: usize) -> anyhow::Result<()> {
        let before = (cpu_ms(side.pids.0), cpu_ms(side.pids.1));
        let started = Instant::now();
        time(&mut side.client, "SELECT 1", samples, &mut self.select_1)?;
        time(
            &mut side.client,
            "SELECT count(*) FROM bench.one",
            samples,
            &mut self.count,
        )?;
        self.elapsed += started.elapsed();
        self.cpu_ms.0 += cpu_ms(side.pids.0) - before.0;
        self.cpu_ms.1 += cpu_ms(side.pids.1) - before.1;
        Ok(())
    }

    fn latencies(self) -> Latencies {
        let queries = (self.select_1.len() + self.count.len()).max(1) as f64;
        let half = self.elapsed / 2;
        Latencies {
            select_1_p50_ms: round3(summarise(self.select_1, half).p50_ms),
            count_p50_ms: round3(summarise(self.count, half).p50_ms),
            coordinator_cpu_ms_per_query: round3(self.cpu_ms.0 / queries),
            worker_cpu_ms_per_query: round3(self.cpu_ms.1 / queries),
        }
    }
}

/// Both sides in `rounds` alternating rounds (which goes first alternates too), after a
/// warm-up as long as the timed part.
fn measure_both(
    empty: &mut Side,
    big: &mut Side,
    samples: usize,
    rounds: usize,
) -> anyhow::Result<(Latencies, Latencies)> {
    let rounds = rounds.clamp(1, samples.max(1));
    let per_round = (samples / rounds).max(1);
    let (mut warm, mut timed_empty, mut timed_big) = Default::default();
    for side in [&mut *empty, &mut *big] {
        Measured::round(&mut warm, side, samples)?;
    }
    for round in 0..rounds {
        if round % 2 == 0 {
            Measured::round(&mut timed_empty, empty, per_round)?;
            Measured::round(&mut timed_big, big, per_round)?;
        } else {
            Measured::round(&mut timed_big, big, per_round)?;
            Measured::round(&mut timed_empty, empty, per_round)?;
        }
    }
    Ok((timed_empty.latencies(), timed_big.latencies()))
}

/// Run `count` statements made by `statement(i)` over `writers` clients; returns the rate.
fn in_parallel(
    urls: &[String],
    writers: usize,
    count: usize,
    statement: impl Fn(usize) -> String + Sync,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..writers.max(1))
            .map(|w| {
                let statement = &statement;
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut client = TrinoClient::new(urls.to_vec(), "bench");
                    for i in (w..count).step_by(writers.max(1)) {
                        let sql = statement(i);
                        client
                            .execute(&sql)
                            .with_context(|| format!("{sql} failed"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    Ok(count as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.tables = 20;
        args.inserts = 20;
        args.samples = 10;
        args.fill_history = 20;
        args.rounds = 2;
    }
    const COLUMNS: usize = 30;
    let mut empty_side = Side::start(args.fill_history, args.writers)?;
    let mut big_side = Side::start(args.fill_history, args.writers)?;
    let urls = big_side.urls.clone();

    let columns: Vec<String> = (0..COLUMNS)
        .map(|c| format!("c{c} {}", if c % 2 == 0 { "BIGINT" } else { "VARCHAR" }))
        .collect();
    let columns = columns.join(", ");
    let create_rate = in_parallel(&urls, args.writers, args.tables, |i| {
        format!("CREATE TABLE bench.wide_{i} ({columns})")
    })?;
    big_side
        .client
        .execute("CREATE TABLE bench.appended (n BIGINT)")?;
    let insert_rate = in_parallel(&urls, args.writers, args.inserts, |i| {
        format!("INSERT INTO bench.appended VALUES ({i})")
    })?;
    let counted = big_side
        .client
        .execute("SELECT count(*) FROM bench.appended")?;
    let rows = counted.rows.first().and_then(|r| r[0].as_i64());
    anyhow::ensure!(
        rows == Some(args.inserts as i64),
        "appended holds {rows:?} rows"
    );
    let (empty, big) = measure_both(&mut empty_side, &mut big_side, args.samples, args.rounds)?;
    let many = p50(
        &mut big_side.client,
        "SELECT count(*) FROM bench.appended",
        (args.samples / 4).max(3),
    )?;
    let report = Report {
        bench: "catalog",
        coordinators: 1,
        workers: big_side.cluster.workers.len(),
        rounds: args.rounds,
        tables: args.tables,
        columns_per_table: COLUMNS,
        inserts: args.inserts,
        samples: args.samples,
        fill_history: args.fill_history,
        select_1_ratio: round3(big.select_1_p50_ms / empty.select_1_p50_ms.max(1e-9)),
        count_ratio: round3(big.count_p50_ms / empty.count_p50_ms.max(1e-9)),
        empty,
        big,
        many_inserts_count_p50_ms: round3(many),
        create_tables_per_s: round3(create_rate),
        inserts_per_s: round3(insert_rate),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
