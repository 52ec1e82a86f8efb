//! Per-slot load telemetry of this node: statements and rows written per slot, counted by the
//! sessions for statements the router pinned to one slot (point reads and writes, single-row
//! and one-slot inserts); statements over several slots are not attributed to slots.
//!
//! Contract: counting is two relaxed atomic adds into a fixed array (no allocation, no lock);
//! counters only grow (since the node started). Prometheus gets a top-N by rank
//! (`slotgate_slot_load_top{rank}` and the slot each rank is, `slotgate_slot_load_top_slot`),
//! refreshed at scrape time, never one series per slot. [`SlotLoad::snapshot`] is what other
//! members and `GET /slots/top` read.

use metrics::Gauge;
use metrics_exporter_prometheus::PrometheusRecorder;
use slotgate_shared::api::SlotCount;
use std::sync::atomic::{AtomicU64, Ordering};

pub const SLOT_LOAD_TOP: &str = "slotgate_slot_load_top";
pub const SLOT_LOAD_TOP_SLOT: &str = "slotgate_slot_load_top_slot";

/// Ranks exported to Prometheus.
pub const TOP_RANKS: usize = 10;
/// The largest slot count a topology may have (`Topology::validate`).
const MAX_SLOTS: usize = 65536;

pub struct SlotLoad {
    statements: Box<[AtomicU64]>,
    rows: Box<[AtomicU64]>,
    top: Vec<(Gauge, Gauge)>,
}

impl SlotLoad {
    pub(super) fn register(recorder: &PrometheusRecorder) -> SlotLoad {
        let zeros = || (0..MAX_SLOTS).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        let top = metrics::with_local_recorder(recorder, || {
            metrics::describe_gauge!(SLOT_LOAD_TOP, "Statements plus rows written since the node started, of the slots ranked 1..10 by that load on this node.");
            metrics::describe_gauge!(SLOT_LOAD_TOP_SLOT, "The slot at each rank of slotgate_slot_load_top.");
            (1..=TOP_RANKS)
                .map(|r| {
                    let rank = r.to_string();
                    (metrics::gauge!(SLOT_LOAD_TOP, "rank" => rank.clone()), metrics::gauge!(SLOT_LOAD_TOP_SLOT, "rank" => rank))
                })
                .collect()
        });
        SlotLoad { statements: zeros(), rows: zeros(), top }
    }

    /// Counts one statement on `slot` that wrote `rows_written` rows.
    pub fn record(&self, slot: u32, rows_written: u64) {
        if let (Some(s), Some(r)) = (self.statements.get(slot as usize), self.rows.get(slot as usize)) {
            s.fetch_add(1, Ordering::Relaxed);
            if rows_written > 0 {
                r.fetch_add(rows_written, Ordering::Relaxed);
            }
        }
    }

    /// Every slot with any load, in slot order.
    pub fn snapshot(&self) -> Vec<SlotCount> {
        self.statements
            .iter()
            .zip(self.rows.iter())
            .enumerate()
            .filter_map(|(slot, (s, r))| {
                let (statements, rows_written) = (s.load(Ordering::Relaxed), r.load(Ordering::Relaxed));
                (statements > 0 || rows_written > 0).then_some(SlotCount { slot: slot as u32, statements, rows_written })
            })
            .collect()
    }

    /// Sets the top-N gauges from the counters (at scrape time).
    pub fn report(&self) {
        let mut loads = self.snapshot();
        loads.sort_by(|a, b| b.load().cmp(&a.load()).then(a.slot.cmp(&b.slot)));
        for (i, (value, slot)) in self.top.iter().enumerate() {
            match loads.get(i) {
                Some(c) => {
                    value.set(c.load() as f64);
                    slot.set(c.slot as f64);
                }
                None => {
                    value.set(0.0);
                    slot.set(-1.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_slot_and_ignores_slots_past_the_end() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let l = SlotLoad::register(&recorder);
        l.record(7, 0);
        l.record(7, 3);
        l.record(2, 1);
        l.record(u32::MAX, 5);
        assert_eq!(
            l.snapshot(),
            vec![SlotCount { slot: 2, statements: 1, rows_written: 1 }, SlotCount { slot: 7, statements: 2, rows_written: 3 }]
        );
        l.report();
        let text = handle.render();
        assert!(text.contains("slotgate_slot_load_top{rank=\"1\"} 5"), "{text}");
        assert!(text.contains("slotgate_slot_load_top_slot{rank=\"1\"} 7"), "{text}");
        assert!(text.contains("slotgate_slot_load_top_slot{rank=\"3\"} -1"), "{text}");
    }
}
