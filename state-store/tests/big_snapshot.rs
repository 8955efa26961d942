//! A snapshot many times the record and RPC body limit: built, stored in chunks, sent in pieces
//! to a restarted member and to a new one behind the purged log, which then hold exactly the
//! leader's keys.

mod common;

use common::{eventually, within, TestCluster};
use shoal_state_store::{KeyValue, NodeId, ReadConsistency, StateStore, StoreConfig};

/// The lowered limit on each encoded record and each internal RPC body.
const LIMIT: u64 = 64 * 1024;
const KEYS: usize = 600;
const VALUE_LEN: usize = 1024;

fn small_limit(config: &mut StoreConfig) {
    config.max_encoded_len = LIMIT;
    // Snapshots only when the test asks for one, and no log kept behind it.
    config.snapshot_after_logs = 1_000_000;
    config.logs_kept_after_snapshot = 0;
}

fn value(i: usize) -> Vec<u8> {
    (0..VALUE_LEN).map(|j| (i * 7 + j) as u8).collect()
}

async fn everything(store: &StateStore) -> Vec<KeyValue> {
    store.scan("", ReadConsistency::Local).await.expect("scan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_catch_up_through_a_snapshot_larger_than_every_limit() {
    within(120, "test", async {
        let mut cluster = TestCluster::start_with(3, small_limit).await;
        let leader = cluster.leader().await;
        let lagging: NodeId = cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower");
        cluster.kill(lagging).await;

        let leader_store = cluster.member(leader).clone();
        for i in 0..KEYS {
            leader_store
                .put(&format!("big/{i:04}"), value(i))
                .await
                .expect("put");
        }
        leader_store.delete("big/0000").await.expect("delete");
        leader_store
            .put("big/0001", "rewritten")
            .await
            .expect("overwrite");
        let last = leader_store.local_status().applied_index;

        leader_store
            .raft()
            .trigger()
            .snapshot()
            .await
            .expect("trigger a snapshot");
        eventually(20, "the leader snapshots and purges its log", || {
            let status = leader_store.local_status();
            async move { status.snapshot_index >= last && status.purged_index >= last }
        })
        .await;
        let snapshot = leader_store
            .raft()
            .get_snapshot()
            .await
            .expect("read the snapshot")
            .expect("a snapshot");
        let snapshot_len = snapshot.snapshot.get_ref().len() as u64;
        assert!(
            snapshot_len > 8 * LIMIT,
            "the snapshot ({snapshot_len} bytes) is many times the body limit"
        );
        let expected = everything(&leader_store).await;
        assert_eq!(expected.len(), KEYS - 1);

        // A restarted member behind the purged log, then a new one.
        cluster.launch(lagging, None).await;
        cluster.wait_caught_up(lagging).await;
        cluster.launch(4, None).await;
        let url4 = cluster.url(4);
        leader_store
            .add_learner(4, &url4)
            .await
            .expect("add learner");
        cluster.wait_caught_up(4).await;

        for id in [lagging, 4] {
            let member = cluster.member(id);
            let status = member.local_status();
            assert!(
                status.snapshot_index >= last,
                "member {id} installed the snapshot: {status:?}"
            );
            assert_eq!(
                everything(member).await,
                expected,
                "member {id} holds exactly the leader's keys, values and revisions"
            );
            let installed = member
                .raft()
                .get_snapshot()
                .await
                .expect("read the snapshot")
                .expect("a snapshot");
            assert_eq!(installed.meta, snapshot.meta);
            assert_eq!(installed.snapshot.get_ref(), snapshot.snapshot.get_ref());
        }

        // Replication goes on after the snapshot.
        cluster
            .member(lagging)
            .put("big/after", "x")
            .await
            .expect("put through the caught-up member");
        let four = cluster.member(4).clone();
        eventually(20, "member 4 applies the later write", || {
            let four = four.clone();
            async move {
                four.get("big/after", ReadConsistency::Local)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
            }
        })
        .await;
    })
    .await;
}
