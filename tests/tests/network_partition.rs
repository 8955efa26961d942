//! A real network partition: each coordinator runs in a network namespace of its own, and
//! the Raft leader's link to the other nodes is taken down while its clients still reach it.
//! The other side elects a leader and takes writes; the cut-off coordinator answers its
//! clients, but never with what the majority has moved past; healed, it has the majority's
//! writes.

use std::time::Duration;

use serde_json::json;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;
use shoal_tests::{wait_for, wait_until};

fn count(client: &mut TrinoClient) -> Result<serde_json::Value, String> {
    client
        .execute("SELECT count(*) FROM p.t")
        .map(|r| r.rows[0][0].clone())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn a_cut_off_leader_is_replaced_and_serves_nothing_stale() {
    let mut cluster = ProcessCluster::new(3);
    cluster.use_network_namespaces();
    cluster.start_joined(3);
    let mut setup = TrinoClient::new(cluster.client_urls(3), "partition");
    setup.execute("CREATE SCHEMA p").expect("schema");
    setup
        .execute("CREATE TABLE p.t AS SELECT 1 AS x")
        .expect("table");
    let leader = cluster.joined_state(1).expect("state")["leader"]
        .as_u64()
        .expect("a leader");
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();

    cluster.cut(leader, true).expect("cut the leader off");
    let new_leader = wait_for(
        Duration::from_secs(15),
        "the other coordinators elect another leader",
        || {
            cluster
                .joined_state(others[0])
                .and_then(|s| s["leader"].as_u64())
                .filter(|l| *l != leader)
        },
    );
    assert!(others.contains(&new_leader), "leader {new_leader}");
    let mut majority = TrinoClient::new(
        others.iter().map(|id| cluster.client_url(*id)).collect(),
        "partition",
    );
    wait_until(
        Duration::from_secs(15),
        "the majority takes a write",
        || majority.execute("INSERT INTO p.t VALUES (2)").is_ok(),
    );
    assert_eq!(count(&mut majority), Ok(json!(2)));

    // Its clients still reach the cut-off coordinator; it answers, but not with the past.
    let cut_url = cluster.client_url(leader);
    let info = ureq::get(format!("{cut_url}/v1/info")).call();
    assert!(
        info.is_ok(),
        "the cut-off coordinator's clients reach it: {info:?}"
    );
    let mut cut_off = TrinoClient::new(vec![cut_url], "partition");
    match count(&mut cut_off) {
        Err(_) => {}
        Ok(n) => assert_eq!(n, json!(2), "a stale answer from the cut-off side"),
    }

    cluster.cut(leader, false).expect("link the leader again");
    wait_until(
        Duration::from_secs(20),
        "the healed coordinator has the majority's write",
        || count(&mut cut_off) == Ok(json!(2)),
    );
    for id in 1..=3 {
        wait_until(
            Duration::from_secs(10),
            &format!("coordinator {id} agrees on the leader"),
            || {
                cluster
                    .joined_state(id)
                    .is_some_and(|s| s["leader"].as_u64().is_some_and(|l| l != 0))
            },
        );
    }
}
