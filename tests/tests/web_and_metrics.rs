//! The web page every coordinator serves, loaded in headless Chromium against a live cluster,
//! and `/metrics` in the Prometheus text format.

use std::process::Command;
use std::time::Duration;

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;
use shoal_tests::wait_for;

fn chromium() -> String {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|name| name.to_string())
        .expect("Chromium is needed: run scripts/test.sh, which installs it")
}

/// The page's DOM after its scripts ran, as headless Chromium renders it.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("timeout")
        .args(["60", &chromium()])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn the_web_page_shows_the_coordinators_workers_and_queries_of_a_live_cluster() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1"], 3);
    let mut client = TrinoClient::new(cluster.client_urls(3), "web");
    client.execute("SELECT 42 AS answer").expect("a query");

    let dom = wait_for(
        Duration::from_secs(60),
        "the page lists three coordinators",
        || {
            let dom = rendered(&format!("{}/", cluster.client_url(2)));
            (1..=3)
                .all(|id| dom.contains(&format!("data-coordinator=\"{id}\"")))
                .then_some(dom)
        },
    );
    assert!(dom.contains("leader coordinator"), "{dom}");
    assert!(
        dom.contains("class=\"leader\""),
        "the leader is marked: {dom}"
    );
    assert!(dom.contains("data-worker=\"w1\""), "{dom}");
    assert!(dom.contains("SELECT 42 AS answer"), "{dom}");

    let metrics = ureq::get(format!("{}/metrics", cluster.client_url(1)))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    for expected in [
        "# TYPE shoal_queries gauge",
        "shoal_queries{state=\"FINISHED\"}",
        "# TYPE shoal_query_duration_seconds histogram",
        "shoal_query_duration_seconds_bucket{le=\"+Inf\"}",
        "shoal_raft_term ",
        "shoal_raft_leader_changes_total ",
        "shoal_raft_applied_index ",
        "shoal_state_store_writes_total ",
        "shoal_workers 1",
        "shoal_admission_queued ",
    ] {
        assert!(metrics.contains(expected), "no {expected:?} in\n{metrics}");
    }
    // Every sample line is `name{labels} number`.
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    let leader_metrics: Vec<String> = (1..=3)
        .map(|id| {
            ureq::get(format!("{}/metrics", cluster.client_url(id)))
                .call()
                .expect("metrics")
                .body_mut()
                .read_to_string()
                .expect("text")
        })
        .filter(|m| m.lines().any(|l| l == "shoal_raft_is_leader 1"))
        .collect();
    assert_eq!(
        leader_metrics.len(),
        1,
        "exactly one coordinator says it leads"
    );
    assert!(
        leader_metrics[0].contains("shoal_raft_follower_lag{node_id="),
        "the leader reports its followers' lag"
    );
}
