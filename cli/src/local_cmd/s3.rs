//! `shoal local --storage s3`: an S3-compatible server (s3s-fs, when installed) on loopback
//! beside the cluster, holding the warehouse, the seeds and the sample data in one bucket, so
//! a newcomer can try Shoal without shared volumes.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// The bucket the local cluster keeps everything in.
pub const BUCKET: &str = "shoal";

/// The file-system profile the nodes name for the bucket.
pub const PROFILE: &str = "lake";

/// Where the server listens and the credentials it takes; kept in the data directory so a
/// restarted `shoal local` finds the same server the nodes' configuration names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `etc/filesystem/lake.properties` of every node.
    pub fn profile(&self) -> String {
        format!(
            "fs.client.type=s3\ns3.bucket={BUCKET}\ns3.endpoint={}\ns3.region=us-east-1\n\
             s3.path-style-access=true\ns3.aws-access-key={}\ns3.aws-secret-key={}\n",
            self.endpoint(),
            self.access_key,
            self.secret_key
        )
    }

    /// The local directory holding the bucket's objects (s3s-fs keeps one file per object).
    pub fn bucket_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("s3").join(BUCKET)
    }
}

/// The s3s-fs program: on the PATH or where `cargo install` puts it.
fn program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path.or_else(|| {
        cargo_home
            .map(|h| h.join("bin").join("s3s-fs"))
            .filter(|p| p.is_file())
    })
}

/// Start the server for `data_dir` (the same port and keys as before when it ran there).
pub fn start(
    data_dir: &Path,
    free_port: impl Fn() -> anyhow::Result<u16>,
) -> anyhow::Result<(Server, Child)> {
    let Some(program) = program() else {
        bail!(
            "--storage s3 needs s3s-fs, an S3-compatible server: cargo install s3s-fs@0.14.1 --features binary"
        );
    };
    let settings = data_dir.join("s3-server.json");
    let server = match std::fs::read(&settings) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not readable", settings.display()))?,
        Err(_) => {
            let server = Server {
                port: free_port()?,
                access_key: format!("shoal-{}", &crate::local_cmd::random_secret()[..12]),
                secret_key: crate::local_cmd::random_secret(),
            };
            std::fs::write(&settings, serde_json::to_vec_pretty(&server)?)?;
            server
        }
    };
    std::fs::create_dir_all(Server::bucket_dir(data_dir))?;
    let log = std::fs::File::create(data_dir.join("s3s-fs.log"))?;
    let child = Command::new(&program)
        .args(["--host", "127.0.0.1", "--port", &server.port.to_string()])
        .args(["--access-key", &server.access_key])
        .args(["--secret-key", &server.secret_key])
        .arg(data_dir.join("s3"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok((server, child))
}

/// Wait until the server accepts connections.
pub async fn wait_listening(server: &Server, timeout: std::time::Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "s3s-fs does not listen on port {} within {timeout:?}",
                server.port
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
