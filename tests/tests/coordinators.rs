//! Coordinators as real processes on one seed directory: forming one group, failover after
//! `kill -9`, rejoining, growing and shrinking, `haadmin`, and bad seeds and configuration.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::{shoal_binary, ProcessCluster};
use shoal_tests::{wait_for, wait_until};

const FORM: Duration = Duration::from_secs(60);

/// Wait until every running coordinator in `ids` has joined and they agree on one leader; on
/// failure, show what each coordinator said and the end of its log.
fn agreed_leader(cluster: &ProcessCluster, ids: &[u64]) -> (u64, u64) {
    let states = || -> Vec<Option<Value>> {
        ids.iter()
            .map(|id| cluster.admin_json(*id, &["get-state"]))
            .collect()
    };
    let agreed = shoal_tests::poll(FORM, || {
        let states = states();
        let joined: Vec<&Value> = states
            .iter()
            .map(|s| {
                s.as_ref()
                    .filter(|s| s["joined"] == true && s["leader"].is_u64())
            })
            .collect::<Option<_>>()?;
        let leader = joined[0]["leader"].as_u64().unwrap_or_default();
        let term = joined[0]["term"].as_u64().unwrap_or_default();
        (joined
            .iter()
            .all(|s| s["leader"] == leader && s["term"] == term)
            && ids.contains(&leader))
        .then_some((leader, term))
    });
    if let Some(agreed) = agreed {
        return agreed;
    }
    let mut report = format!("coordinators {ids:?} did not agree on a leader within {FORM:?}\n");
    for (id, state) in ids.iter().zip(states()) {
        let log = cluster.coordinators[id].log_text();
        let tail: Vec<&str> = log.lines().rev().take(25).collect();
        report.push_str(&format!("--- coordinator {id}: {state:?}\n"));
        // A panic is the first thing to see, wherever in the log it is.
        for line in log.lines().filter(|l| l.contains("panicked at")).take(3) {
            report.push_str(line);
            report.push('\n');
        }
        for line in tail.into_iter().rev() {
            report.push_str(line);
            report.push('\n');
        }
    }
    panic!("{report}");
}

