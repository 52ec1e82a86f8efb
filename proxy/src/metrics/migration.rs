//! Metrics of online slot migrations run by this node as meta leader (names defined here,
//! with the rest of the node's metric names in `metrics/mod.rs`).
//!
//! Contract: handles are registered once, when the node's [`super::Metrics`] is built; the
//! phase gauge has one series per phase (how many migrations this node runs in it), never one
//! per migration.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusRecorder;
use slotgate_shared::MigrationPhase;

pub const MIGRATION_ROWS_COPIED_TOTAL: &str = "slotgate_migration_rows_copied_total";
pub const MIGRATION_ROWS_APPLIED_TOTAL: &str = "slotgate_migration_binlog_rows_applied_total";
pub const MIGRATION_ROWS_DELETED_TOTAL: &str = "slotgate_migration_rows_deleted_total";
pub const MIGRATION_LAG_SECONDS: &str = "slotgate_migration_lag_seconds";
pub const MIGRATION_PHASE: &str = "slotgate_migration_phase";
pub const MIGRATION_CUTOVER_PAUSE_SECONDS: &str = "slotgate_migration_cutover_pause_seconds";
pub const MIGRATIONS_TOTAL: &str = "slotgate_migrations_total";

pub struct MigrationMetrics {
    pub rows_copied: Counter,
    pub rows_applied: Counter,
    pub rows_deleted: Counter,
    /// How far the binlog applier is behind the source (seconds of binlog), latest value.
    pub lag_seconds: Gauge,
    phases: Vec<Gauge>,
    /// Slots frozen → slots committed to the target, per cutover.
    pub cutover_pause: Histogram,
    /// Finished migrations by final phase (done, failed, cancelled).
    finished: Vec<Counter>,
}

impl MigrationMetrics {
    pub(super) fn register(recorder: &PrometheusRecorder) -> MigrationMetrics {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_counter!(MIGRATION_ROWS_COPIED_TOTAL, "Rows copied from a source's snapshot to a target by migrations this node ran.");
            metrics::describe_counter!(MIGRATION_ROWS_APPLIED_TOTAL, "Row changes from a source's binlog applied to a target by migrations this node ran.");
            metrics::describe_counter!(MIGRATION_ROWS_DELETED_TOTAL, "Rows deleted by migration cleanups (source) and rollbacks (target).");
            metrics::describe_gauge!(MIGRATION_LAG_SECONDS, "How far the binlog applier of the running migration is behind its source, seconds.");
            metrics::describe_gauge!(MIGRATION_PHASE, "Migrations this node runs now, by phase.");
            metrics::describe_histogram!(MIGRATION_CUTOVER_PAUSE_SECONDS, "Write pause of a migration's cutover (slots frozen until committed to the target), seconds.");
            metrics::describe_counter!(MIGRATIONS_TOTAL, "Migrations this node finished, by result (done, failed, cancelled).");
            MigrationMetrics {
                rows_copied: metrics::counter!(MIGRATION_ROWS_COPIED_TOTAL),
                rows_applied: metrics::counter!(MIGRATION_ROWS_APPLIED_TOTAL),
                rows_deleted: metrics::counter!(MIGRATION_ROWS_DELETED_TOTAL),
                lag_seconds: metrics::gauge!(MIGRATION_LAG_SECONDS),
                phases: MigrationPhase::ALL.iter().map(|p| metrics::gauge!(MIGRATION_PHASE, "phase" => p.name())).collect(),
                cutover_pause: metrics::histogram!(MIGRATION_CUTOVER_PAUSE_SECONDS),
                finished: ["done", "failed", "cancelled"].iter().map(|r| metrics::counter!(MIGRATIONS_TOTAL, "result" => *r)).collect(),
            }
        })
    }

    /// A migration run here left phase `from` (if any) for phase `to` (if any).
    pub fn phase(&self, from: Option<MigrationPhase>, to: Option<MigrationPhase>) {
        let idx = |p: MigrationPhase| MigrationPhase::ALL.iter().position(|x| *x == p).unwrap_or(0);
        if let Some(f) = from {
            self.phases[idx(f)].decrement(1.0);
        }
        if let Some(t) = to {
            self.phases[idx(t)].increment(1.0);
            let r = match t {
                MigrationPhase::Done => Some(0),
                MigrationPhase::Failed => Some(1),
                MigrationPhase::Cancelled => Some(2),
                _ => None,
            };
            if let Some(r) = r {
                self.finished[r].increment(1);
            }
        }
    }
}
