//! Workers find the coordinators through the seed directory and announce themselves; every
//! coordinator lists the live ones and drops a worker that falls silent.

use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;
use shoal_tests::wait_until;

fn workers_seen(client: &mut TrinoClient) -> Vec<String> {
    client
        .execute("SELECT node_id FROM system.runtime.nodes WHERE NOT coordinator ORDER BY node_id")
        .map(|r| {
            r.rows
                .iter()
                .filter_map(|row| row[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn workers_announce_themselves_to_every_coordinator_and_silent_ones_drop_out() {
    let mut cluster = ProcessCluster::new(2);
    cluster.extra_config = "worker.timeout=1s\n".into();
    cluster.start_joined(2);
    cluster.start_worker("w1");
    cluster.start_worker("w2");
    for id in 1..=2 {
        let mut client = TrinoClient::new(vec![cluster.client_url(id)], "ops");
        wait_until(
            Duration::from_secs(20),
            &format!("coordinator {id} sees both workers"),
            || workers_seen(&mut client) == ["w1", "w2"],
        );
    }
    let mut client = TrinoClient::new(cluster.client_urls(2), "ops");
    let rows = client
        .execute("SELECT http_uri, state FROM system.runtime.nodes WHERE node_id = 'w1'")
        .expect("nodes");
    assert!(
        rows.rows[0][0]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{rows:?}"
    );
    assert_eq!(rows.rows[0][1], Value::from("active"));

    cluster.kill_worker("w2");
    wait_until(
        Duration::from_secs(20),
        "the killed worker drops out",
        || workers_seen(&mut client) == ["w1"],
    );
}

#[test]
fn a_worker_refuses_internal_requests_without_the_cluster_secret() {
    let mut cluster = ProcessCluster::new(1);
    cluster.extra_config = "log.format=json\n".into();
    cluster.worker_extra_config = "log.format=json\n".into();
    cluster.start_joined(1);
    cluster.start_workers_seen(&["w1"], 1);
    let url = cluster.worker_url("w1");
    let paths = [
        "/worker/v1/status",
        "/query/v1/drive",
        "/query/v1/page",
        "/query/v1/cancel",
        // datafusion-distributed's stage service (gRPC over HTTP/2 in production).
        "/datafusion_distributed.WorkerService/ExecuteTask",
    ];
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for path in paths {
        for secret in [None, Some("wrong-secret")] {
            let mut request = agent.post(format!("{url}{path}"));
            if let Some(secret) = secret {
                request = request.header(shoal_proto::CLUSTER_SECRET_HEADER, secret);
            }
            let status = request.send(&b"x"[..]).expect("an answer").status();
            assert_eq!(status, 401, "{path} with secret {secret:?}");
        }
    }
    // With the secret, the status route answers.
    let status = agent
        .get(format!("{url}/worker/v1/status"))
        .header(shoal_proto::CLUSTER_SECRET_HEADER, &cluster.secret)
        .call()
        .expect("status")
        .status();
    assert_eq!(status, 200);

    // Both roles wrote their logs as JSON objects (log.format=json).
    let worker_log = cluster.dir.path().join("worker-w1").join("worker.log");
    for log in [
        cluster.coordinators[&1].log_text(),
        std::fs::read_to_string(worker_log).expect("worker log"),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "no log lines");
        for line in lines {
            let entry: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
            assert!(entry["fields"]["message"].is_string(), "{line}");
        }
    }
}

#[test]
fn a_worker_with_a_wrong_secret_does_not_join() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    cluster.start_workers_seen(&["good"], 1);
    let right = std::mem::replace(&mut cluster.secret, "a-wrong-secret".into());
    cluster.start_worker("intruder");
    cluster.secret = right;
    let mut client = TrinoClient::new(cluster.client_urls(1), "ops");
    shoal_tests::holds_for(
        Duration::from_secs(3),
        "the worker with the wrong secret is never listed",
        || workers_seen(&mut client) == ["good"],
    );
    let log = cluster.coordinators[&1].log_text();
    assert!(
        log.contains("refused request without a valid cluster secret"),
        "the coordinator logs the refusal"
    );
}