fn rows(cluster: &ProcessCluster, id: u64) -> Vec<Value> {
    cluster
        .admin_json(id, &["coordinators"])
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Wait until coordinator `id` reports exactly `expected` members, all voters and synchronised.
fn all_synchronized(cluster: &ProcessCluster, id: u64, expected: &[u64]) {
    let want: BTreeSet<u64> = expected.iter().copied().collect();
    wait_until(
        FORM,
        &format!("members {want:?} synchronised as seen from {id}"),
        || {
            let rows = rows(cluster, id);
            let ids: BTreeSet<u64> = rows.iter().filter_map(|r| r["node_id"].as_u64()).collect();
            ids == want
                && rows.iter().all(|r| {
                    r["voter"] == true
                        && r["summary_state"] == "Synchronized"
                        && r["client_url"].is_string()
                })
        },
    );
}

#[test]
fn three_coordinators_fail_over_rejoin_grow_and_shrink() {
    let mut cluster = ProcessCluster::new(3);
    for id in 1..=3 {
        cluster.start(id);
    }
    let (leader, term) = agreed_leader(&cluster, &[1, 2, 3]);
    all_synchronized(&cluster, leader, &[1, 2, 3]);

    // kill -9 the leader: the other two elect a new one.
    cluster.kill(leader);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (new_leader, new_term) = agreed_leader(&cluster, &survivors);
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let row = wait_for(FORM, "the dead leader shows as not synchronised", || {
        rows(&cluster, new_leader)
            .into_iter()
            .find(|r| r["node_id"] == leader && r["summary_state"] == "Not Synchronized")
    });
    assert!(row["raft_role"] == "unknown", "{row}");

    // The killed coordinator restarts from its data directory and rejoins as itself.
    cluster.start(leader);
    agreed_leader(&cluster, &[1, 2, 3]);
    all_synchronized(&cluster, new_leader, &[1, 2, 3]);

    // A fourth joins through the seed directory and becomes a voter.
    cluster.start(4);
    agreed_leader(&cluster, &[1, 2, 3, 4]);
    all_synchronized(&cluster, 4, &[1, 2, 3, 4]);

    // Removing one shrinks the group.
    let output = cluster.haadmin(&[
        "remove-coordinator",
        "--server",
        &cluster.client_url(1),
        "4",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cluster.stop(4);
    all_synchronized(&cluster, 1, &[1, 2, 3]);
}

#[test]
fn simultaneous_start_forms_exactly_one_group_every_time() {
    for round in 0..5 {
        let mut cluster = ProcessCluster::new(3);
        for id in 1..=3 {
            cluster.configure(id);
        }
        for id in 1..=3 {
            cluster.start(id);
        }
        let (leader, _) = agreed_leader(&cluster, &[1, 2, 3]);
        for id in 1..=3 {
            let members: BTreeSet<u64> = rows(&cluster, id)
                .iter()
                .filter_map(|r| r["node_id"].as_u64())
                .collect();
            assert_eq!(
                members,
                BTreeSet::from([1, 2, 3]),
                "round {round}: view of {id}"
            );
        }
        let initialised = (1..=3)
            .filter(|id| {
                cluster.coordinators[id]
                    .log_text()
                    .contains("initialising the cluster")
            })
            .count();
        assert_eq!(
            initialised, 1,
            "round {round}: exactly one coordinator initialised (leader {leader})"
        );
    }
}

#[test]
fn haadmin_steers_a_running_cluster_and_format_waits_for_it_to_stop() {
    let mut cluster = ProcessCluster::new(3);
    for id in 1..=3 {
        cluster.start(id);
    }
    let (leader, _) = agreed_leader(&cluster, &[1, 2, 3]);
    let server = cluster.client_url(2);

    let text = cluster.haadmin(&["get-state", "--server", &server]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("coordinator 2") && text.contains("state      active"),
        "{text}"
    );

    let state = cluster
        .admin_json(2, &["transition-to-backup"])
        .expect("to backup");
    assert_eq!(state["state"], "backup");
    assert_eq!(
        cluster.admin_json(2, &["get-state"]).expect("state")["state"],
        "backup"
    );
    let row = rows(&cluster, 1)
        .into_iter()
        .find(|r| r["node_id"] == 2)
        .expect("row of 2");
    assert_eq!(row["mode"], "backup", "every coordinator sees the mode");
    assert!(
        row["voter"] == true && row["raft_role"] != "unknown",
        "a backup coordinator stays a voter: {row}"
    );
    let state = cluster
        .admin_json(2, &["transition-to-active"])
        .expect("to active");
    assert_eq!(state["state"], "active");

    let target = (1..=3)
        .find(|id| *id != leader)
        .expect("another coordinator");
    let to = target.to_string();
    let moved = cluster
        .admin_json(2, &["transfer-leader", "--to", &to])
        .expect("transfer");
    assert_eq!(moved["leader"], target);
    assert_eq!(agreed_leader(&cluster, &[1, 2, 3]).0, target);

    // A coordinator that cannot see the seed directory is added by hand.
    cluster.configure(4);
    let lonely_seeds = cluster.dir.path().join("other-seeds");
    let seed_config = cluster.coordinators[&4].etc.join("seed-store.properties");
    let text = std::fs::read_to_string(&seed_config).expect("seed config");
    let text = text.replace(
        &cluster.seed_dir().display().to_string(),
        &lonely_seeds.display().to_string(),
    );
    std::fs::write(&seed_config, text).expect("write seed config");
    cluster.start(4);
    let internal_url = cluster.coordinators[&4].internal_url.clone();
    let added = cluster.haadmin(&[
        "add-coordinator",
        "--server",
        &server,
        "--id",
        "4",
        "--internal-url",
        &internal_url,
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    agreed_leader(&cluster, &[1, 2, 3, 4]);
    all_synchronized(&cluster, 2, &[1, 2, 3, 4]);
    let removed = cluster.haadmin(&["remove-coordinator", "--server", &server, "4"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    cluster.stop(4);
    all_synchronized(&cluster, 2, &[1, 2, 3]);

    let wrong = std::process::Command::new(shoal_binary())
        .args([
            "haadmin",
            "get-state",
            "--server",
            &server,
            "--secret",
            "wrong",
        ])
        .output()
        .expect("haadmin");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401"),
        "{wrong:?}"
    );

    let etc = cluster.coordinators[&1].etc.display().to_string();
    let refused = cluster.haadmin(&["format", "--etc", &etc]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refusing to format"),
        "{refused:?}"
    );

    for id in 1..=3 {
        let status = cluster.stop(id).expect("was running");
        assert!(
            status.success(),
            "coordinator {id} stopped cleanly: {status}"
        );
    }
    let seeds = cluster.seed_dir().join("test");
    let left: Vec<String> = std::fs::read_dir(&seeds)
        .expect("seed dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        left,
        vec!["bootstrap.claim".to_string()],
        "clean shutdown removes each seed"
    );
    let formatted = cluster.haadmin(&["format", "--etc", &etc]);
    assert!(formatted.status.success(), "{formatted:?}");
    assert!(!seeds.exists());
    assert!(!cluster
        .dir
        .path()
        .join("coordinator-1/data/state-store")
        .exists());
}

#[test]
fn bad_seed_files_are_skipped_and_bad_configuration_stops_the_process() {
    let mut cluster = ProcessCluster::new(1);
    let seeds = cluster.seed_dir().join("test");
    std::fs::create_dir_all(&seeds).expect("seed dir");
    std::fs::write(seeds.join("coordinator-7.json"), b"{\"format\":1,\"clu").expect("partial seed");
    std::fs::write(seeds.join("README"), b"not a seed").expect("foreign file");
    cluster.start(1);
    agreed_leader(&cluster, &[1]);
    let log = cluster.coordinators[&1].log_text();
    assert!(
        log.contains("skipping seed file") && log.contains("coordinator-7.json"),
        "{log}"
    );
    assert!(cluster.coordinators.get_mut(&1).expect("1").is_running());

    cluster.configure(2);
    let etc = cluster.coordinators[&2].etc.clone();
    let config = etc.join("config.properties");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{text}node.colour=blue\n")).expect("write");
    let output = std::process::Command::new(shoal_binary())
        .args(["coordinator", "--etc"])
        .arg(&etc)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.properties:12: node.colour: unknown key"),
        "{stderr}"
    );
}

#[test]
fn a_coordinator_with_a_wrong_secret_does_not_join() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    let right = std::mem::replace(&mut cluster.secret, "a-wrong-secret".into());
    cluster.start(2);
    cluster.secret = right;
    let members = |cluster: &ProcessCluster| -> Vec<u64> {
        cluster
            .admin_json(1, &["coordinators"])
            .and_then(|rows| {
                rows.as_array()
                    .map(|rows| rows.iter().filter_map(|r| r["node_id"].as_u64()).collect())
            })
            .unwrap_or_default()
    };
    shoal_tests::wait_until(
        Duration::from_secs(30),
        "the intruder has published its seed and tried to join",
        || {
            cluster.coordinators[&1]
                .log_text()
                .contains("refused request without a valid cluster secret")
        },
    );
    shoal_tests::holds_for(
        Duration::from_secs(3),
        "the coordinator with the wrong secret is never a member",
        || members(&cluster) == [1],
    );
    assert!(
        cluster.joined_state(2).is_none(),
        "the intruder is not part of the cluster"
    );
}

#[test]
fn a_coordinator_without_a_quorum_stops_within_seconds_of_sigterm() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.kill(2);
    cluster.kill(3);
    let url = cluster.client_url(1);
    wait_until(
        Duration::from_secs(60),
        "coordinator 1 refuses queries for want of a quorum",
        || {
            shoal_tests::trino::try_post_statement(&url, "stop", "SELECT 1")
                .is_some_and(|answer| answer.get("error").is_some())
        },
    );
    // Requests in flight that wait on the store, which has no quorum any more.
    let clients: Vec<_> = (0..3)
        .map(|n| {
            let url = url.clone();
            std::thread::spawn(move || {
                shoal_tests::trino::try_post_statement(&url, "stop", &format!("SELECT {n}"))
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let status = cluster.stop(1).expect("coordinator 1 was running");
    let took = started.elapsed();
    eprintln!("coordinator 1 stopped {took:?} after SIGTERM");
    assert!(
        status.success(),
        "coordinator 1 did not stop by itself after SIGTERM ({status:?}):\n{}",
        cluster.coordinators[&1].log_text()
    );
    assert!(
        took < Duration::from_secs(8),
        "coordinator 1 took {took:?} to stop"
    );
    for client in clients {
        let _ = client.join();
    }
}

#[test]
fn a_coordinator_that_lost_its_data_directory_does_not_rejoin_as_the_voter_it_was() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    let (leader, _) = agreed_leader(&cluster, &[1, 2, 3]);
    let lost = if leader == 3 { 2 } else { 3 };
    let others: Vec<u64> = (1..=3).filter(|id| *id != lost).collect();

    // kill -9, its data directory gone, started again with the same id.
    cluster.kill(lost);
    let data = cluster.coordinators[&lost].data_dir();
    std::fs::remove_dir_all(&data).expect("remove the data directory");
    cluster.start(lost);
    let status = wait_for(
        FORM,
        "the coordinator without its data refuses to start",
        || {
            cluster
                .coordinators
                .get_mut(&lost)
                .and_then(|c| c.exit_status())
        },
    );
    assert!(!status.success(), "{status:?}");
    let log = cluster.coordinators[&lost].log_text();
    assert!(
        log.contains("must not rejoin as node") && log.contains("haadmin remove-coordinator"),
        "{log}"
    );
    // It never became a member again meanwhile: the others still are the quorum.
    agreed_leader(&cluster, &others);

    // The way back the message names: remove it, then start it with an empty directory.
    let removed = cluster.haadmin(&[
        "remove-coordinator",
        "--server",
        &cluster.client_url(others[0]),
        &lost.to_string(),
    ]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    all_synchronized(&cluster, others[0], &others);
    std::fs::remove_dir_all(&data).expect("empty the data directory");
    cluster.start(lost);
    agreed_leader(&cluster, &[1, 2, 3]);
    all_synchronized(&cluster, others[0], &[1, 2, 3]);
}
