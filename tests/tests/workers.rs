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
