//! A watch whose stream was dropped ends, even when nothing under its prefix changes again:
//! watchers of keys that never change (a finished query's record) must not pile up and take
//! every applied write forever.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_state_store::{StateStore, StoreConfig};

#[tokio::test]
async fn dropped_watches_end_without_further_events_under_their_prefix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(1, dir.path().join("raft"), "http://127.0.0.1:1");
    config.cluster_secret = "watch-test".into();
    let store = StateStore::open(config).await?;
    store
        .initialize(BTreeMap::from([(1, "http://127.0.0.1:1".to_string())]))
        .await?;
    store.wait_for_leader(Duration::from_secs(10)).await?;
    let before = store.live_watches();
    let watches: Vec<_> = (0..50)
        .map(|i| store.watch(&format!("quiet/{i}"), 0))
        .collect::<Result<_, _>>()?;
    assert_eq!(store.live_watches(), before + 50);
    drop(watches);
    // Writes elsewhere keep the store busy (and pace the loop); none is under a watched prefix.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while store.live_watches() > before {
        assert!(
            Instant::now() < deadline,
            "{} watches still running after their streams were dropped",
            store.live_watches() - before
        );
        store.put(&format!("busy/{n}"), b"x".to_vec()).await?;
        n += 1;
    }
    store.shutdown().await?;
    Ok(())
}
