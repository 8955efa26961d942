//! A real S3-compatible server for tests: `s3s-fs` (installed by the test command) on a free
//! loopback port, storing its buckets as directories of a temporary directory, with SigV4
//! credentials of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "shoal-test-access";
pub const SECRET_KEY: &str = "shoal-test-secret-key";

pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// The `s3s-fs` program: on the PATH or where `cargo install` puts it.
pub fn s3s_fs() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let installed = cargo_home.map(|h| h.join("bin/s3s-fs"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.or(installed.filter(|p| p.is_file()))
}

impl S3Server {
    /// Start a server with the buckets `buckets`; panics when s3s-fs is missing, since the
    /// test command installs it.
    pub fn start(buckets: &[&str]) -> Self {
        let program = s3s_fs().unwrap_or_else(|| {
            panic!("this test needs s3s-fs (scripts/install-test-deps.sh installs it with cargo install s3s-fs@0.14.1 --features binary)")
        });
        let dir = tempfile::Builder::new()
            .prefix("shoal-s3-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("root");
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).expect("bucket");
        }
        let port = crate::process::free_port();
        let log = std::fs::File::create(dir.path().join("s3s-fs.log")).expect("log");
        let child = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start s3s-fs");
        let server = S3Server { child, dir, port };
        crate::wait_until(
            Duration::from_secs(30),
            "s3s-fs accepts connections",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A file-system profile for `bucket` on this server.
    pub fn profile(&self, bucket: &str) -> String {
        format!(
            "fs.client.type=s3\ns3.bucket={bucket}\ns3.endpoint={}\ns3.region=us-east-1\n\
             s3.path-style-access=true\ns3.aws-access-key={ACCESS_KEY}\ns3.aws-secret-key={SECRET_KEY}\n",
            self.endpoint()
        )
    }

    /// Where the server keeps `bucket`'s objects.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join("root").join(bucket)
    }

    /// The keys of the objects under `prefix` of `bucket`, read from the server's directory.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let root = self.bucket_dir(bucket);
        let mut keys = Vec::new();
        collect(&root, &root, &mut keys);
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        keys
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }
}

fn collect(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, keys);
        } else if let Ok(key) = path.strip_prefix(root) {
            let key = key.display().to_string();
            // s3s-fs keeps its own bookkeeping beside the objects.
            if !key.split('/').any(|s| s.starts_with(".")) {
                keys.push(key);
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
