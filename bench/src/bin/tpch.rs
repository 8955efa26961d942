//! TPC-H benchmark: the 22 queries on a local Shoal cluster of real processes (one coordinator,
//! two workers) against single-process DataFusion over the same Parquet files, in the same run.
//! Prints one JSON line with per-query times, the totals and their ratio.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use shoal_bench::stats::round3;
use shoal_tests::process::ProcessCluster;
use shoal_tests::tpch::{create_tables, generate, register_tables, QUERIES};
use shoal_tests::trino::TrinoClient;

#[derive(Debug, Parser)]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Parquet bytes one task scans on the workers (`query.scan-bytes-per-task`); the
    /// workers' default when not given.
    #[arg(long)]
    scan_bytes_per_task: Option<u64>,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Serialize)]
struct QueryTimes {
    name: &'static str,
    shoal_s: f64,
    datafusion_s: f64,
    rows: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    sf: f64,
    coordinators: u64,
    workers: usize,
    /// `query.scan-bytes-per-task` on the workers (None: their default).
    scan_bytes_per_task: Option<u64>,
    /// Queries whose driver was a worker (all 22 when the cluster works as designed).
    worker_driven_queries: usize,
    queries: Vec<QueryTimes>,
    shoal_total_s: f64,
    datafusion_total_s: f64,
    /// Shoal's total over DataFusion's.
    ratio: f64,
}

async fn datafusion_times(data: &Path) -> anyhow::Result<Vec<(f64, usize)>> {
    let context = SessionContext::new();
    register_tables(&context, data).await?;
    let mut times = Vec::new();
    for (_, sql) in QUERIES {
        let started = Instant::now();
        let batches = context.sql(sql).await?.collect().await?;
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        times.push((started.elapsed().as_secs_f64(), rows));
    }
    Ok(times)
}

fn shoal_times(client: &mut TrinoClient) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for (name, sql) in QUERIES {
        let started = Instant::now();
        client
            .execute(sql)
            .with_context(|| format!("{name} failed on Shoal"))?;
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(times)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.sf = 0.01;
    }
    let mut cluster = ProcessCluster::new(1);
    let data = cluster.external_dir().join("tpch-data");
    generate(&data, args.sf)?;
    cluster.start_joined(1);
    if let Some(bytes) = args.scan_bytes_per_task {
        cluster.worker_extra_config = format!("query.scan-bytes-per-task={bytes}\n");
    }
    cluster.start_workers_seen(&["w1", "w2"], 1);
    let mut client = TrinoClient::new(cluster.client_urls(1), "bench");
    create_tables(&mut client, &data)?;
    client.execute("USE tpch")?;
    let shoal = shoal_times(&mut client)?;
    let coordinator_url = cluster.coordinators[&1].internal_url.clone();
    let drivers = client.execute(
        "SELECT driver FROM system.runtime.queries WHERE query NOT LIKE 'CREATE%' \
         AND query NOT LIKE '%system.runtime%' AND driver IS NOT NULL",
    )?;
    let worker_driven = drivers
        .rows
        .iter()
        .filter(|row| row[0].as_str().is_some_and(|d| d != coordinator_url))
        .count();
    let runtime = tokio::runtime::Runtime::new()?;
    let datafusion = runtime.block_on(datafusion_times(&data))?;
    let queries: Vec<QueryTimes> = QUERIES
        .iter()
        .zip(shoal.iter().zip(&datafusion))
        .map(|((name, _), (shoal_s, (datafusion_s, rows)))| QueryTimes {
            name,
            shoal_s: round3(*shoal_s),
            datafusion_s: round3(*datafusion_s),
            rows: *rows,
        })
        .collect();
    let shoal_total: f64 = shoal.iter().sum();
    let datafusion_total: f64 = datafusion.iter().map(|(t, _)| t).sum();
    let report = Report {
        bench: "tpch",
        sf: args.sf,
        coordinators: 1,
        workers: cluster.workers.len(),
        scan_bytes_per_task: args.scan_bytes_per_task,
        worker_driven_queries: worker_driven,
        queries,
        shoal_total_s: round3(shoal_total),
        datafusion_total_s: round3(datafusion_total),
        ratio: round3(shoal_total / datafusion_total.max(1e-9)),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
