//! The Raft log store on redb: log entries, vote, committed log id and purge point.
//!
//! Contract:
//! - table `entries`: log index -> JSON-encoded [`Entry`]; the indexes present are always one
//!   contiguous run (openraft only appends after the last entry, truncates a suffix, purges a
//!   prefix).
//! - table `meta`: `vote`, `committed`, `last_purged_log_id` -> JSON-encoded values.
//! - Every mutation is one redb write transaction committed with `Durability::Immediate`; the
//!   method returns only after the commit. [`RaftLogStorage::append`] calls the flush callback
//!   only after the commit succeeded (or with the error if it failed), so "flushed" means
//!   "durable on disk".
//! - `purge` records the new purge point and deletes the purged entries in one transaction.
//! - [`LogStore`] is a cheap clone over a shared database handle; a clone serves as the log
//!   reader of replication tasks (redb read transactions are snapshot-isolated).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{blocking, write_txn, StoreError};
use crate::typ::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged_log_id";

/// Durable Raft log store (see the module docs).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens or creates the log database at `path` and makes sure its tables exist.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = write_txn(&db)?;
        {
            txn.open_table(ENTRIES)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }
}

// ---- synchronous helpers (run on the blocking pool) ----

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::codec(what, e))
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::codec(what, e))
}

fn read_meta<T: DeserializeOwned>(
    db: &Database,
    key: &'static str,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(META)?;
    match table.get(key)? {
        Some(v) => Ok(Some(decode(key, v.value())?)),
        None => Ok(None),
    }
}

/// Writes `value` under `key`, or removes the key when `value` is `None`.
fn write_meta(db: &Database, key: &'static str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
    let txn = write_txn(db)?;
    {
        let mut table = txn.open_table(META)?;
        match value {
            Some(bytes) => {
                table.insert(key, bytes.as_slice())?;
            }
            None => {
                table.remove(key)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn read_entries(db: &Database, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(ENTRIES)?;
    let mut out = Vec::new();
    for row in table.range::<u64>(range)? {
        let (_index, bytes) = row?;
        out.push(decode("log entry", bytes.value())?);
    }
    Ok(out)
}

fn append_rows(db: &Database, rows: Vec<(u64, Vec<u8>)>) -> Result<(), StoreError> {
    let txn = write_txn(db)?;
    {
        let mut table = txn.open_table(ENTRIES)?;
        for (index, bytes) in &rows {
            table.insert(*index, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Deletes entries with index `>= from`.
fn truncate_from(db: &Database, from: u64) -> Result<(), StoreError> {
    let txn = write_txn(db)?;
    {
        let mut table = txn.open_table(ENTRIES)?;
        table.retain_in(from.., |_, _| false)?;
    }
    txn.commit()?;
    Ok(())
}

/// Records `upto` as the purge point and deletes entries with index `<= upto.index`.
fn purge_upto(db: &Database, upto: LogId) -> Result<(), StoreError> {
    let bytes = encode(KEY_LAST_PURGED, &upto)?;
    let txn = write_txn(db)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_LAST_PURGED, bytes.as_slice())?;
        let mut table = txn.open_table(ENTRIES)?;
        table.retain_in(..=upto.index, |_, _| false)?;
    }
    txn.commit()?;
    Ok(())
}

fn log_state(db: &Database) -> Result<LogState, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let last_purged_log_id: Option<LogId> = match meta.get(KEY_LAST_PURGED)? {
        Some(v) => Some(decode(KEY_LAST_PURGED, v.value())?),
        None => None,
    };
    let entries = txn.open_table(ENTRIES)?;
    let last_log_id = match entries.last()? {
        Some((_index, bytes)) => {
            let entry: Entry = decode("log entry", bytes.value())?;
            Some(entry.log_id)
        }
        None => last_purged_log_id,
    };
    Ok(LogState {
        last_purged_log_id,
        last_log_id,
    })
}

// ---- openraft traits ----

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let db = self.db.clone();
        blocking(move || read_entries(&db, bounds))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let db = self.db.clone();
        blocking(move || log_state(&db))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let to_raft = |e: StoreError| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write);
        let bytes = encode(KEY_VOTE, vote).map_err(to_raft)?;
        let db = self.db.clone();
        blocking(move || write_meta(&db, KEY_VOTE, Some(bytes)))
            .await
            .map_err(to_raft)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let db = self.db.clone();
        blocking(move || read_meta(&db, KEY_VOTE))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let to_raft = |e: StoreError| e.into_raft(ErrorSubject::Store, ErrorVerb::Write);
        let bytes = match committed {
            Some(log_id) => Some(encode(KEY_COMMITTED, &log_id).map_err(to_raft)?),
            None => None,
        };
        let db = self.db.clone();
        blocking(move || write_meta(&db, KEY_COMMITTED, bytes))
            .await
            .map_err(to_raft)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let db = self.db.clone();
        blocking(move || read_meta(&db, KEY_COMMITTED))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows: Result<Vec<(u64, Vec<u8>)>, StoreError> = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, encode("log entry", &entry)?)))
            .collect();
        let result = match rows {
            Ok(rows) => {
                let db = self.db.clone();
                blocking(move || append_rows(&db, rows)).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                // The redb transaction is committed (fsync'd): the entries are durable.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(e.to_io_error()));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        blocking(move || truncate_from(&db, log_id.index))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        blocking(move || purge_upto(&db, log_id))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}
