//! Placeholder data model of the replicated meta state.
//!
//! Contract: a [`MetaRequest`] carries a client-chosen `request_id` and an opaque JSON `command`.
//! Applying it to a [`MetaState`] is deterministic and idempotent per `request_id`:
//! - the first time a `request_id` is applied, `data` becomes the command document, `version`
//!   increases by one and the response carries the new version; the response is remembered;
//! - any later application of the same `request_id` returns the remembered response and changes
//!   nothing (safe client retries).
//!
//! This is a stand-in for the topology commands, which will move to `slotgate-shared` in a later
//! step. Remembered responses are never trimmed yet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A client request replicated through the meta group's Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRequest {
    /// Client-chosen id; a request with an already applied id is a retry and is not re-applied.
    pub request_id: String,
    /// The opaque command document; applying the request stores it as the state's `data`.
    pub command: serde_json::Value,
}

/// What applying one log entry produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaResponse {
    /// The state version right after the request was (first) applied. For blank and
    /// membership entries it is the current version, unchanged.
    pub version: u64,
}

/// The replicated state (placeholder).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaState {
    /// Number of distinct requests applied so far.
    pub version: u64,
    /// Response of every applied request, by request id.
    pub applied_requests: BTreeMap<String, MetaResponse>,
    /// The document set by the last applied command (`null` before any).
    pub data: serde_json::Value,
}

impl MetaState {
    /// Applies `req`, idempotently per `req.request_id`; see the module docs.
    pub fn apply(&mut self, req: &MetaRequest) -> MetaResponse {
        if let Some(earlier) = self.applied_requests.get(&req.request_id) {
            return *earlier;
        }
        self.version += 1;
        self.data = req.command.clone();
        let resp = MetaResponse {
            version: self.version,
        };
        self.applied_requests.insert(req.request_id.clone(), resp);
        resp
    }

    /// The response for an entry that carries no request (blank or membership entry).
    pub fn no_op_response(&self) -> MetaResponse {
        MetaResponse {
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, n: i64) -> MetaRequest {
        MetaRequest {
            request_id: id.to_string(),
            command: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn retry_is_not_reapplied() {
        let mut s = MetaState::default();
        assert_eq!(s.apply(&req("a", 1)).version, 1);
        assert_eq!(s.apply(&req("b", 2)).version, 2);
        // A retry of "a" (even with another body) returns the first response, changes nothing.
        assert_eq!(s.apply(&req("a", 3)).version, 1);
        assert_eq!(s.version, 2);
        assert_eq!(s.data, serde_json::json!({ "n": 2 }));
        assert_eq!(s.no_op_response().version, 2);
    }
}
