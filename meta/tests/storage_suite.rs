//! openraft's storage conformance suite run against the redb-backed meta store.
//!
//! Contract: every test of `openraft::testing::Suite` (0.9.25) passes with a fresh temporary
//! data directory per test; the directory is removed when the test's guard drops.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};
use slotgate_meta::typ::{StorageError, TypeConfig};
use slotgate_meta::{LogStore, MetaStore, StateMachineStore, StoreError};
use tempfile::TempDir;

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Io {
                op: "create temp dir",
                path: std::env::temp_dir(),
                source: e,
            })
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))?;
        let (log, sm) = MetaStore::open(dir.path())
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    // `Suite` runs each case on its own tokio runtime, so this is a plain (non-async) test.
    if let Err(e) = Suite::test_all(RedbStoreBuilder) {
        panic!("storage conformance suite failed: {e}");
    }
}
