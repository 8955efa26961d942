//! TPC-H benchmark: the 22 queries on a local Shoal cluster of real processes (one coordinator,
//! two workers) against single-process DataFusion over the same Parquet files, in the same run.
//! Prints one JSON line with per-query times, the totals and their ratio. With `--storage s3`
//! the data is in a bucket of a real S3-compatible server (s3s-fs on loopback) and the same
//! queries also run on a cluster reading the same files from local disk, for the ratio.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use shoal_bench::stats::round3;
use shoal_tests::process::ProcessCluster;
use shoal_tests::s3::S3Server;
use shoal_tests::tpch::{create_tables, create_tables_at, generate, register_tables, QUERIES};
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
    /// Where the tables are: `local` files, or `s3` (a bucket of s3s-fs, with the
    /// warehouse there too), then beside a cluster reading the same files locally.
    #[arg(long, value_enum, default_value = "local")]
    storage: Storage,
    /// Run without a result spool (`query.result-spool=none`), to measure what it costs.
    #[arg(long)]
    no_result_spool: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Storage {
    Local,
    S3,
}

#[derive(Debug, Serialize)]
struct QueryTimes {
    name: &'static str,
    shoal_s: f64,
    datafusion_s: f64,
    /// With `--storage s3`: the same query on the cluster reading local files.
    #[serde(skip_serializing_if = "Option::is_none")]
    shoal_local_s: Option<f64>,
    rows: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    sf: f64,
    storage: Storage,
    result_spool: bool,
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
    /// With `--storage s3`: the total on local files, and the S3 total over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    shoal_local_total_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_over_local: Option<f64>,
}

const BUCKET: &str = "tpch";

/// A cluster of one coordinator and two workers; with `s3`, its warehouse and the tables'
/// files are in the server's bucket.
fn start_cluster(args: &Args, s3: Option<&S3Server>, data: Option<&Path>) -> ProcessCluster {
    let mut cluster = ProcessCluster::new(1);
    if args.no_result_spool {
        cluster.extra_config = "query.result-spool=none\n".into();
    }
    if let Some(data) = data {
        cluster.external_locations = vec![data.display().to_string()];
    }
    if let Some(server) = s3 {
        cluster.warehouse = Some(format!("s3://{BUCKET}/warehouse"));
        cluster.external_locations = vec![format!("s3://{BUCKET}/tpch-data")];
        cluster
            .etc_files
            .push(("filesystem/bench.properties".into(), server.profile(BUCKET)));
    }
    cluster.start_joined(1);
    if let Some(bytes) = args.scan_bytes_per_task {
        cluster.worker_extra_config = format!("query.scan-bytes-per-task={bytes}\n");
    }
    cluster.start_workers_seen(&["w1", "w2"], 1);
    cluster
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
    let server = (args.storage == Storage::S3).then(|| S3Server::start(&[BUCKET]));
    let mut local_times = None;
    let (cluster, data, shoal, worker_driven) = match &server {
        None => {
            let cluster = start_cluster(&args, None, None);
            let data = cluster.external_dir().join("tpch-data");
            generate(&data, args.sf)?;
            let mut client = TrinoClient::new(cluster.client_urls(1), "bench");
            create_tables(&mut client, &data)?;
            let (times, driven) = run_queries(&cluster, &mut client)?;
            (cluster, data, times, driven)
        }
        Some(server) => {
            // The files are generated into the bucket's directory: the same bytes are the
            // objects the S3 cluster reads and the files the local cluster reads.
            let data = server.bucket_dir(BUCKET).join("tpch-data");
            generate(&data, args.sf)?;
            {
                let local = start_cluster(&args, None, Some(&data));
                let mut client = TrinoClient::new(local.client_urls(1), "bench");
                create_tables(&mut client, &data)?;
                local_times = Some(run_queries(&local, &mut client)?.0);
            }
            let cluster = start_cluster(&args, Some(server), None);
            let mut client = TrinoClient::new(cluster.client_urls(1), "bench");
            create_tables_at(&mut client, &format!("s3://{BUCKET}/tpch-data"))?;
            let (times, driven) = run_queries(&cluster, &mut client)?;
            (cluster, data, times, driven)
        }
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let datafusion = runtime.block_on(datafusion_times(&data))?;
    let queries: Vec<QueryTimes> = QUERIES
        .iter()
        .enumerate()
        .zip(shoal.iter().zip(&datafusion))
        .map(
            |((i, (name, _)), (shoal_s, (datafusion_s, rows)))| QueryTimes {
                name,
                shoal_s: round3(*shoal_s),
                datafusion_s: round3(*datafusion_s),
                shoal_local_s: local_times.as_ref().map(|t| round3(t[i])),
                rows: *rows,
            },
        )
        .collect();
    let shoal_total: f64 = shoal.iter().sum();
    let datafusion_total: f64 = datafusion.iter().map(|(t, _)| t).sum();
    let local_total: Option<f64> = local_times.as_ref().map(|t| t.iter().sum());
    let report = Report {
        bench: "tpch",
        sf: args.sf,
        storage: args.storage,
        result_spool: !args.no_result_spool,
        coordinators: 1,
        workers: cluster.workers.len(),
        scan_bytes_per_task: args.scan_bytes_per_task,
        worker_driven_queries: worker_driven,
        queries,
        shoal_total_s: round3(shoal_total),
        datafusion_total_s: round3(datafusion_total),
        ratio: round3(shoal_total / datafusion_total.max(1e-9)),
        shoal_local_total_s: local_total.map(round3),
        s3_over_local: local_total.map(|local| round3(shoal_total / local.max(1e-9))),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The 22 queries' times on `cluster`, and how many of them a worker drove.
fn run_queries(
    cluster: &ProcessCluster,
    client: &mut TrinoClient,
) -> anyhow::Result<(Vec<f64>, usize)> {
    client.execute("USE tpch")?;
    let times = shoal_times(client)?;
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
    Ok((times, worker_driven))
}
