//! The one mapping from everything that can go wrong to what a client sees: a MySQL error
//! code, a SQLSTATE and a message that says what to do.
//!
//! Contract: every error that reaches a client is a [`ClientError`]; module errors convert
//! into it here and nowhere else. Messages never carry secrets. [`ErrorKind`] doubles as the
//! `kind` label of the errors metric.

/// Error codes slotgate answers with (MariaDB/MySQL server and client error numbers).
pub mod codes {
    pub const ER_CON_COUNT_ERROR: u16 = 1040;
    pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
    pub const ER_NO_DB_ERROR: u16 = 1046;
    pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
    pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
    pub const ER_NET_READ_ERROR: u16 = 1158;
    pub const ER_UNKNOWN_ERROR: u16 = 1105;
    pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
    pub const ER_WRONG_ARGUMENTS: u16 = 1210;
    pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
    pub const ER_PARSE_ERROR: u16 = 1064;
    pub const ER_BAD_NULL_ERROR: u16 = 1048;
    pub const ER_ERROR_DURING_COMMIT: u16 = 1180;
    pub const ER_MALFORMED_PACKET: u16 = 1835;
    pub const ER_STATEMENT_TIMEOUT: u16 = 1969;
    pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const ER_SERVER_SHUTDOWN: u16 = 1053;
    pub const ER_LOCK_DEADLOCK: u16 = 1213;
    pub const CR_CONN_HOST_ERROR: u16 = 2003;
    pub const CR_SERVER_LOST: u16 = 2013;
}

/// What kind of failure, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The backend server answered with an error (forwarded unchanged).
    Backend,
    /// No connection to a backend could be had.
    BackendUnavailable,
    /// A backend connection broke mid-statement.
    BackendLost,
    /// A backend did not answer within the query timeout.
    Timeout,
    /// The client sent something that is not valid protocol.
    Protocol,
    /// Authentication failed.
    Auth,
    /// A command or feature slotgate does not support.
    Unsupported,
    /// Too many connections (client limit or backend pool exhausted).
    Overload,
    /// The node is shutting down.
    Shutdown,
}

impl ErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Backend => "backend",
            ErrorKind::BackendUnavailable => "backend_unavailable",
            ErrorKind::BackendLost => "backend_lost",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Auth => "auth",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Overload => "overload",
            ErrorKind::Shutdown => "shutdown",
        }
    }

    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Backend,
        ErrorKind::BackendUnavailable,
        ErrorKind::BackendLost,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Auth,
        ErrorKind::Unsupported,
        ErrorKind::Overload,
        ErrorKind::Shutdown,
    ];
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub code: u16,
    pub state: [u8; 5],
    pub message: String,
    pub kind: ErrorKind,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, String::from_utf8_lossy(&self.state), self.message)
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    pub fn new(kind: ErrorKind, code: u16, state: &[u8; 5], message: impl Into<String>) -> Self {
        ClientError { code, state: *state, message: message.into(), kind }
    }

    pub fn access_denied(user: &str, host: &str, using_password: bool) -> Self {
        let using = if using_password { "YES" } else { "NO" };
        Self::new(
            ErrorKind::Auth,
            codes::ER_ACCESS_DENIED_ERROR,
            b"28000",
            format!("Access denied for user '{user}'@'{host}' (using password: {using})"),
        )
    }

    pub fn unknown_command(command: u8) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_UNKNOWN_COM_ERROR,
            b"08S01",
            format!("Unknown command 0x{command:02x}: slotgate does not support this protocol command"),
        )
    }

    pub fn malformed(what: &str) -> Self {
        Self::new(
            ErrorKind::Protocol,
            codes::ER_MALFORMED_PACKET,
            b"HY000",
            format!("Malformed communication packet: {what}"),
        )
    }

    pub fn unknown_statement(id: u32, command: &str) -> Self {
        Self::new(
            ErrorKind::Protocol,
            codes::ER_UNKNOWN_STMT_HANDLER,
            b"HY000",
            format!("Unknown prepared statement handler ({id}) given to {command}"),
        )
    }

    pub fn too_many_connections(limit: usize) -> Self {
        Self::new(
            ErrorKind::Overload,
            codes::ER_CON_COUNT_ERROR,
            b"08004",
            format!("Too many connections: this slotgate node allows {limit}; retry later or raise node.max_connections"),
        )
    }

    /// The node has no topology to route with yet.
    pub fn no_topology() -> Self {
        ClientError::new(
            ErrorKind::BackendUnavailable,
            codes::ER_UNKNOWN_ERROR,
            b"HY000",
            "slotgate has no topology yet: the meta group is not initialised (run `slotctl init`) or this node has not caught up; retry in a moment",
        )
    }

    /// This node's lease with the meta group expired: it may hold a stale topology.
    pub fn lease_expired() -> Self {
        ClientError::new(
            ErrorKind::BackendUnavailable,
            codes::ER_UNKNOWN_ERROR,
            b"HY000",
            "slotgate node lost contact with the meta group and stopped routing (its topology may be stale); retry, or connect through another node",
        )
    }

    pub fn shutting_down() -> Self {
        Self::new(
            ErrorKind::Shutdown,
            codes::ER_SERVER_SHUTDOWN,
            b"08S01",
            "Server shutdown in progress: this slotgate node is stopping; reconnect to another node",
        )
    }
}

impl From<crate::backend::BackendError> for ClientError {
    fn from(e: crate::backend::BackendError) -> Self {
        use crate::backend::BackendError as B;
        match e {
            B::Server { code, state, message } => {
                let mut s = [b'H', b'Y', b'0', b'0', b'0'];
                if state.len() == 5 {
                    s.copy_from_slice(state.as_bytes());
                }
                ClientError { code, state: s, message, kind: ErrorKind::Backend }
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

impl From<crate::router::RouteError> for ClientError {
    fn from(e: crate::router::RouteError) -> Self {
        use crate::router::RouteError as R;
        match e {
            // The router's message names what is unsupported across shards and what to do.
            R::NotSupported(message) => ClientError::new(ErrorKind::Unsupported, codes::ER_NOT_SUPPORTED_YET, b"42000", message),
            R::MissingShardKey { table, column } => ClientError::new(
                ErrorKind::Unsupported,
                codes::ER_BAD_NULL_ERROR,
                b"23000",
                format!("Column '{column}' cannot be null or missing: it is the shard key of {table}; give every row a value for it"),
            ),
            R::Parse(msg) => ClientError::new(ErrorKind::Unsupported, codes::ER_PARSE_ERROR, b"42000", format!("slotgate could not parse the statement: {msg}")),
        }
    }
}
