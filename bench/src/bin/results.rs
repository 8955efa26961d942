//! Result throughput: the rows of a large SELECT on TPC-H `lineitem` (eight columns, every
//! row) read by `shoal sql` as CSV and by the Python `trino` client's `fetchall`, each with
//! plain `data` arrays and with segments of Trino's spooling protocol, beside DuckDB's own
//! `fetchall` of the same columns from the same Parquet file into Python, in the same run.
//! Prints one JSON line with seconds and rows per second of each, and the ratios.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Serialize;
use shoal_bench::stats::round3;
use shoal_tests::process::{shoal_binary, ProcessCluster};
use shoal_tests::tpch::{create_tables, generate};
use shoal_tests::trino::TrinoClient;

const COLUMNS: &str =
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_shipdate, l_comment";

#[derive(Debug, Parser)]
struct Args {
    /// TPC-H scale factor (1: 6,001,215 rows).
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
}

#[derive(Debug, Serialize)]
struct Reader {
    seconds: f64,
    rows_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    sf: f64,
    rows: u64,
    coordinators: u64,
    workers: usize,
    shoal_sql_data_arrays: Reader,
    shoal_sql_segments: Reader,
    python_data_arrays: Reader,
    python_segments: Reader,
    duckdb_python: Reader,
    /// `shoal sql` with segments over with data arrays (the speed-up).
    shoal_sql_speedup: f64,
    /// The Python client with segments over DuckDB's fetchall (time; lower is better).
    python_segments_over_duckdb: f64,
}

fn reader(seconds: f64, rows: u64) -> Reader {
    Reader {
        seconds: round3(seconds),
        rows_per_second: (rows as f64 / seconds.max(1e-9)).round(),
    }
}

/// Seconds `shoal sql` takes to write every row as CSV, and the rows it wrote.
fn shoal_sql(url: &str, encoding: &str, sql: &str) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = Command::new(shoal_binary())
        .args([
            "sql",
            "--server",
            url,
            "--user",
            "bench",
            "--output-format",
            "csv",
        ])
        .args(["--encoding", encoding, "--execute", sql])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start shoal sql")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = 0u64;
    let mut out = BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    while out.read_until(b'\n', &mut line)? > 0 {
        lines += 1;
        line.clear();
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("shoal sql --encoding {encoding} failed: {status}");
    }
    // The first line is the header.
    Ok((started.elapsed().as_secs_f64(), lines.saturating_sub(1)))
}

/// Seconds and rows of a Python snippet that prints them as `seconds rows`.
fn python(script: &str) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!(
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let parsed = last
        .split_once(' ')
        .and_then(|(seconds, rows)| Some((seconds.parse().ok()?, rows.trim().parse().ok()?)));
    parsed.with_context(|| format!("python printed {text:?}, not `seconds rows`"))
}

fn python_trino(url: &str, encoding: Option<&str>, sql: &str) -> anyhow::Result<(f64, u64)> {
    let (host, port) = url
        .trim_start_matches("http://")
        .split_once(':')
        .context("a host:port URL")?;
    let encoding = encoding.map_or("None".to_string(), |e| format!("{e:?}"));
    python(&format!(
        "import time, trino\n\
         cur = trino.dbapi.connect(host={host:?}, port={port}, user='bench', catalog='shoal', schema='tpch', encoding={encoding}).cursor()\n\
         started = time.perf_counter()\n\
         cur.execute({sql:?})\n\
         rows = cur.fetchall()\n\
         print(time.perf_counter() - started, len(rows))\n"
    ))
}

fn duckdb(file: &Path) -> anyhow::Result<(f64, u64)> {
    let file = file.to_str().context("a UTF-8 path")?;
    python(&format!(
        "import time, duckdb\n\
         con = duckdb.connect()\n\
         started = time.perf_counter()\n\
         rows = con.execute(\"SELECT {COLUMNS} FROM read_parquet('{file}')\").fetchall()\n\
         print(time.perf_counter() - started, len(rows))\n"
    ))
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
    cluster.start_workers_seen(&["w1", "w2"], 1);
    let mut client = TrinoClient::new(cluster.client_urls(1), "bench");
    create_tables(&mut client, &data)?;
    let url = cluster.client_url(1);
    let sql = format!("SELECT {COLUMNS} FROM shoal.tpch.lineitem");
    let expected = client
        .execute("SELECT count(*) FROM tpch.lineitem")?
        .rows
        .first()
        .and_then(|row| row[0].as_u64())
        .context("a row count")?;
    let mut runs = Vec::new();
    for run in [
        shoal_sql(&url, "none", &sql)?,
        shoal_sql(&url, "json+lz4,json+zstd,json", &sql)?,
        python_trino(&url, None, &sql)?,
        python_trino(&url, Some("json+zstd"), &sql)?,
        duckdb(&data.join("lineitem").join("part-0.parquet"))?,
    ] {
        if run.1 != expected {
            bail!("a reader got {} rows of {expected}", run.1);
        }
        runs.push(run.0);
    }
    let report = Report {
        bench: "results",
        sf: args.sf,
        rows: expected,
        coordinators: 1,
        workers: cluster.workers.len(),
        shoal_sql_data_arrays: reader(runs[0], expected),
        shoal_sql_segments: reader(runs[1], expected),
        python_data_arrays: reader(runs[2], expected),
        python_segments: reader(runs[3], expected),
        duckdb_python: reader(runs[4], expected),
        shoal_sql_speedup: round3(runs[0] / runs[1].max(1e-9)),
        python_segments_over_duckdb: round3(runs[3] / runs[4].max(1e-9)),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
