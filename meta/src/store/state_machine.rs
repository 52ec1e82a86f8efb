//! The meta group's state machine and snapshots, persisted in redb and snapshot files.
//!
//! Contract:
//! - The applied state ([`StoredState`]: last applied log id, last membership, [`MetaState`])
//!   is held in memory and written as one JSON value to `state.redb` in one redb write
//!   transaction (`Durability::Immediate`) per applied batch, before `apply` returns. A batch
//!   is computed on a copy, so a failed write leaves the in-memory state unchanged.
//! - A snapshot's data is the JSON encoding of the [`StoredState`] at build time; its metadata
//!   is openraft's `SnapshotMeta`. The current snapshot lives in `snapshots/current.snap`
//!   (framing: magic line, little-endian u64 length of the metadata JSON, metadata JSON, data),
//!   replaced by writing a temp file, fsync'ing it, renaming it over `current.snap` and
//!   fsync'ing the directory. A built snapshot never replaces a current one with a later last
//!   log id.
//! - Installing a snapshot validates its data, makes it the current snapshot, then replaces and
//!   persists the applied state. If a crash falls between the two, opening the store restores
//!   the state from the (newer) snapshot.

use std::fs::{self, File};
use std::io::{Cursor, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{blocking, write_txn, StoreError};
use crate::state::{MetaResponse, MetaState};
use crate::typ::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state_machine");
const KEY_APPLIED: &str = "applied";

const CURRENT_SNAPSHOT: &str = "current.snap";
const TEMP_PREFIX: &str = "current.snap.tmp.";
const SNAPSHOT_MAGIC: &[u8] = b"SLOTGATE-META-SNAPSHOT v1\n";

/// Everything the state machine persists, written atomically as one value; also the snapshot
/// data format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredState {
    /// Log id of the last applied entry (`None` before any).
    pub last_applied: Option<LogId>,
    /// The last applied membership configuration and the log id that introduced it.
    pub last_membership: StoredMembership,
    /// The replicated state itself.
    pub state: MetaState,
}

/// Durable Raft state machine of the meta group (see the module docs).
pub struct StateMachineStore {
    db: Arc<Database>,
    snapshot_dir: PathBuf,
    /// Serialises replacements of the current snapshot file (builders run concurrently).
    snapshot_lock: Arc<Mutex<()>>,
    applied: StoredState,
    /// Every newly applied state is published here (after it is durable).
    published: tokio::sync::watch::Sender<Arc<MetaState>>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("snapshot_dir", &self.snapshot_dir)
            .field("last_applied", &self.applied.last_applied)
            .finish_non_exhaustive()
    }
}

impl StateMachineStore {
    /// Opens or creates the state database at `db_path` and the snapshot directory, loads the
    /// applied state and, if the current snapshot is newer, restores the state from it.
    pub(crate) fn open(db_path: &Path, snapshot_dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(snapshot_dir)
            .map_err(|e| StoreError::io("create snapshot directory", snapshot_dir, e))?;
        remove_stale_temps(snapshot_dir)?;

        let db = Database::create(db_path)?;
        let txn = write_txn(&db)?;
        {
            txn.open_table(STATE)?;
        }
        txn.commit()?;

        let mut applied = read_applied(&db)?.unwrap_or_default();
        if let Some((meta, data)) = read_snapshot_file(snapshot_dir)? {
            if meta.last_log_id > applied.last_applied {
                let restored = state_from_snapshot(&meta, &data)?;
                persist_applied(&db, encode_state(&restored)?)?;
                tracing::info!(snapshot = %meta, "meta state restored from a newer snapshot");
                applied = restored;
            }
        }

        let (published, _) = tokio::sync::watch::channel(Arc::new(applied.state.clone()));
        Ok(Self {
            db: Arc::new(db),
            snapshot_dir: snapshot_dir.to_path_buf(),
            snapshot_lock: Arc::new(Mutex::new(())),
            applied,
            published,
        })
    }

    /// The applied state as held in memory (equal to the persisted one).
    pub fn stored_state(&self) -> &StoredState {
        &self.applied
    }

    /// The replicated meta state.
    pub fn state(&self) -> &MetaState {
        &self.applied.state
    }

    /// A receiver of every applied state, starting with the current one. The state is
    /// published after it is durable, once per applied batch or installed snapshot.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<MetaState>> {
        self.published.subscribe()
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.applied.state.clone()));
    }
}

/// Builds snapshots from a point-in-time copy of the applied state.
pub struct MetaSnapshotBuilder {
    snapshot_dir: PathBuf,
    snapshot_lock: Arc<Mutex<()>>,
    state: StoredState,
}

// ---- synchronous helpers (run on the blocking pool, or at open) ----

fn encode_state(state: &StoredState) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(state).map_err(|e| StoreError::codec("state machine", e))
}

fn read_applied(db: &Database) -> Result<Option<StoredState>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(STATE)?;
    match table.get(KEY_APPLIED)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| StoreError::codec("state machine", e)),
        None => Ok(None),
    }
}

