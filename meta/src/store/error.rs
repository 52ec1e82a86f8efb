//! Errors of the durable meta store.
//!
//! Contract: every fallible operation inside `store/` returns [`StoreError`]; at the openraft
//! trait boundary a `StoreError` is converted into openraft's [`StorageError`] (which makes the
//! Raft node stop, as a storage failure means the local copy can no longer be trusted). Nothing in
//! this crate panics on an I/O, encoding or database failure.

use std::io;
use std::path::PathBuf;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

use crate::typ::{NodeId, StorageError};

/// Everything that can go wrong while opening, reading or writing the meta store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation on the data directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (e.g. "create directory").
        op: &'static str,
        /// The path the operation was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Opening or creating a redb database failed.
    #[error("redb open: {0}")]
    Database(#[from] redb::DatabaseError),

    /// Beginning a redb transaction failed (boxed: redb's error type is large).
    #[error("redb transaction: {0}")]
    Transaction(Box<redb::TransactionError>),

    /// Opening a redb table failed.
    #[error("redb table: {0}")]
    Table(#[from] redb::TableError),

    /// A redb read or write inside a transaction failed.
    #[error("redb storage: {0}")]
    Storage(#[from] redb::StorageError),

    /// Committing a redb write transaction failed; nothing of it is durable.
    #[error("redb commit: {0}")]
    Commit(#[from] redb::CommitError),

    /// A stored or received value could not be (de)serialised.
    #[error("codec ({what}): {source}")]
    Codec {
        /// Which value was being encoded or decoded.
        what: &'static str,
        /// The underlying serde_json error.
        #[source]
        source: serde_json::Error,
    },

    /// A snapshot file or received snapshot is malformed.
    #[error("corrupt snapshot: {0}")]
    CorruptSnapshot(String),

    /// A blocking storage task could not finish (it panicked or the runtime is shutting down).
    #[error("blocking storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        StoreError::Transaction(Box::new(e))
    }
}

impl StoreError {
    /// Builds an [`StoreError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`StoreError::Codec`] for the value named `what`.
    pub(crate) fn codec(what: &'static str, source: serde_json::Error) -> Self {
        StoreError::Codec { what, source }
    }

    /// Converts into openraft's storage error, tagged with what was being accessed and how.
    pub fn into_raft(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    /// A plain `io::Error` describing this error, as expected by openraft's flush callback.
    pub(crate) fn to_io_error(&self) -> io::Error {
        let kind = match self {
            StoreError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self.to_string())
    }
}
