//! openraft's own storage test suite run against the sled log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use shoal_state_store::log_store::LogStore;
use shoal_state_store::state_machine::{SmShared, StateMachineStore};
use shoal_state_store::types::{StorageError, TypeConfig};
use tempfile::TempDir;

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().expect("temporary directory");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("sled database");
        let log = LogStore::open(&db).expect("log store");
        let sm = SmShared::open(&db, 1_000).expect("state machine");
        Ok((dir, log, StateMachineStore::new(sm)))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sled() {
    if let Err(e) = Suite::test_all(SledStoreBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
