//! Errors of the meta node's operations, each one sentence that says what to do.
//!
//! Contract: [`MetaError::status`] is the HTTP status the admin API answers with; the text is
//! what operators (and `slotctl`) see. [`WireError`] is what one member answers another.

use serde::{Deserialize, Serialize};

use crate::typ::NodeId;

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("the meta group has no leader yet (election in progress or no quorum); retry in a few seconds")]
    NoLeader,
    #[error("the leader (node {0}) cannot be reached: {1}; retry, a new leader is elected if it is down")]
    LeaderUnreachable(NodeId, String),
    #[error("the command was not committed within {0} s (this node may be cut off from the majority); retry with the same request id: it applies at most once")]
    NotCommitted(u64),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the cluster has no topology yet; run `slotctl init`")]
    NoTopology,
    #[error("the meta group stopped on this node: {0}")]
    Fatal(String),
    #[error("{0}")]
    Raft(String),
}

impl MetaError {
    /// HTTP status of this error in the admin API.
    pub fn status(&self) -> u16 {
        match self {
            MetaError::NoLeader | MetaError::LeaderUnreachable(..) | MetaError::NotCommitted(_) | MetaError::Fatal(_) => 503,
            MetaError::Refused(_) => 409,
            MetaError::BadRequest(_) => 400,
            MetaError::NoTopology => 404,
            MetaError::Raft(_) => 500,
        }
    }

    /// Errors after which the same request may be sent again (to a new leader).
    pub fn retryable(&self) -> bool {
        matches!(self, MetaError::NoLeader | MetaError::LeaderUnreachable(..))
    }
}

/// One member's answer to a request forwarded by another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    /// The receiver is not (or no longer) the leader.
    NotLeader,
    /// The request was refused; the text says why.
    Refused(String),
    BadRequest(String),
    Other(String),
}

impl From<MetaError> for WireError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoLeader | MetaError::LeaderUnreachable(..) => WireError::NotLeader,
            MetaError::Refused(m) => WireError::Refused(m),
            MetaError::BadRequest(m) => WireError::BadRequest(m),
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for MetaError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotLeader => MetaError::NoLeader,
            WireError::Refused(m) => MetaError::Refused(m),
            WireError::BadRequest(m) => MetaError::BadRequest(m),
            WireError::Other(m) => MetaError::Raft(m),
        }
    }
}
