//! Metrics of cutovers (switchover, failover, slot move) and leases (names defined here, with the rest
//! of the node's metric names in `metrics/mod.rs`).
//!
//! Contract: handles are registered once, when the node's [`super::Metrics`] is built.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusRecorder;

pub const CUTOVER_FREEZE_SECONDS: &str = "slotgate_cutover_freeze_seconds";
pub const BUFFERED_STATEMENTS: &str = "slotgate_buffered_statements";
pub const CUTOVER_TOTAL: &str = "slotgate_cutover_total";
pub const FAILOVER_TOTAL: &str = "slotgate_failover_total";
pub const LEASE_EXPIRED_TOTAL: &str = "slotgate_lease_expired_total";
pub const ACKED_VERSION: &str = "slotgate_cutover_acked_version";
pub const PRIMARY_CHECKS_TOTAL: &str = "slotgate_primary_checks_total";
pub const WEBHOOK_FAILURES_TOTAL: &str = "slotgate_webhook_failures_total";
pub const FAILOVER_HOLDS_TOTAL: &str = "slotgate_failover_holds_total";
/// Results of `slotgate_primary_checks_total` (see `admin::failover::Health`).
pub const CHECK_RESULTS: [&str; 3] = ["up", "refusing", "down"];

/// Kinds of `slotgate_cutover_total`.
pub const KINDS: [&str; 3] = ["switchover", "failover", "slot_move"];
/// Results of `slotgate_cutover_total`.
pub const RESULTS: [&str; 3] = ["committed", "rolled_back", "failed"];

pub struct CutoverMetrics {
    /// How long a shard stayed frozen on this node (prepare applied → unfrozen version applied).
    pub freeze_seconds: Histogram,
    pub buffered: Gauge,
    totals: Vec<Counter>,
    pub failovers: Counter,
    pub lease_expired: Counter,
    /// Latest prepare version this node acknowledged.
    pub acked_version: Gauge,
    /// Health checks of primaries this node ran as meta leader, by [`CHECK_RESULTS`].
    pub checks: [Counter; 3],
    /// Topology versions a webhook URL never accepted (all retries failed).
    pub webhook_failures: Counter,
    /// Statements held because their shard's primary did not answer (waiting for its failover).
    pub failover_holds: Counter,
}

impl CutoverMetrics {
    pub(super) fn register(recorder: &PrometheusRecorder) -> CutoverMetrics {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_histogram!(CUTOVER_FREEZE_SECONDS, "How long a shard or a slot move stayed frozen for a cutover on this node, seconds.");
            metrics::describe_gauge!(BUFFERED_STATEMENTS, "Statements waiting for a frozen shard or moving slots now (bounded by node.buffer_max_statements).");
            metrics::describe_counter!(CUTOVER_TOTAL, "Cutovers this node led, by kind and result.");
            metrics::describe_counter!(FAILOVER_TOTAL, "Failovers this node led (a primary declared dead).");
            metrics::describe_counter!(LEASE_EXPIRED_TOTAL, "Times this node's lease expired and it stopped serving.");
            metrics::describe_gauge!(ACKED_VERSION, "Latest cutover prepare version this node acknowledged.");
            metrics::describe_counter!(FAILOVER_HOLDS_TOTAL, "Statements this node held because their shard's primary did not answer, until a failover replaced it, it answered again, or node.buffer_window_ms passed.");
            metrics::describe_counter!(WEBHOOK_FAILURES_TOTAL, "Topology versions this node, as meta leader, could not deliver to a webhook URL after every retry.");
            metrics::describe_counter!(PRIMARY_CHECKS_TOTAL, "Health checks of shard primaries run by this node as meta leader: up, refusing (answers but refuses the backend account; never failed over) or down.");
            CutoverMetrics {
                freeze_seconds: metrics::histogram!(CUTOVER_FREEZE_SECONDS),
                buffered: metrics::gauge!(BUFFERED_STATEMENTS),
                totals: KINDS
                    .iter()
                    .flat_map(|k| RESULTS.iter().map(move |r| metrics::counter!(CUTOVER_TOTAL, "kind" => *k, "result" => *r)))
                    .collect(),
                failovers: metrics::counter!(FAILOVER_TOTAL),
                lease_expired: metrics::counter!(LEASE_EXPIRED_TOTAL),
                acked_version: metrics::gauge!(ACKED_VERSION),
                checks: CHECK_RESULTS.map(|r| metrics::counter!(PRIMARY_CHECKS_TOTAL, "result" => r)),
                webhook_failures: metrics::counter!(WEBHOOK_FAILURES_TOTAL),
                failover_holds: metrics::counter!(FAILOVER_HOLDS_TOTAL),
            }
        })
    }

    /// Counts one cutover (`kind` from [`KINDS`], `result` from [`RESULTS`]).
    pub fn cutover(&self, kind: &str, result: &str) {
        let k = KINDS.iter().position(|x| *x == kind);
        let r = RESULTS.iter().position(|x| *x == result);
        if let (Some(k), Some(r)) = (k, r) {
            self.totals[k * RESULTS.len() + r].increment(1);
        }
    }
}
