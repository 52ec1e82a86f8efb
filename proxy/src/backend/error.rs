//! What can go wrong talking to a backend node.
//!
//! Contract: a backend's own server error is kept whole (code, SQLSTATE, message) so that the
//! client sees it unchanged; everything else says which shard and node failed.

use mysql_async::Error as MyError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend answered with an error; forwarded unchanged.
    #[error("server error {code} ({state}): {message}")]
    Server { code: u16, state: String, message: String },
    /// No connection could be opened or taken from the pool.
    #[error("cannot connect to shard {shard} ({addr}): {reason}")]
    Unavailable { shard: String, addr: String, reason: String },
    /// Every pooled connection stayed busy for the whole wait.
    #[error("no free connection to shard {shard} ({addr}) within {waited_ms} ms")]
    PoolExhausted { shard: String, addr: String, waited_ms: u64 },
    /// The connection broke while a statement was running.
    #[error("lost connection to shard {shard} ({addr}): {reason}")]
    Lost { shard: String, addr: String, reason: String },
    /// The backend did not answer within the query timeout.
    #[error("shard {shard} ({addr}) did not answer within {timeout_ms} ms")]
    Timeout { shard: String, addr: String, timeout_ms: u64 },
}

impl BackendError {
    /// Classifies a mysql_async error from a connection to `shard` at `addr`.
    pub fn from_mysql(e: MyError, shard: &str, addr: &str) -> BackendError {
        match e {
            MyError::Server(s) => BackendError::Server { code: s.code, state: s.state, message: s.message },
            other => BackendError::Lost { shard: shard.into(), addr: addr.into(), reason: other.to_string() },
        }
    }

    /// True when the connection that produced this error must not be reused.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, BackendError::Server { .. })
    }
}

/// True for errors that show a pooled connection was already dead when the statement was
/// written (the server closed it while idle): a statement that met this was never run.
pub fn is_dead_before_send(e: &MyError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        MyError::Io(mysql_async::IoError::Io(io)) => {
            matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected)
        }
        MyError::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        _ => false,
    }
}