fn persist_applied(db: &Database, bytes: Vec<u8>) -> Result<(), StoreError> {
    let txn = write_txn(db)?;
    {
        let mut table = txn.open_table(STATE)?;
        table.insert(KEY_APPLIED, bytes.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// The state a snapshot stands for: its data's `MetaState`, with the log position and
/// membership taken from its metadata (authoritative).
fn state_from_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<StoredState, StoreError> {
    let payload: StoredState =
        serde_json::from_slice(data).map_err(|e| StoreError::codec("snapshot data", e))?;
    Ok(StoredState {
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
        state: payload.state,
    })
}

fn remove_stale_temps(dir: &Path) -> Result<(), StoreError> {
    let listing =
        fs::read_dir(dir).map_err(|e| StoreError::io("list snapshot directory", dir, e))?;
    for item in listing {
        let item = item.map_err(|e| StoreError::io("list snapshot directory", dir, e))?;
        if item.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = item.path();
            fs::remove_file(&path)
                .map_err(|e| StoreError::io("remove stale snapshot temp", path, e))?;
        }
    }
    Ok(())
}

fn read_snapshot_file(dir: &Path) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
    let path = dir.join(CURRENT_SNAPSHOT);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| StoreError::io("read snapshot", &path, e))?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open snapshot", &path, e)),
    }
    let rest = bytes
        .strip_prefix(SNAPSHOT_MAGIC)
        .ok_or_else(|| StoreError::CorruptSnapshot(format!("{}: bad magic", path.display())))?;
    let (len_bytes, rest) = rest.split_at_checked(8).ok_or_else(|| {
        StoreError::CorruptSnapshot(format!("{}: truncated header", path.display()))
    })?;
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let meta_len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| {
        StoreError::CorruptSnapshot(format!("{}: metadata length overflows", path.display()))
    })?;
    let (meta_bytes, data) = rest.split_at_checked(meta_len).ok_or_else(|| {
        StoreError::CorruptSnapshot(format!("{}: truncated metadata", path.display()))
    })?;
    let meta: SnapshotMeta = serde_json::from_slice(meta_bytes)
        .map_err(|e| StoreError::codec("snapshot metadata", e))?;
    Ok(Some((meta, data.to_vec())))
}

/// Makes (`meta`, `data`) the current snapshot: temp file, fsync, rename, fsync directory.
fn write_snapshot_file(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
    static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
    let meta_bytes =
        serde_json::to_vec(meta).map_err(|e| StoreError::codec("snapshot metadata", e))?;
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}.{}",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = |f: &mut File| -> std::io::Result<()> {
        f.write_all(SNAPSHOT_MAGIC)?;
        f.write_all(&(meta_bytes.len() as u64).to_le_bytes())?;
        f.write_all(&meta_bytes)?;
        f.write_all(data)?;
        f.sync_all()
    };
    let mut f = File::create(&tmp).map_err(|e| StoreError::io("create snapshot temp", &tmp, e))?;
    if let Err(e) = write(&mut f) {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io("write snapshot temp", &tmp, e));
    }
    drop(f);
    let dest = dir.join(CURRENT_SNAPSHOT);
    if let Err(e) = fs::rename(&tmp, &dest) {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io("rename snapshot into place", &dest, e));
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync snapshot directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    // The mutex guards no data, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn new_snapshot_id(last: Option<LogId>) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    match last {
        Some(l) => format!("{}-{}-{nanos}-{seq}", l.leader_id, l.index),
        None => format!("none-{nanos}-{seq}"),
    }
}

// ---- openraft traits ----

impl RaftSnapshotBuilder<TypeConfig> for MetaSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.state.last_applied,
            last_membership: self.state.last_membership.clone(),
            snapshot_id: new_snapshot_id(self.state.last_applied),
        };
        let to_raft = |e: StoreError| {
            e.into_raft(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let data = encode_state(&self.state).map_err(to_raft)?;

        let dir = self.snapshot_dir.clone();
        let lock_arc = self.snapshot_lock.clone();
        let (meta2, data2) = (meta.clone(), data.clone());
        blocking(move || {
            let _guard = lock(&lock_arc);
            // Never replace a current snapshot that covers more of the log.
            if let Some((current, _)) = read_snapshot_file(&dir)? {
                if current.last_log_id > meta2.last_log_id {
                    return Ok(());
                }
            }
            write_snapshot_file(&dir, &meta2, &data2)
        })
        .await
        .map_err(to_raft)?;

        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = MetaSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((
            self.applied.last_applied,
            self.applied.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut next = self.applied.clone();
        let mut replies = Vec::new();
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => next.state.no_op_response(),
                EntryPayload::Normal(req) => next.state.apply(&req),
                EntryPayload::Membership(m) => {
                    next.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    next.state.no_op_response()
                }
            };
            replies.push(reply);
        }
        if replies.is_empty() {
            return Ok(replies);
        }

        let to_raft = |e: StoreError| e.into_raft(ErrorSubject::StateMachine, ErrorVerb::Write);
        let bytes = encode_state(&next).map_err(to_raft)?;
        let db = self.db.clone();
        blocking(move || persist_applied(&db, bytes))
            .await
            .map_err(to_raft)?;
        let changed = next.state != self.applied.state;
        self.applied = next;
        if changed {
            self.publish();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetaSnapshotBuilder {
            snapshot_dir: self.snapshot_dir.clone(),
            snapshot_lock: self.snapshot_lock.clone(),
            state: self.applied.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let to_raft = |e: StoreError| {
            e.into_raft(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let data = snapshot.into_inner();
        let next = state_from_snapshot(meta, &data).map_err(to_raft)?;
        let bytes = encode_state(&next).map_err(to_raft)?;

        let dir = self.snapshot_dir.clone();
        let lock_arc = self.snapshot_lock.clone();
        let db = self.db.clone();
        let meta2 = meta.clone();
        blocking(move || {
            let _guard = lock(&lock_arc);
            write_snapshot_file(&dir, &meta2, &data)?;
            persist_applied(&db, bytes)
        })
        .await
        .map_err(to_raft)?;
        self.applied = next;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = self.snapshot_dir.clone();
        let found = blocking(move || read_snapshot_file(&dir))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(found.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
