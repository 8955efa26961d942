//! A one-member state store in a temporary directory, for the library's unit tests.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_state_store::{StateStore, StoreConfig};

/// Open, initialize and wait for the leader of a one-member store.
pub(crate) async fn one_member_store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(1, dir.path().join("raft"), "http://127.0.0.1:1");
    config.cluster_secret = "unit-tests".into();
    let store = StateStore::open(config).await.expect("open");
    store
        .initialize(BTreeMap::from([(1, "http://127.0.0.1:1".to_string())]))
        .await
        .expect("initialize");
    store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    (dir, store)
}
