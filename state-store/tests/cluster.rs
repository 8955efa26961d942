//! Three-member clusters in one process: replication, failover, snapshots, compare-and-set
//! races, watches, membership and the cluster secret.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, holds_for, read, within, TestCluster, SECRET};
use futures::StreamExt;
use shoal_state_store::{
    CasOutcome, EventKind, NodeId, Op, RaftRole, ReadConsistency, StoreConfig, TxnRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_are_readable_from_every_member() {
    within(60, "test", async {
        let cluster = TestCluster::start(3).await;
        let ids = cluster.ids();
        for i in 0..30u64 {
            let writer = cluster.member(ids[(i % 3) as usize]);
            writer
                .put(&format!("k/{i}"), format!("v{i}"))
                .await
                .expect("put");
        }
        for id in &ids {
            let store = cluster.member(*id);
            for i in 0..30 {
                assert_eq!(
                    read(store, &format!("k/{i}")).await,
                    Some(format!("v{i}")),
                    "member {id}"
                );
            }
        }
        for id in &ids {
            cluster.wait_caught_up(*id).await;
            let local = cluster
                .member(*id)
                .scan("k/", ReadConsistency::Local)
                .await
                .expect("scan");
            assert_eq!(local.len(), 30, "member {id} applied every write");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_loses_no_acknowledged_write_and_old_leader_catches_up() {
    within(90, "test", async {
        let mut cluster = TestCluster::start(3).await;
        for i in 0..20 {
            cluster
                .member(1)
                .put(&format!("k/{i}"), format!("v{i}"))
                .await
                .expect("put");
        }
        let old_leader = cluster.leader().await;
        cluster.kill(old_leader).await;
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, old_leader);
        for id in cluster.ids() {
            for i in 20..40 {
                cluster
                    .member(id)
                    .put(&format!("k/{i}"), format!("v{i}"))
                    .await
                    .expect("put after failover");
            }
        }
        for id in cluster.ids() {
            for i in 0..40 {
                assert_eq!(
                    read(cluster.member(id), &format!("k/{i}")).await,
                    Some(format!("v{i}"))
                );
            }
        }
        cluster.launch(old_leader, None).await;
        cluster.wait_caught_up(old_leader).await;
        let restarted = cluster.member(old_leader);
        let local = restarted
            .scan("k/", ReadConsistency::Local)
            .await
            .expect("scan");
        assert_eq!(local.len(), 40, "the restarted member has every write");
        assert_eq!(read(restarted, "k/39").await.as_deref(), Some("v39"));
    })
    .await;
}

fn snapshot_often(config: &mut StoreConfig) {
    config.snapshot_after_logs = 20;
    config.logs_kept_after_snapshot = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_behind_the_purged_log_catches_up_through_a_snapshot() {
    within(90, "test", async {
        let mut cluster = TestCluster::start_with(3, snapshot_often).await;
        let leader = cluster.leader().await;
        let lagging = cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower");
        cluster.kill(lagging).await;
        let lagging_last = 0;
        for i in 0..200 {
            cluster
                .member(leader)
                .put(&format!("s/{i:03}"), format!("v{i}"))
                .await
                .expect("put");
        }
        let leader_store = cluster.member(leader).clone();
        eventually(20, "the leader purges its log behind a snapshot", || {
            let purged = leader_store.local_status().purged_index;
            async move { purged > lagging_last + 50 }
        })
        .await;
        cluster.launch(lagging, None).await;
        cluster.wait_caught_up(lagging).await;
        let member = cluster.member(lagging);
        let status = member.local_status();
        assert!(
            status.snapshot_index > 50,
            "installed a snapshot, status: {status:?}"
        );
        let keys = member
            .scan("s/", ReadConsistency::Local)
            .await
            .expect("scan");
        assert_eq!(keys.len(), 200);
        assert_eq!(keys[199].value, b"v199");
        // It keeps replicating after the snapshot.
        member
            .put("s/after", "x")
            .await
            .expect("put via the caught-up member");
        assert_eq!(read(member, "s/after").await.as_deref(), Some("x"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_set_has_exactly_one_winner_per_revision() {
    within(90, "test", async {
        let cluster = TestCluster::start(3).await;
        let first = cluster.member(1).put("cas", "start").await.expect("put");
        let mut tasks = Vec::new();
        for id in cluster.ids() {
            for worker in 0..3 {
                let store = cluster.member(id).clone();
                tasks.push(tokio::spawn(async move {
                    let mut wins = Vec::new();
                    for attempt in 0..15 {
                        let current = store
                            .get("cas", ReadConsistency::Linearizable)
                            .await
                            .expect("read")
                            .expect("key exists");
                        let value = format!("{id}-{worker}-{attempt}");
                        match store
                            .compare_and_set("cas", current.mod_revision, value.clone())
                            .await
                        {
                            Ok(CasOutcome::Swapped { revision }) => {
                                wins.push((current.mod_revision, revision, value))
                            }
                            Ok(CasOutcome::Conflict { .. }) => {}
                            Err(e) => panic!("compare-and-set failed: {e}"),
                        }
                    }
                    wins
                }));
            }
        }
        let mut wins = Vec::new();
        for task in tasks {
            wins.extend(task.await.expect("task"));
        }
        let expected: BTreeSet<u64> = wins.iter().map(|w| w.0).collect();
        assert_eq!(
            expected.len(),
            wins.len(),
            "two writers won on the same revision: {wins:?}"
        );
        wins.sort();
        let mut previous = first;
        for (expected, revision, _) in &wins {
            assert_eq!(
                *expected, previous,
                "the winners form one chain of revisions"
            );
            previous = *revision;
        }
        let last = cluster
            .member(2)
            .get("cas", ReadConsistency::Linearizable)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(last.mod_revision, previous);
        assert_eq!(last.version, wins.len() as u64 + 1);
        assert_eq!(last.value, wins.last().expect("someone won").2.as_bytes());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_delivers_every_change_after_a_revision_in_order_once() {
    within(60, "test", async {
        let cluster = TestCluster::start(3).await;
        cluster.member(1).put("w/before", "0").await.expect("put");
        let start = cluster
            .member(1)
            .revision(ReadConsistency::Linearizable)
            .await
            .expect("revision")
            + 1;
        cluster.wait_caught_up(2).await;
        let mut live = cluster.member(2).watch("w/", start).expect("watch");
        let mut expected = Vec::new();
        for i in 0..40u64 {
            let store = cluster.member(1 + i % 3);
            let key = format!("w/{}", i % 7);
            if i % 5 == 4 {
                if store.delete(&key).await.expect("delete") {
                    expected.push((EventKind::Delete, key));
                }
            } else {
                store.put(&key, format!("{i}")).await.expect("put");
                expected.push((EventKind::Put, key));
            }
            store
                .put(&format!("other/{i}"), "x")
                .await
                .expect("put outside the prefix");
        }
        let txn = TxnRequest {
            success: vec![
                Op::Put {
                    key: "w/t1".into(),
                    value: b"a".to_vec(),
                },
                Op::Put {
                    key: "w/t2".into(),
                    value: b"b".to_vec(),
                },
            ],
            ..TxnRequest::default()
        };
        let txn_revision = cluster.member(3).txn(txn).await.expect("txn").revision;
        expected.push((EventKind::Put, "w/t1".into()));
        expected.push((EventKind::Put, "w/t2".into()));

        let mut seen = Vec::new();
        let mut last_revision = 0;
        while seen.len() < expected.len() {
            let event = within(10, "next watch event", live.next())
                .await
                .expect("stream open")
                .expect("event");
            assert!(
                event.revision() >= last_revision,
                "events in revision order"
            );
            assert!(event.revision() >= start);
            last_revision = event.revision();
            seen.push((event.kind, event.kv.key.clone()));
        }
        assert_eq!(seen, expected);
        assert_eq!(
            last_revision, txn_revision,
            "both writes of the transaction share its revision"
        );
        let extra = tokio::time::timeout(Duration::from_millis(300), live.next()).await;
        assert!(
            extra.is_err(),
            "no event delivered twice or out of prefix: {extra:?}"
        );

        // A watch started later from the same revision replays the same history.
        let mut replay = cluster
            .member(3)
            .watch("w/", start)
            .expect("watch from history");
        let mut replayed = Vec::new();
        while replayed.len() < expected.len() {
            let event = within(10, "replayed event", replay.next())
                .await
                .expect("open")
                .expect("event");
            replayed.push((event.kind, event.kv.key));
        }
        assert_eq!(replayed, expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_add_promote_transfer_and_remove() {
    within(90, "test", async {
        let mut cluster = TestCluster::start(3).await;
        cluster.member(2).put("m/a", "1").await.expect("put");
        cluster.launch(4, None).await;
        let url4 = cluster.url(4);
        cluster
            .member(3)
            .add_learner(4, &url4)
            .await
            .expect("add learner via a follower");
        cluster.member(1).promote(4).await.expect("promote");
        cluster.wait_caught_up(4).await;
        assert_eq!(read(cluster.member(4), "m/a").await.as_deref(), Some("1"));

        let status = cluster.member(2).status().await;
        assert_eq!(status.members.len(), 4);
        assert!(status.members.iter().all(|m| m.voter), "{status:?}");
        assert!(
            status.members.iter().all(|m| m.error.is_none()),
            "{status:?}"
        );
        let leader = status.leader.expect("leader");
        let leader_entry = status
            .members
            .iter()
            .find(|m| m.id == leader)
            .expect("leader listed");
        assert_eq!(leader_entry.role, RaftRole::Leader);
        for member in &status.members {
            assert_eq!(member.term, Some(status.term));
            assert!(
                member.lag.is_some() && member.matched_index.is_some(),
                "{member:?}"
            );
        }

        let target: NodeId = cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("another voter");
        cluster
            .member(leader)
            .transfer_leader(target)
            .await
            .expect("transfer");
        assert_eq!(cluster.leader().await, target);
        cluster
            .member(leader)
            .put("m/b", "2")
            .await
            .expect("writes continue after the transfer");

        let removed = cluster
            .ids()
            .into_iter()
            .find(|id| *id != target)
            .expect("member to remove");
        cluster
            .member(target)
            .remove_member(removed)
            .await
            .expect("remove");
        cluster.kill(removed).await;
        let status = cluster.member(target).status().await;
        assert_eq!(status.members.len(), 3, "{status:?}");
        assert!(status.members.iter().all(|m| m.id != removed));
        for id in cluster.ids() {
            assert_eq!(read(cluster.member(id), "m/b").await.as_deref(), Some("2"));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_calls_fail_with_a_retryable_error_instead_of_hanging() {
    within(60, "test", async {
        let mut cluster = TestCluster::start(3).await;
        cluster.member(1).put("q", "1").await.expect("put");
        let survivor = cluster.leader().await;
        for id in cluster.ids() {
            if id != survivor {
                cluster.kill(id).await;
            }
        }
        let store = cluster.member(survivor).clone();
        let started = std::time::Instant::now();
        let write = store.put("q", "2").await;
        let error = write.expect_err("a write without quorum must fail");
        assert!(error.is_retryable(), "retryable: {error}");
        let read = store.get("q", ReadConsistency::Linearizable).await;
        assert!(read
            .expect_err("no linearizable read without quorum")
            .is_retryable());
        assert!(started.elapsed() < Duration::from_secs(10), "bounded wait");
        let local = store
            .get("q", ReadConsistency::Local)
            .await
            .expect("local read works");
        assert_eq!(local.map(|kv| kv.value), Some(b"1".to_vec()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_rpc_without_the_cluster_secret_is_refused() {
    within(60, "test", async {
        let mut cluster = TestCluster::start(3).await;
        let url = cluster.url(1);
        for secret in [None, Some("wrong-secret")] {
            let status = raw_post(&url, "/raft/v1/vote", secret).await;
            assert_eq!(status, 401, "secret {secret:?}");
            let status = raw_post(&url, "/store/v1/write", secret).await;
            assert_eq!(status, 401, "secret {secret:?}");
        }
        let with_secret = raw_post(&url, "/store/v1/status", Some(SECRET)).await;
        assert_eq!(with_secret, 200, "the right secret passes");

        // A member started with a wrong secret cannot join: the leader's RPC is refused.
        cluster.launch(9, Some("wrong-secret")).await;
        let url9 = cluster.url(9);
        cluster
            .member(1)
            .add_learner(9, &url9)
            .await
            .expect("learner recorded");
        cluster.member(1).put("secret/x", "1").await.expect("put");
        let leader = cluster.member(1).current_leader().expect("leader");
        let leader_store = cluster.member(leader).clone();
        eventually(10, "the leader replicates to member 9", || {
            let tracked = leader_store.local_status().followers.contains_key(&9);
            async move { tracked }
        })
        .await;
        let target = leader_store.local_status().last_log_index;
        let (two, three) = (cluster.member(2).clone(), cluster.member(3).clone());
        eventually(10, "members 2 and 3 apply the write", || {
            let done = two.local_status().applied_index >= target
                && three.local_status().applied_index >= target;
            async move { done }
        })
        .await;
        // The good members have the write; member 9 gets nothing for many heartbeats.
        let refused = cluster.member(9).clone();
        holds_for(
            Duration::from_millis(500),
            "nothing replicated to a member with the wrong secret",
            || {
                let applied = refused.local_status().applied_index;
                async move { applied == 0 }
            },
        )
        .await;
        let progress = cluster
            .member(leader)
            .local_status()
            .followers
            .get(&9)
            .cloned();
        assert!(
            progress.as_ref().is_some_and(|p| p.matched_index.is_none()),
            "{progress:?}"
        );
    })
    .await;
}

async fn raw_post(base: &str, path: &str, secret: Option<&str>) -> u16 {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::post(format!("{base}{path}"));
    if let Some(secret) = secret {
        request = request.header(shoal_proto::CLUSTER_SECRET_HEADER, secret);
    }
    let response = client
        .request(
            request
                .body(Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_reads_its_own_writes_locally() {
    within(60, "test", async {
        let cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        for id in cluster.ids().into_iter().filter(|id| *id != leader) {
            let store = cluster.member(id);
            for i in 0..5 {
                let key = format!("own/{id}/{i}");
                let started = std::time::Instant::now();
                let revision = store.put(&key, "v").await.expect("put");
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "a put through a follower took {:?}",
                    started.elapsed()
                );
                let local = store
                    .get(&key, ReadConsistency::Local)
                    .await
                    .expect("local read");
                assert_eq!(
                    local.map(|kv| kv.mod_revision),
                    Some(revision),
                    "member {id} sees its own write"
                );
            }
        }
    })
    .await;
}
