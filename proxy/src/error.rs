//! The one mapping from everything that can go wrong to what a client sees: a MySQL error
//! code, a SQLSTATE and a message that says what to do.
//!
//! Contract: every error that reaches a client is a [`ClientError`]; module errors convert
//! into it next to their own types (`impl From<…> for ClientError`), with the codes and
//! constructors defined here; this module imports nothing of the others. Messages never carry secrets. [`ErrorKind`] doubles as the
//! `kind` label of the errors metric.

/// Error codes slotgate answers with (MariaDB/MySQL server and client error numbers).
pub mod codes {
    pub const ER_CON_COUNT_ERROR: u16 = 1040;
    pub const ER_QUERY_INTERRUPTED: u16 = 1317;
    pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
    pub const ER_NO_DB_ERROR: u16 = 1046;
    pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
    pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
    pub const ER_NET_READ_ERROR: u16 = 1158;
    pub const ER_NET_PACKETS_OUT_OF_ORDER: u16 = 1156;
    pub const ER_UNKNOWN_ERROR: u16 = 1105;
    pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
    pub const ER_STMT_HAS_NO_OPEN_CURSOR: u16 = 1421;
    pub const ER_NO_SUCH_THREAD: u16 = 1094;
    pub const ER_KILL_DENIED_ERROR: u16 = 1095;
    pub const ER_CONNECTION_KILLED: u16 = 1927;
    pub const ER_WRONG_ARGUMENTS: u16 = 1210;
    pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
    pub const ER_MAX_PREPARED_STMT_COUNT_REACHED: u16 = 1461;
    pub const ER_UNSUPPORTED_PS: u16 = 1295;
    pub const ER_LOAD_INFILE_CAPABILITY_DISABLED: u16 = 4166;
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

