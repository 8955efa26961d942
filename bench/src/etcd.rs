//! A three-member etcd on loopback and a minimal etcd v3 gRPC client (KV Put), so the state
//! store can be compared with etcd in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

/// `etcdserverpb.PutRequest`, the fields this client sets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse`; its fields are not needed and are skipped when decoding.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {}

/// A client of one etcd member.
#[derive(Clone)]
pub struct EtcdClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl EtcdClient {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_string())?
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("connect to etcd at {url}"))?;
        Ok(EtcdClient {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    pub async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
        self.grpc.ready().await.context("etcd channel not ready")?;
        let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Put");
        self.grpc
            .unary(tonic::Request::new(PutRequest { key, value }), path, codec)
            .await
            .context("etcd put")?;
        Ok(())
    }
}

/// Three etcd processes on loopback; killed when dropped.
pub struct EtcdCluster {
    children: Vec<Child>,
    pub client_urls: Vec<String>,
}

impl EtcdCluster {
    /// Find `etcd` on PATH.
    pub fn binary() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    }

    pub fn version(binary: &Path) -> Option<String> {
        let output = Command::new(binary).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("etcd Version: "))
            .map(|v| v.trim().to_string())
    }

    pub async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((crate::free_port()?, crate::free_port()?)))
            .collect::<std::io::Result<_>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        let mut client_urls = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = Command::new(binary)
                .args(["--name", &format!("e{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("e{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "shoal-bench"])
                .args(["--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start etcd")?;
            children.push(child);
            client_urls.push(client_url);
        }
        let cluster = EtcdCluster {
            children,
            client_urls,
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Wait until a put through every member succeeds.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for url in &self.client_urls {
            loop {
                let attempt = async {
                    let mut client = EtcdClient::connect(url).await?;
                    client.put(b"ready".to_vec(), b"1".to_vec()).await
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Ok(())) => break,
                    _ if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Ok(Err(e)) => return Err(e.context("etcd did not become ready")),
                    Err(_) => anyhow::bail!("etcd did not become ready within 30 s"),
                }
            }
        }
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
