//! What can go wrong talking to a backend node.
//!
//! Contract: a backend's own server error is kept whole (code, SQLSTATE, message) so that the
//! client sees it unchanged; everything else says which shard and node failed.

use mysql_async::Error as MyError;
use crate::error::{codes, ClientError, ErrorKind};

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
    /// The shard (or the slots, `what` says) stayed frozen for a cutover longer than the
    /// buffer window.
    #[error("{what} stayed frozen for a cutover longer than {window_ms} ms")]
    Frozen { what: String, window_ms: u64 },
    /// The shard's primary did not answer and no failover replaced it within the window.
    #[error("shard {shard}'s primary {addr} did not answer and was not failed over within {window_ms} ms")]
    NoFailover { shard: String, addr: String, window_ms: u64 },
    /// The cutover buffer already holds as many statements as it may.
    #[error("the cutover buffer is full ({limit} statements)")]
    BufferFull { what: String, limit: usize },
    /// A cutover aborted the transaction's work on this shard (drain timeout, or slots it
    /// used moved away).
    #[error("a cutover aborted the transaction on shard {shard}")]
    CutoverAborted { shard: String },
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
        !matches!(self, BackendError::Server { .. } | BackendError::Frozen { .. } | BackendError::NoFailover { .. } | BackendError::BufferFull { .. } | BackendError::CutoverAborted { .. })
    }
}

/// What an error on the first exchange of a statement says about whether it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadConn {
    /// Not a dead connection.
    No,
    /// The write failed: the statement surely never reached the server.
    BeforeSend,
    /// The connection was closed before any answer (a server closes idle connections so):
    /// the statement almost surely did not run, but may have; safe to repeat only if it is
    /// idempotent.
    BeforeAnswer,
}

/// Classifies an error met on a pooled connection before any answer arrived.
pub fn dead_conn(e: &MyError) -> DeadConn {
    use std::io::ErrorKind::*;
    match e {
        MyError::Io(mysql_async::IoError::Io(io)) => match io.kind() {
            BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected => DeadConn::BeforeSend,
            UnexpectedEof => DeadConn::BeforeAnswer,
            _ => DeadConn::No,
        },
        MyError::Driver(mysql_async::DriverError::ConnectionClosed) => DeadConn::BeforeSend,
        _ => DeadConn::No,
    }
}

/// Awaits a backend operation for at most `limit`: a timeout becomes
/// `BackendError::Timeout`, a mysql_async error is classified for the shard `who = (shard,
/// addr)` together with what it says about a dead connection.
pub async fn bounded<T>(
    limit: Option<std::time::Duration>,
    who: (&str, &str),
    fut: impl std::future::Future<Output = Result<T, MyError>>,
) -> Result<T, (BackendError, DeadConn)> {
    let r = match limit {
        Some(d) => match tokio::time::timeout(d, fut).await {
            Ok(r) => r,
            Err(_) => {
                let e = BackendError::Timeout { shard: who.0.into(), addr: who.1.into(), timeout_ms: d.as_millis() as u64 };
                return Err((e, DeadConn::No));
            }
        },
        None => fut.await,
    };
    r.map_err(|e| {
        let dead = dead_conn(&e);
        (BackendError::from_mysql(e, who.0, who.1), dead)
    })
}

/// What a client sees of a backend error: the server's own error as it is, the rest as the
/// MySQL client error it resembles.
impl From<BackendError> for ClientError {
    fn from(e: BackendError) -> Self {
        use BackendError as B;
        match e {
            B::Server { code, state, message } => {
                let mut s = [b'H', b'Y', b'0', b'0', b'0'];
                if state.len() == 5 {
                    s.copy_from_slice(state.as_bytes());
                }
                ClientError::new(ErrorKind::Backend, code, &s, message)
            }
            B::Unavailable { shard, addr, reason } => ClientError::new(
                ErrorKind::BackendUnavailable,
                codes::CR_CONN_HOST_ERROR,
                b"HY000",
                format!("Can't connect to shard {shard} ({addr}): {reason}; retry later or check that the shard is up"),
            ),
            B::PoolExhausted { shard, addr, waited_ms } => ClientError::new(
                ErrorKind::Overload,
                codes::ER_CON_COUNT_ERROR,
                b"08004",
                format!("Too many connections: every connection to shard {shard} ({addr}) stayed busy for {waited_ms} ms; retry later or raise backend.pool_max"),
            ),
            B::Lost { shard, addr, reason } => ClientError::new(
                ErrorKind::BackendLost,
                codes::CR_SERVER_LOST,
                b"HY000",
                format!("Lost connection to shard {shard} ({addr}) during query: {reason}; the statement may or may not have been applied"),
            ),
            B::Timeout { shard, addr, timeout_ms } => ClientError::new(
                ErrorKind::Timeout,
                codes::ER_STATEMENT_TIMEOUT,
                b"70100",
                format!("Query execution was interrupted: shard {shard} ({addr}) did not answer within {timeout_ms} ms (backend.query_timeout_ms)"),
            ),
            B::Frozen { what, window_ms } => ClientError::new(
                ErrorKind::Timeout,
                codes::ER_LOCK_WAIT_TIMEOUT,
                b"HY000",
                format!("Lock wait timeout exceeded: {what} is being cut over (switchover, failover or slot move) and stayed frozen longer than {window_ms} ms (node.buffer_window_ms); retry the statement"),
            ),
            B::NoFailover { shard, addr, window_ms } => ClientError::new(
                ErrorKind::Timeout,
                codes::ER_LOCK_WAIT_TIMEOUT,
                b"HY000",
                format!("Lock wait timeout exceeded: shard {shard}'s primary ({addr}) does not answer and no failover replaced it within {window_ms} ms (node.buffer_window_ms); the statement was not sent, retry it"),
            ),
            B::BufferFull { what, limit } => ClientError::new(
                ErrorKind::Overload,
                codes::ER_LOCK_WAIT_TIMEOUT,
                b"HY000",
                format!("Lock wait timeout exceeded: {what} is being cut over and this node already holds {limit} statements for it (node.buffer_max_statements); retry the statement"),
            ),
            B::CutoverAborted { shard } => ClientError::new(
                ErrorKind::Timeout,
                codes::ER_LOCK_DEADLOCK,
                b"40001",
                format!("Deadlock found when trying to get lock; try restarting transaction: a topology cutover on shard {shard} (slot move, switchover or failover) rolled this transaction back; retry it"),
            ),
        }
    }
}
