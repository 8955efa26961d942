//! Watched by real tools: every coordinator's `/metrics` passes `promtool check metrics`, and
//! a real Prometheus server (Debian's `prometheus`, installed by the test command) scrapes all
//! three coordinators and reads Shoal's own series from each.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::{free_port, ProcessCluster};
use shoal_tests::wait_for;

/// A program the test needs, where the test command installs it.
fn program(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).is_file() {
            return path;
        }
    }
    panic!("{name} is needed: run scripts/test.sh, which installs Debian's prometheus package");
}

struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metrics(url: &str) -> String {
    ureq::get(format!("{url}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text")
}

/// The result of PromQL `query` on the server at `base`.
fn query(base: &str, query: &str) -> Option<Vec<Value>> {
    let mut response = ureq::get(format!("{base}/api/v1/query"))
        .query("query", query)
        .call()
        .ok()?;
    let body: Value = response.body_mut().read_json().ok()?;
    body["data"]["result"].as_array().cloned()
}

#[test]
fn prometheus_scrapes_every_coordinator_and_promtool_accepts_the_metrics() {
    let (promtool, prometheus) = (program("promtool"), program("prometheus"));
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);

    for url in cluster.client_urls(3) {
        let mut check = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        check
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics(&url).as_bytes())
            .expect("write metrics");
        let output = check.wait_with_output().expect("promtool");
        assert!(
            output.status.success(),
            "promtool check metrics of {url}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let targets: Vec<String> = cluster
        .client_urls(3)
        .iter()
        .map(|u| format!("'{}'", u.trim_start_matches("http://")))
        .collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: shoal\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("config");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let server = Stopped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_for(
        Duration::from_secs(60),
        "prometheus scrapes all three coordinators",
        || {
            let up = query(&base, "up == 1")?;
            (up.len() == 3).then_some(up)
        },
    );
    let mut instances: Vec<String> = up
        .iter()
        .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_string))
        .collect();
    instances.sort();
    let mut expected: Vec<String> = targets
        .iter()
        .map(|t| t.trim_matches('\'').to_string())
        .collect();
    expected.sort();
    assert_eq!(instances, expected);
    // Shoal's own series, from every coordinator: each knows the same Raft term.
    let terms = wait_for(Duration::from_secs(30), "the Raft term of each", || {
        let terms = query(&base, "shoal_raft_term")?;
        (terms.len() == 3).then_some(terms)
    });
    let values: Vec<&str> = terms
        .iter()
        .filter_map(|s| s["value"][1].as_str())
        .collect();
    assert_eq!(values.len(), 3, "{terms:?}");
    drop(server);
}
