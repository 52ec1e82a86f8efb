//! Metrics of the embedded meta group and of topology swaps (names defined here, with the
//! rest of the node's metric names in `metrics/mod.rs`).
//!
//! Contract: handles are registered once, when the node's [`super::Metrics`] is built;
//! topology command counters exist for every command kind and result up front.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusRecorder;
use slotgate_shared::TopologyCommand;

pub const TOPOLOGY_VERSION: &str = "slotgate_topology_version";
pub const TOPOLOGY_SWAP_SECONDS: &str = "slotgate_topology_swap_seconds";
pub const TOPOLOGY_COMMANDS_TOTAL: &str = "slotgate_topology_commands_total";
pub const RAFT_IS_LEADER: &str = "slotgate_raft_is_leader";
pub const RAFT_TERM: &str = "slotgate_raft_term";
pub const RAFT_COMMIT_INDEX: &str = "slotgate_raft_commit_index";
pub const RAFT_APPLIED_INDEX: &str = "slotgate_raft_applied_index";
pub const RAFT_LAST_CONTACT_SECONDS: &str = "slotgate_raft_last_contact_seconds";

/// Results of `slotgate_topology_commands_total`.
pub const COMMAND_RESULTS: [&str; 4] = ["applied", "retried", "refused", "error"];

pub struct MetaMetrics {
    pub topology_version: Gauge,
    /// Time from a command's acceptance by a node to this node's swap of the new version.
    pub swap_seconds: Histogram,
    commands: Vec<Counter>,
    pub is_leader: Gauge,
    pub term: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub last_contact_seconds: Gauge,
}

impl MetaMetrics {
    pub(super) fn register(recorder: &PrometheusRecorder) -> MetaMetrics {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_gauge!(TOPOLOGY_VERSION, "Topology version this node routes with.");
            metrics::describe_histogram!(TOPOLOGY_SWAP_SECONDS, "Time from a topology command's acceptance to this node's swap, seconds.");
            metrics::describe_counter!(TOPOLOGY_COMMANDS_TOTAL, "Topology commands submitted through this node, by kind and result.");
            metrics::describe_gauge!(RAFT_IS_LEADER, "1 if this node leads the meta group.");
            metrics::describe_gauge!(RAFT_TERM, "Current Raft term of the meta group on this node.");
            metrics::describe_gauge!(RAFT_COMMIT_INDEX, "Highest meta log index known committed on this node.");
            metrics::describe_gauge!(RAFT_APPLIED_INDEX, "Highest meta log index applied on this node.");
            metrics::describe_gauge!(RAFT_LAST_CONTACT_SECONDS, "Seconds since this node last heard from the meta leader (on the leader: since a quorum acknowledged it).");
            MetaMetrics {
                topology_version: metrics::gauge!(TOPOLOGY_VERSION),
                swap_seconds: metrics::histogram!(TOPOLOGY_SWAP_SECONDS),
                commands: TopologyCommand::KINDS
                    .iter()
                    .flat_map(|k| COMMAND_RESULTS.iter().map(move |r| metrics::counter!(TOPOLOGY_COMMANDS_TOTAL, "kind" => *k, "result" => *r)))
                    .collect(),
                is_leader: metrics::gauge!(RAFT_IS_LEADER),
                term: metrics::gauge!(RAFT_TERM),
                commit_index: metrics::gauge!(RAFT_COMMIT_INDEX),
                applied_index: metrics::gauge!(RAFT_APPLIED_INDEX),
                last_contact_seconds: metrics::gauge!(RAFT_LAST_CONTACT_SECONDS),
            }
        })
    }

    /// Counts one topology command (`kind` from `TopologyCommand::KINDS`, `result` from
    /// [`COMMAND_RESULTS`]).
    pub fn command(&self, kind: &str, result: &str) {
        let k = TopologyCommand::KINDS.iter().position(|x| *x == kind);
        let r = COMMAND_RESULTS.iter().position(|x| *x == result);
        if let (Some(k), Some(r)) = (k, r) {
            self.commands[k * COMMAND_RESULTS.len() + r].increment(1);
        }
    }
}
