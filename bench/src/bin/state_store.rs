//! State-store benchmark: a three-member Shoal store on loopback under 1, 16 and 64 concurrent
//! writers, compared with a three-member etcd in the same run when `etcd` is on PATH.
//! Prints one JSON line.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use shoal_bench::etcd::{EtcdClient, EtcdCluster};
use shoal_bench::stats::{round3, summarise, Summary};
use shoal_state_store::{StateStore, StoreConfig};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent writer counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    writers: Vec<usize>,
    /// Seconds each writer count runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// A tiny run that only proves the benchmark works.
    #[arg(long)]
    smoke: bool,
    /// Skip etcd even if it is on PATH.
    #[arg(long)]
    no_etcd: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    writers: usize,
    puts_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    etcd_puts_per_s: Option<f64>,
    etcd_p99_ms: Option<f64>,
    /// Shoal puts per second over etcd's.
    ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    members: usize,
    seconds_per_point: f64,
    value_size: usize,
    etcd_version: Option<String>,
    results: Vec<Row>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("SHOAL_LOG").unwrap_or_else(|_| "error,openraft=off".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let mut args = Args::parse();
    if args.smoke {
        args.writers = vec![1, 4];
        args.seconds = 0.3;
    }
    let dir = tempfile::TempDir::new()?;
    let shoal = ShoalCluster::start(&dir.path().join("shoal")).await?;
    let etcd_binary = if args.no_etcd {
        None
    } else {
        EtcdCluster::binary()
    };
    let etcd = match &etcd_binary {
        Some(binary) => Some(EtcdCluster::start(binary, &dir.path().join("etcd")).await?),
        None => None,
    };
    let value = vec![b'v'; args.value_size];
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for &writers in &args.writers {
        let shoal_summary = run_shoal(&shoal, writers, duration, &value).await?;
        let etcd_summary = match &etcd {
            Some(etcd) => Some(run_etcd(etcd, writers, duration, &value).await?),
            None => None,
        };
        results.push(row(writers, &shoal_summary, etcd_summary.as_ref()));
    }
    let report = Report {
        bench: "state-store",
        members: 3,
        seconds_per_point: args.seconds,
        value_size: args.value_size,
        etcd_version: etcd_binary.as_deref().and_then(EtcdCluster::version),
        results,
    };
    println!("{}", serde_json::to_string(&report)?);
    drop(etcd);
    shoal.stop().await;
    Ok(())
}

fn row(writers: usize, shoal: &Summary, etcd: Option<&Summary>) -> Row {
    Row {
        writers,
        puts_per_s: round3(shoal.per_second),
        p50_ms: round3(shoal.p50_ms),
        p99_ms: round3(shoal.p99_ms),
        etcd_puts_per_s: etcd.map(|e| round3(e.per_second)),
        etcd_p99_ms: etcd.map(|e| round3(e.p99_ms)),
        ratio: etcd
            .filter(|e| e.per_second > 0.0)
            .map(|e| round3(shoal.per_second / e.per_second)),
    }
}

/// Run `writers` loops of `put` for `duration`; writer `w` uses target `w % targets`.
async fn drive<T, F, Fut>(
    targets: &[T],
    writers: usize,
    duration: Duration,
    put: F,
) -> anyhow::Result<Summary>
where
    T: Clone + Send + 'static,
    F: Fn(T, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let put = Arc::new(put);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let target = targets[writer % targets.len()].clone();
        let put = put.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while started.elapsed() < duration {
                let begun = Instant::now();
                put(target.clone(), format!("bench/{writer}/{i}")).await?;
                latencies.push(begun.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(summarise(latencies, started.elapsed()))
}

async fn run_shoal(
    cluster: &ShoalCluster,
    writers: usize,
    duration: Duration,
    value: &[u8],
) -> anyhow::Result<Summary> {
    let value = value.to_vec();
    drive(
        &cluster.stores,
        writers,
        duration,
        move |store: StateStore, key| {
            let value = value.clone();
            async move {
                store.put(&key, value).await?;
                Ok(())
            }
        },
    )
    .await
}

async fn run_etcd(
    cluster: &EtcdCluster,
    writers: usize,
    duration: Duration,
    value: &[u8],
) -> anyhow::Result<Summary> {
    let mut clients = Vec::new();
    for url in &cluster.client_urls {
        clients.push(EtcdClient::connect(url).await?);
    }
    let value = value.to_vec();
    drive(
        &clients,
        writers,
        duration,
        move |mut client: EtcdClient, key| {
            let value = value.clone();
            async move { client.put(key.into_bytes(), value).await }
        },
    )
    .await
}

/// Three store members in this process, each serving its internal routes on loopback.
struct ShoalCluster {
    stores: Vec<StateStore>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ShoalCluster {
    async fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut stores = Vec::new();
        let mut stops = Vec::new();
        let mut members = BTreeMap::new();
        for id in 1..=3u64 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let config = StoreConfig::new(id, dir.join(format!("node-{id}")), url.clone())
                .with_secret("bench-secret");
            let store = StateStore::open(config).await?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(shoal_state_store::server::serve(
                store.clone(),
                listener,
                async move {
                    let _ = stopped.await;
                },
            ));
            members.insert(id, url);
            stores.push(store);
            stops.push(stop);
        }
        stores[0].initialize(members).await?;
        for store in &stores {
            store
                .wait_for_leader(Duration::from_secs(10))
                .await
                .context("the benchmark cluster elected no leader")?;
        }
        Ok(ShoalCluster { stores, stops })
    }

    async fn stop(self) {
        for store in &self.stores {
            let _ = store.shutdown().await;
        }
        drop(self.stops);
    }
}
