//! Bad data on disk: corrupt or truncated values and a newer on-disk format are reported as
//! errors naming what is wrong, never as panics; an older format is upgraded when opened.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{open_retrying, within, SECRET};
use openraft::RaftLogReader;
use shoal_state_store::log_store::LogStore;
use shoal_state_store::ondisk::{self, Header, FORMAT_VERSION};
use shoal_state_store::types::SnapshotMeta;
use shoal_state_store::{ReadConsistency, StateStore, StoreConfig, StoreError};
use tempfile::TempDir;

fn config(dir: &Path) -> StoreConfig {
    // Nothing listens on this address: a one-member cluster never calls it.
    StoreConfig::new(1, dir, "http://127.0.0.1:9").with_secret(SECRET)
}

/// Create a one-member store holding `key = value`, then stop it.
async fn store_with(dir: &Path, key: &str, value: &str) {
    let store = open_retrying(config(dir)).await;
    store
        .initialize(BTreeMap::from([(1, "http://127.0.0.1:9".to_string())]))
        .await
        .expect("initialize");
    store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    store.put(key, value).await.expect("put");
    store.shutdown().await.expect("shutdown");
}

/// Open the sled database of a stopped store, waiting for the store to release it.
async fn open_db(dir: &Path) -> sled::Db {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "database still locked");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot open database: {e}"),
        }
    }
}

async fn overwrite(dir: &Path, tree: &str, key: &[u8], value: impl FnOnce(&[u8]) -> Vec<u8>) {
    let db = open_db(dir).await;
    let tree = db.open_tree(tree).expect("tree");
    let old = tree.get(key).expect("read").expect("value present");
    tree.insert(key, value(&old)).expect("write");
    db.flush().expect("flush");
}

