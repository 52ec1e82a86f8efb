//! Why a statement could not be routed.
//!
//! Contract: every refusal of the router is one of these three; the messages are written for
//! the client (they name what is unsupported across shards and what to do instead). `code()`
//! and `sqlstate()` give the MySQL error the proxy should answer with.

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

    /// The MySQL error code to answer with: 1235 (ER_NOT_SUPPORTED_YET), 1364
    /// (ER_NO_DEFAULT_FOR_FIELD) for a missing key, 1064 (ER_PARSE_ERROR).
    pub fn code(&self) -> u16 {
        match self {
            RouteError::NotSupported(_) => 1235,
            RouteError::MissingShardKey { .. } => 1364,
            RouteError::Parse(_) => 1064,
        }
    }

    /// The SQLSTATE going with [`RouteError::code`].
    pub fn sqlstate(&self) -> &'static str {
        match self {
            RouteError::NotSupported(_) => "42000",
            RouteError::MissingShardKey { .. } => "HY000",
            RouteError::Parse(_) => "42000",
        }
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
        assert_eq!(e.code(), 1364);
        assert_eq!(RouteError::unsupported("x").code(), 1235);
        assert_eq!(RouteError::Parse("y".into()).to_string(), "could not parse the statement: y");
    }
}