    /// A client packet whose sequence id is not the next one.
    pub fn packets_out_of_order() -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_NET_PACKETS_OUT_OF_ORDER, b"08S01", "Got packets out of order")
    }

    /// KILL of a connection id this node does not serve.
    pub fn no_such_thread(id: u64, elsewhere: Option<u64>) -> Self {
        let hint = match elsewhere {
            Some(node) => format!(" (it belongs to slotgate node {node}: send the KILL through that node)"),
            None => String::new(),
        };
        Self::new(ErrorKind::Protocol, codes::ER_NO_SUCH_THREAD, b"HY000", format!("Unknown thread id: {id}{hint}"))
    }

    /// KILL of another user's connection.
    pub fn kill_denied(id: u64) -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_KILL_DENIED_ERROR, b"HY000", format!("You are not owner of thread {id}"))
    }

    /// The session killed its own connection.
    pub fn query_interrupted() -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_QUERY_INTERRUPTED, b"70100", "Query execution was interrupted")
    }

    pub fn connection_killed() -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_CONNECTION_KILLED, b"70100", "Connection was killed")
    }

    /// COM_STMT_FETCH for a statement whose execute opened no cursor.
    pub fn no_open_cursor(id: u32) -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_STMT_HAS_NO_OPEN_CURSOR, b"HY000", format!("The statement ({id}) has no open cursor."))
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

    /// A statement that assigns user variables would run on several shards: which shard's
    /// value the variable ends up with would be arbitrary.
    pub fn vars_over_shards() -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_NOT_SUPPORTED_YET,
            b"42000",
            "This version of slotgate doesn't yet support assigning user variables in a statement that runs on several shards; assign them from a single-shard statement (e.g. with the shard key in WHERE)",
        )
    }

    /// EXECUTE / DEALLOCATE of a name the session never prepared.
    pub fn unknown_sql_prepared(name: &str, command: &str) -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_UNKNOWN_STMT_HANDLER, b"HY000", format!("Unknown prepared statement handler ({name}) given to {command}"))
    }

    /// EXECUTE with a number of USING arguments other than the statement's placeholders.
    pub fn wrong_execute_arguments() -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_WRONG_ARGUMENTS, b"HY000", "Incorrect arguments to EXECUTE")
    }

    /// A form of a statement slotgate cannot run faithfully.
    pub fn not_supported(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Unsupported, codes::ER_NOT_SUPPORTED_YET, b"42000", format!("This version of slotgate doesn't yet support {what}"))
    }

    /// Too many SQL-level prepared statements in one session.
    pub fn too_many_sql_prepared(limit: usize) -> Self {
        Self::new(
            ErrorKind::Overload,
            codes::ER_MAX_PREPARED_STMT_COUNT_REACHED,
            b"42000",
            format!("Can't create more than max_prepared_stmt_count statements (current value: {limit}); DEALLOCATE PREPARE the ones no longer used"),
        )
    }

    /// The topology names a shard this node has no connection settings for.
    pub fn no_pool(shard: &str) -> Self {
        Self::new(ErrorKind::BackendUnavailable, codes::CR_CONN_HOST_ERROR, b"HY000", format!("No pool for shard {shard}: the topology names a shard this node has no connection settings for"))
    }

    /// A transaction would reach a second shard with `transaction_mode = "single"`.
    pub fn single_shard_transaction(held: &str, wanted: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_NOT_SUPPORTED_YET,
            b"42000",
            format!(
                "This version of slotgate doesn't yet support a transaction on more than one shard with routing.transaction_mode = \"single\": the transaction uses shard {held} and this statement needs {wanted}; the transaction is still open — commit it first, or set transaction_mode = \"multi\""
            ),
        )
    }

    /// A pooled connection turned out dead before the statement reached it.
    /// The victim of a deadlock across shards (each shard saw only a lock wait).
    pub fn distributed_deadlock() -> Self {
        Self::new(
            ErrorKind::Backend,
            codes::ER_LOCK_DEADLOCK,
            b"40001",
            "Deadlock found when trying to get lock; try restarting transaction (a deadlock across shards: slotgate rolled this transaction back on every shard)",
        )
    }

    pub fn lost_before_sending(shard: &str) -> Self {
        Self::new(ErrorKind::BackendLost, codes::CR_SERVER_LOST, b"HY000", format!("Lost connection to shard {shard} before the statement was sent; retry it"))
    }

    /// Several statements in one COM_QUERY without CLIENT_MULTI_STATEMENTS.
    pub fn multi_statements_off() -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_PARSE_ERROR,
            b"42000",
            "You have an error in your SQL syntax: several statements in one query, but multi-statements are off for this connection; send them one by one or enable CLIENT_MULTI_STATEMENTS",
        )
    }

    /// PREPARE / EXECUTE / DEALLOCATE sent as a server-side prepared statement (or prepared).
    pub fn unsupported_ps() -> Self {
        Self::new(ErrorKind::Unsupported, codes::ER_UNSUPPORTED_PS, b"HY000", "This command is not supported in the prepared statement protocol yet")
    }

    /// MariaDB's syntax error, near `what`.
    pub fn syntax_near(what: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_PARSE_ERROR,
            b"42000",
            format!("You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near '{what}' at line 1"),
        )
    }

    /// Routing was retried while new topology versions kept arriving.
    pub fn topology_kept_changing() -> Self {
        Self::new(ErrorKind::Timeout, codes::ER_LOCK_WAIT_TIMEOUT, b"HY000", "Lock wait timeout exceeded: the topology kept changing while this statement was being routed; retry it")
    }

    /// A client packet above the connection's limit: the node's max_allowed_packet, or the
    /// smallest of the shards' when that is lower.
    pub fn packet_too_large(limit: usize, from_backends: bool) -> Self {
        let fix = match from_backends {
            true => "the smallest max_allowed_packet of the shards; send smaller statements or raise max_allowed_packet on every shard",
            false => "send smaller statements or raise node.max_allowed_packet",
        };
        Self::new(
            ErrorKind::Protocol,
            codes::ER_NET_PACKET_TOO_LARGE,
            b"08S01",
            format!("Got a packet bigger than 'max_allowed_packet' bytes ({limit}, {fix})"),
        )
    }

    /// COM_STMT_SEND_LONG_DATA beyond max_allowed_packet.
    pub fn long_data_too_large() -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_NET_PACKET_TOO_LARGE, b"08S01", "Parameter data sent with COM_STMT_SEND_LONG_DATA is larger than max_allowed_packet")
    }

    /// COM_SET_OPTION with an option other than multi-statements on/off.
    pub fn unknown_set_option(option: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Protocol, codes::ER_UNKNOWN_COM_ERROR, b"08S01", format!("Unknown COM_SET_OPTION value {option}"))
    }

    /// LOAD DATA LOCAL INFILE from a client that did not negotiate CLIENT_LOCAL_FILES.
    pub fn local_infile_disabled() -> Self {
        Self::new(
            ErrorKind::Unsupported,
            codes::ER_LOAD_INFILE_CAPABILITY_DISABLED,
            b"HY000",
            "The used command is not allowed because the MariaDB server or client has disabled the local infile capability",
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