fn kv_key(key: &str) -> Vec<u8> {
    let mut raw = vec![b'k'];
    raw.extend_from_slice(key.as_bytes());
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_truncated_values_name_their_key_space() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(
            dir.path(),
            "a",
            "some value that is long enough to truncate",
        )
        .await;

        for (label, damage) in [
            (
                "garbage",
                Box::new(|_: &[u8]| vec![0xffu8, 0xfe, 0xfd]) as Box<dyn FnOnce(&[u8]) -> Vec<u8>>,
            ),
            (
                "truncated",
                Box::new(|old: &[u8]| old[..old.len() / 2].to_vec()),
            ),
        ] {
            overwrite(dir.path(), "state_machine", &kv_key("a"), damage).await;
            let store = open_retrying(config(dir.path())).await;
            let error = store
                .get("a", ReadConsistency::Local)
                .await
                .expect_err("a damaged value is an error");
            assert!(
                matches!(error, StoreError::Corrupt { keyspace: "kv", .. }),
                "{label}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("key space kv") && message.contains("\"a\""),
                "{label}: {message}"
            );
            let scan = store.scan("", ReadConsistency::Local).await;
            assert!(
                scan.is_err(),
                "{label}: a scan over the damaged value fails too"
            );
            store.shutdown().await.expect("shutdown");
            drop(store);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_log_entry_is_a_storage_error_naming_the_log() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(dir.path(), "a", "1").await;
        let mut first = vec![b'l'];
        first.extend_from_slice(&1u64.to_be_bytes());
        let log_dir = dir.path().join(ondisk::LOG_DIR);
        overwrite(&log_dir, "raft_log", &first, |old| {
            old[..old.len() / 2].to_vec()
        })
        .await;
        let db = open_db(&log_dir).await;
        let mut log = LogStore::open(&db).expect("log store");
        let error = log
            .try_get_log_entries(0..100)
            .await
            .expect_err("damaged entry");
        let message = error.to_string();
        assert!(message.contains("raft_log"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_on_disk_format_refuses_to_open() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(dir.path(), "a", "1").await;
        {
            let db = open_db(dir.path()).await;
            let header = ondisk::read_header(&db)
                .expect("read header")
                .expect("header written");
            assert_eq!(header.format_version, FORMAT_VERSION);
            ondisk::write_header(
                &db,
                &Header {
                    format_version: FORMAT_VERSION + 98,
                    node_id: 1,
                },
            )
            .expect("write header");
        }
        let error = loop {
            match StateStore::open(config(dir.path())).await {
                Err(StoreError::Sled { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => break e,
                Ok(_) => panic!("a store of a newer format must not open"),
            }
        };
        assert!(
            matches!(error, StoreError::FormatTooNew { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("format version {}", FORMAT_VERSION + 98)),
            "{message}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_node_refuses_to_open() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(dir.path(), "a", "1").await;
        let mut other = config(dir.path());
        other.node_id = 2;
        let error = loop {
            match StateStore::open(other.clone()).await {
                Err(StoreError::Sled { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => break e,
                Ok(_) => panic!("another node's directory must not open"),
            }
        };
        assert!(error.to_string().contains("belongs to node 1"), "{error}");
    })
    .await;
}

/// The snapshot of on-disk format 1: one bincode value under `s current` in the `snapshot`
/// tree, its data the whole key space as one value.
#[derive(serde::Serialize)]
struct LegacySnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(serde::Serialize)]
struct LegacyValue {
    value: Vec<u8>,
    create_revision: u64,
    mod_revision: u64,
    version: u64,
}

fn bincode_encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .serialize(value)
        .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_directory_with_a_snapshot_is_upgraded_when_opened() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        let store = open_retrying(config(dir.path())).await;
        store
            .initialize(BTreeMap::from([(1, "http://127.0.0.1:9".to_string())]))
            .await
            .expect("initialize");
        store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("leader");
        let revision = store.put("a", "1").await.expect("put");
        let metrics = store.raft().metrics().borrow().clone();
        store.shutdown().await.expect("shutdown");
        drop(store);

        // Turn the directory into a format-1 one holding a format-1 snapshot of its state.
        let meta = SnapshotMeta {
            last_log_id: metrics.last_applied,
            last_membership: (*metrics.membership_config).clone(),
            snapshot_id: "format-1-snapshot".into(),
        };
        let entry = LegacyValue {
            value: b"1".to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        };
        let body = bincode_encode(&(revision, vec![("a".to_string(), entry)]));
        {
            let db = open_db(dir.path()).await;
            ondisk::write_header(
                &db,
                &Header {
                    format_version: 1,
                    node_id: 1,
                },
            )
            .expect("write header");
            let tree = db.open_tree("snapshot").expect("snapshot tree");
            let legacy = LegacySnapshot { meta, data: body };
            tree.insert(b"scurrent", bincode_encode(&legacy))
                .expect("insert");
            db.flush().expect("flush");
        }
        let summary = loop {
            match ondisk::inspect(dir.path()) {
                Err(StoreError::Sled { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                other => break other.expect("inspect"),
            }
        };
        assert_eq!(summary.format_version, 1);
        assert_eq!(summary.snapshot_id.as_deref(), Some("format-1-snapshot"));

        let store = open_retrying(config(dir.path())).await;
        let snapshot = store
            .raft()
            .get_snapshot()
            .await
            .expect("read snapshot")
            .expect("the snapshot survived the upgrade");
        assert_eq!(snapshot.meta.snapshot_id, "format-1-snapshot");
        assert!(snapshot.snapshot.get_ref().starts_with(b"SHOALSNP"));
        let value = store
            .get("a", ReadConsistency::Local)
            .await
            .expect("read")
            .expect("present");
        assert_eq!(value.value, b"1");
        store.shutdown().await.expect("shutdown");
        drop(store);

        let summary = loop {
            match ondisk::inspect(dir.path()) {
                Err(StoreError::Sled { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                other => break other.expect("inspect"),
            }
        };
        assert_eq!(summary.format_version, FORMAT_VERSION);
        assert_eq!(summary.snapshot_id.as_deref(), Some("format-1-snapshot"));
    })
    .await;
}

/// Every entry of `tree` in `db`, as raw bytes.
fn raw_entries(db: &sled::Db, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.open_tree(tree)
        .expect("tree")
        .iter()
        .map(|item| {
            let (k, v) = item.expect("entry");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_3_directory_has_its_raft_log_moved_to_its_own_database_when_opened() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(dir.path(), "a", "1").await;
        let log_dir = dir.path().join(ondisk::LOG_DIR);

        // Turn the directory into a format-3 one: the log's trees in the main database.
        let (log, state) = {
            let log_db = open_db(&log_dir).await;
            (
                raw_entries(&log_db, "raft_log"),
                raw_entries(&log_db, "raft_state"),
            )
        };
        assert!(
            !log.is_empty() && !state.is_empty(),
            "a log and a vote to move"
        );
        std::fs::remove_dir_all(&log_dir).expect("remove the log database");
        {
            let db = open_db(dir.path()).await;
            for (name, entries) in [("raft_log", &log), ("raft_state", &state)] {
                let tree = db.open_tree(name).expect("tree");
                for (k, v) in entries {
                    tree.insert(k.as_slice(), v.as_slice()).expect("insert");
                }
            }
            ondisk::write_header(
                &db,
                &Header {
                    format_version: 3,
                    node_id: 1,
                },
            )
            .expect("write header");
            db.flush().expect("flush");
        }

        // The upgrade moves both trees as they were.
        {
            let db = open_db(dir.path()).await;
            let header = ondisk::read_header(&db).expect("header").expect("present");
            let log_db = ondisk::open_log_db(dir.path(), 1, false).expect("log database");
            let path = dir.path().display().to_string();
            let upgraded =
                ondisk::upgrade(&db, &log_db, &path, header, 256 << 20).expect("upgrade");
            assert_eq!(upgraded.format_version, FORMAT_VERSION);
            assert_eq!(raw_entries(&log_db, "raft_log"), log);
            assert_eq!(raw_entries(&log_db, "raft_state"), state);
            let names: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
            assert!(
                !names.contains(&b"raft_log".to_vec()) && !names.contains(&b"raft_state".to_vec()),
                "the old trees are gone from the main database"
            );
            // Re-running it (as an open after a crash right after the header would) is a no-op.
            ondisk::upgrade(&db, &log_db, &path, upgraded, 256 << 20).expect("again");
            assert_eq!(raw_entries(&log_db, "raft_log"), log);
        }

        let store = open_retrying(config(dir.path())).await;
        store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("leader after the upgrade");
        let value = store
            .get("a", ReadConsistency::Local)
            .await
            .expect("read")
            .expect("present");
        assert_eq!(value.value, b"1");
        store
            .put("b", "2")
            .await
            .expect("a write after the upgrade");
        store.shutdown().await.expect("shutdown");
        drop(store);
        let log_db = open_db(&log_dir).await;
        let moved = raw_entries(&log_db, "raft_log");
        assert_eq!(
            moved.first(),
            log.first(),
            "the log's first entry is where it was"
        );
        assert!(
            moved.len() > log.len(),
            "the write after the upgrade was appended"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_raft_log_refuses_to_rejoin_as_itself() {
    within(60, "test", async {
        let dir = TempDir::new().expect("tempdir");
        store_with(dir.path(), "a", "1").await;
        let log_dir = dir.path().join(ondisk::LOG_DIR);
        // Wait for the stopped store to release the log before removing it.
        drop(open_db(&log_dir).await);
        std::fs::remove_dir_all(&log_dir).expect("remove the log database");
        let error = loop {
            match StateStore::open(config(dir.path())).await {
                Err(StoreError::Sled { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => break e,
                Ok(_) => panic!("a member without its vote and log must not start"),
            }
        };
        let message = error.to_string();
        assert!(
            message.contains("no Raft log") && message.contains("haadmin remove-coordinator 1"),
            "{message}"
        );
        assert!(!log_dir.exists(), "refusing creates no new log");
    })
    .await;
}
