//! Why a statement could not be routed.
//!
//! Contract: every refusal of the router is one of these three; the messages are written for
//! the client (they name what is unsupported across shards and what to do instead). The MySQL
//! error codes they map to are chosen here, with the codes of `crate::error`.

use crate::error::{codes, ClientError, ErrorKind};

/// A statement the router cannot (or will not) route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Valid SQL that would need cross-shard work the proxy does not do. Answer with
    /// ER_NOT_SUPPORTED_YET (1235).
    #[error("{0}")]
    NotSupported(String),
    /// An INSERT into a sharded table without the shard key, or with a NULL key.
    #[error("column '{column}' of {table} is the shard key: INSERT must give it a non-NULL value")]
    MissingShardKey { table: String, column: String },
    /// The parser could not read the statement (the caller decides a fallback).
    #[error("could not parse the statement: {0}")]
    Parse(String),
}

impl RouteError {
    pub(crate) fn unsupported(msg: impl Into<String>) -> Self {
        RouteError::NotSupported(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        let e = RouteError::MissingShardKey { table: "shop.orders".into(), column: "customer_id".into() };
        assert!(e.to_string().contains("customer_id"));
        assert!(e.to_string().contains("shop.orders"));
        assert!(matches!(RouteError::unsupported("x"), RouteError::NotSupported(_)));
        assert_eq!(RouteError::Parse("y".into()).to_string(), "could not parse the statement: y");
    }
}

impl From<RouteError> for ClientError {
    fn from(e: RouteError) -> Self {
        use RouteError as R;
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
