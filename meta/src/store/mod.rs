//! Durable Raft storage of the meta group, rooted in one data directory.
//!
//! Contract: [`MetaStore::open`] opens (creating if needed) a data directory holding
//! - `log.redb`: the Raft log, vote, committed log id and last purged log id ([`LogStore`]);
//! - `state.redb`: the applied state machine: last applied log id, last membership and the
//!   [`MetaState`](crate::MetaState) itself, written atomically per applied batch
//!   ([`StateMachineStore`]);
//! - `snapshots/current.snap`: the current snapshot, replaced by write-to-temp + fsync + rename.
//!
//! Every write is a redb transaction committed with `Durability::Immediate` (fsync'd) before the
//! operation reports success, so reopening the same directory yields everything that was
//! acknowledged. The redb files are locked: a directory can be open only once at a time.
//! Storage I/O runs on tokio's blocking pool (`spawn_blocking`), so the trait methods must be
//! called inside a tokio runtime; [`MetaStore::open`] itself is synchronous (blocking).

mod error;
mod log_store;
mod state_machine;

use std::fs;
use std::path::Path;

pub use error::StoreError;
pub use log_store::LogStore;
pub use state_machine::{MetaSnapshotBuilder, StateMachineStore, StoredState};

/// File name of the log database inside the data directory.
pub const LOG_DB_FILE: &str = "log.redb";
/// File name of the state machine database inside the data directory.
pub const STATE_DB_FILE: &str = "state.redb";
/// Sub-directory of the data directory holding snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Entry point: opens the meta group's storage from a data directory.
pub struct MetaStore;

impl MetaStore {
    /// Opens (creating if absent) the log store and the state machine store in `dir`.
    ///
    /// If the current snapshot on disk is newer than the persisted applied state (a crash
    /// between writing an installed snapshot and committing the state), the state machine is
    /// restored from the snapshot. Blocking; call it from a blocking context in async code.
    pub fn open(dir: impl AsRef<Path>) -> Result<(LogStore, StateMachineStore), StoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create data directory", dir, e))?;
        let log = LogStore::open(&dir.join(LOG_DB_FILE))?;
        let sm = StateMachineStore::open(&dir.join(STATE_DB_FILE), &dir.join(SNAPSHOT_DIR))?;
        Ok((log, sm))
    }
}

/// Runs blocking storage work on tokio's blocking pool and waits for it.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// Begins a redb write transaction that is fsync'd on commit.
pub(crate) fn write_txn(db: &redb::Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    Ok(txn)
}
