//! Property test: whatever bytes a seed object holds, reading the seed directory skips it with
//! a reason (or reads a valid seed), never panics, and still reads the good seeds beside it.

use bytes::Bytes;
use proptest::prelude::*;
use shoal_seed_store::seed::SEED_FORMAT;
use shoal_seed_store::{Seed, SeedRole, SeedStore, SeedStoreConfig};

fn good_seed() -> Seed {
    Seed {
        format: SEED_FORMAT,
        cluster: "fuzz".into(),
        role: SeedRole::Coordinator,
        id: 1,
        client_url: "http://127.0.0.1:1".into(),
        internal_url: "http://127.0.0.1:2".into(),
        started_at_ms: 0,
        heartbeat: 7,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_seed_file_content_is_read_or_skipped(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        json_like in "\\{[\"a-z0-9:,\\[\\] {}]{0,200}\\}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let seeds = shoal_storage::local_location(dir.path()).expect("location");
        let store = SeedStore::at(SeedStoreConfig::new("fuzz", dir.path()), &seeds).expect("store");
        let (seeds, skipped) = runtime.block_on(async {
            store.publish(&good_seed()).await.expect("publish");
            let cluster = store.cluster_dir();
            cluster.put("coordinator-2.json", Bytes::from(bytes)).await.expect("put");
            cluster.put("coordinator-3.json", Bytes::from(json_like.into_bytes())).await.expect("put");
            store.read_all().await
        });
        prop_assert!(seeds.iter().any(|s| s.id == 1), "the good seed is read");
        prop_assert_eq!(seeds.len() + skipped.len(), 3);
        prop_assert!(skipped.iter().all(|s| !s.reason.is_empty()));
        prop_assert!(seeds.iter().all(|s| s.role == SeedRole::Coordinator));
    }
}
