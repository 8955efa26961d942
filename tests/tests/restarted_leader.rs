//! A Raft leader that dies and comes back before anyone replaced it leads on in its term. What
//! it had committed before it died may be missing from its disk (the commit pointer is not
//! synced, and the state machine lags), while the other members applied it and answered
//! reads with it: the restarted leader must not answer a read with an older value.
//!
//! The chaos test found this once in many runs; failpoints make the moment certain here. The
//! leader (1) never syncs its commit pointer and applies the second write only a minute
//! late, so it dies with that write committed elsewhere but missing from its disk. Coordinator
//! 2 applied the write and answered a read with it; coordinator 3 refuses the entry, so when
//! the leader comes back while 2 is paused it confirms its leadership through 3 but cannot
//! commit the entry again: a correct leader answers no read until 2 is back, a stale one
//! answers with the first write.

use std::time::Duration;

use shoal_tests::kv::KvClient;
use shoal_tests::process::ProcessCluster;
use shoal_tests::{holds_for, wait_for};

const KEY: &str = "restarted-leader/register";
const SECOND: &str = "committed-while-the-leader-lagged";

/// Followers that start no election for a long time, so the restarted leader keeps its term.
fn patient(cluster: &mut ProcessCluster, id: u64) {
    let etc = cluster.configure(id).etc.clone();
    let file = etc.join("state-store.properties");
    let mut text = std::fs::read_to_string(&file).expect("state-store.properties");
    text.push_str("state-store.election-timeout.min=30s\nstate-store.election-timeout.max=40s\n");
    std::fs::write(&file, text).expect("state-store.properties");
}

#[test]
fn a_restarted_leader_never_answers_a_read_older_than_one_answered_before() {
    let mut cluster = ProcessCluster::new(3);
    let lagging_leader = (
        "SHOAL_FAILPOINTS".to_string(),
        format!("raft-commit-pointer-lost=return;state-machine-apply-stall=return({SECOND})"),
    );
    cluster.coordinator_env = vec![lagging_leader];
    cluster.start(1);
    cluster.coordinator_env.clear();
    patient(&mut cluster, 2);
    cluster.start(2);
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        format!("raft-append-refused=return({SECOND})"),
    )];
    patient(&mut cluster, 3);
    cluster.start(3);
    for id in 1..=3 {
        wait_for(
            Duration::from_secs(60),
            &format!("coordinator {id} joins"),
            || cluster.joined_state(id),
        );
    }
    if cluster.joined_state(1).expect("joined")["leader"] != 1 {
        cluster
            .admin_json(2, &["transfer-leader", "--to", "1"])
            .expect("leadership moves to coordinator 1");
    }
    wait_for(Duration::from_secs(30), "coordinator 1 leads", || {
        (cluster.joined_state(2)?["leader"] == 1).then_some(())
    });

    let kv = KvClient::new(&cluster.secret, Duration::from_secs(3));
    let (one, two, three) = (
        cluster.client_url(1),
        cluster.client_url(2),
        cluster.client_url(3),
    );
    kv.put(&two, KEY, "first").expect("the first write");
    assert_eq!(kv.get(&one, KEY), Ok(Some("first".into())));

    // The leader commits the second write with 2 but does not apply it; its client is never
    // told. 2 applies it and answers a linearizable read with it.
    let writer = {
        let kv = KvClient::new(&cluster.secret, Duration::from_secs(3));
        let two = two.clone();
        std::thread::spawn(move || kv.put(&two, KEY, SECOND))
    };
    wait_for(
        Duration::from_secs(30),
        "coordinator 2 reads the second write",
        || (kv.get(&two, KEY).ok()? == Some(SECOND.into())).then_some(()),
    );
    for (id, failpoint) in [
        (1, "failpoint state-machine-apply-stall"),
        (3, "failpoint raft-append-refused"),
    ] {
        assert!(
            cluster.coordinators[&id].log_text().contains(failpoint),
            "coordinator {id}: {failpoint} fired"
        );
    }

    // The leader dies and comes back while 2 is paused; 3 still refuses the entry.
    cluster.kill(1);
    cluster.pause(2);
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "raft-commit-pointer-lost=return".into(),
    )];
    cluster.start(1);
    // No read through the restarted leader or the member behind it may answer with what was
    // there before the second write (a correct leader answers none until 2 is back).
    let mut answered = 0;
    holds_for(
        Duration::from_secs(8),
        "no read answers with an older value",
        || {
            for url in [&one, &three] {
                if let Ok(value) = kv.get(url, KEY) {
                    assert_eq!(
                        value.as_deref(),
                        Some(SECOND),
                        "a read through {url} answered with what was there before the second write"
                    );
                    answered += 1;
                }
            }
            true
        },
    );
    let state = cluster
        .admin_json(1, &["get-state"])
        .expect("coordinator 1 answers");
    assert_eq!(
        state["leader"], 1,
        "the restarted coordinator leads on in its term (no election happened): {state}"
    );
    eprintln!("reads answered while 2 was paused: {answered}");

    cluster.resume(2);
    for url in [&one, &two] {
        let value = wait_for(
            Duration::from_secs(30),
            &format!("a read through {url}"),
            || kv.get(url, KEY).ok(),
        );
        assert_eq!(value, Some(SECOND.into()), "a read through {url}");
    }
    let _ = writer.join();
}
