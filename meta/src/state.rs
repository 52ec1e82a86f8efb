//! The replicated meta state: the versioned topology, its history, and remembered requests.
//!
//! Contract: applying a [`MetaRequest`] to a [`MetaState`] is deterministic (it depends only on
//! the state and the request: the time is stamped into the request by the node that received
//! it) and idempotent per `request_id`:
//! - the first time a `request_id` is applied, its [`TopologyCommand`] is validated against the
//!   current topology (and `if_version`, when given); a valid command installs the next
//!   topology (version + 1) and appends a [`HistoryEntry`]; a refused one changes nothing;
//! - any later application of the same `request_id` returns the remembered response, marked
//!   `retried`, and changes nothing — so a client may resend a command after a leader change.
//!
//! Memory is bounded: the last [`HISTORY_KEEP`] history entries and [`REQUESTS_KEEP`] request
//! ids are kept.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
pub use slotgate_shared::api::HistoryEntry;
use slotgate_shared::{Topology, TopologyCommand};

/// History entries kept.
pub const HISTORY_KEEP: usize = 1000;
/// Request ids remembered for retries.
pub const REQUESTS_KEEP: usize = 10_000;

/// A client request replicated through the meta group's Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRequest {
    /// Client-chosen id; a request with an already applied id is a retry and is not re-applied.
    pub request_id: String,
    /// Who asked (operator name or node), recorded in the history.
    #[serde(default)]
    pub actor: String,
    /// Unix time in milliseconds, stamped by the node that accepted the request.
    #[serde(default)]
    pub at_ms: u64,
    /// Apply only if the current topology has this version (compare-and-set).
    #[serde(default)]
    pub if_version: Option<u64>,
    pub command: TopologyCommand,
}

/// What applying one log entry produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaResponse {
    /// The topology version after the entry (0 before `init`).
    pub version: u64,
    /// Why the command was refused; `None` when it was applied (or the entry carried none).
    pub refused: Option<String>,
    /// The request id had been applied before; this is the remembered response.
    #[serde(default)]
    pub retried: bool,
}

/// The replicated state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaState {
    /// The current topology; `None` until `init` is applied.
    pub topology: Option<Topology>,
    /// Applied commands, oldest first (bounded).
    pub history: VecDeque<HistoryEntry>,
    /// Response of every remembered request, by request id.
    pub requests: BTreeMap<String, MetaResponse>,
    /// Request ids in the order they were first applied (for trimming `requests`).
    pub request_order: VecDeque<String>,
}

impl MetaState {
    /// The current topology version (0 before `init`).
    pub fn version(&self) -> u64 {
        self.topology.as_ref().map_or(0, |t| t.version)
    }

    /// Applies `req`, idempotently per `req.request_id`; see the module docs.
    pub fn apply(&mut self, req: &MetaRequest) -> MetaResponse {
        if let Some(earlier) = self.requests.get(&req.request_id) {
            return MetaResponse { retried: true, ..earlier.clone() };
        }
        let outcome = match req.if_version {
            Some(v) if v != self.version() => Err(format!(
                "the topology changed meanwhile (version {} now, {v} expected); look at it again and retry",
                self.version()
            )),
            _ => req.command.apply(self.topology.as_ref()).map_err(|e| e.to_string()),
        };
        let resp = match outcome {
            Ok(next) => {
                let version = next.version;
                self.topology = Some(next);
                self.history.push_back(HistoryEntry {
                    version,
                    request_id: req.request_id.clone(),
                    actor: req.actor.clone(),
                    at_ms: req.at_ms,
                    command: req.command.clone(),
                });
                while self.history.len() > HISTORY_KEEP {
                    self.history.pop_front();
                }
                MetaResponse { version, refused: None, retried: false }
            }
            Err(reason) => MetaResponse { version: self.version(), refused: Some(reason), retried: false },
        };
        self.requests.insert(req.request_id.clone(), resp.clone());
        self.request_order.push_back(req.request_id.clone());
        while self.request_order.len() > REQUESTS_KEEP {
            if let Some(old) = self.request_order.pop_front() {
                self.requests.remove(&old);
            }
        }
        resp
    }

    /// The response for an entry that carries no request (blank or membership entry).
    pub fn no_op_response(&self) -> MetaResponse {
        MetaResponse { version: self.version(), refused: None, retried: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotgate_shared::{Shard, ShardState, SlotRange};

    fn req(id: &str, command: TopologyCommand) -> MetaRequest {
        MetaRequest { request_id: id.into(), actor: "test".into(), at_ms: 1, if_version: None, command }
    }

    fn init() -> TopologyCommand {
        let shard = |id: &str, p: u16| Shard { id: id.into(), state: ShardState::Active, primary: format!("h:{p}"), replicas: vec![] };
        TopologyCommand::Init { slot_count: 4, shards: vec![shard("a", 1), shard("b", 2)], home: "a".into(), rules: vec![] }
    }

    #[test]
    fn retry_is_not_reapplied_and_refusals_change_nothing() {
        let mut s = MetaState::default();
        assert_eq!(s.apply(&req("i", init())).version, 1);
        let assign = TopologyCommand::FreezeSlots { slots: vec![SlotRange { first: 0, last: 0 }], to: "b".into() };
        let r = s.apply(&req("x", assign.clone()));
        assert_eq!((r.version, r.refused.as_deref(), r.retried), (2, None, false));
        let again = s.apply(&req("x", assign));
        assert_eq!((again.version, again.retried), (2, true));
        assert_eq!(s.version(), 2);
        assert_eq!(s.history.len(), 2);

        let bad = s.apply(&req("y", TopologyCommand::RemoveShard { shard: "nope".into() }));
        assert!(bad.refused.as_deref().is_some_and(|m| m.contains("unknown shard")));
        assert_eq!(s.version(), 2);
        assert_eq!(s.history.len(), 2);

        let mut cas = req("z", TopologyCommand::SetShardState { shard: "b".into(), state: ShardState::Draining });
        cas.if_version = Some(1);
        assert!(s.apply(&cas).refused.is_some());
        assert_eq!(s.no_op_response().version, 2);
    }
}
