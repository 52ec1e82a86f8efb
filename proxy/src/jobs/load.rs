//! The cluster's per-slot load: this node's counters (`metrics::slots`) summed with every
//! other meta member's that answers within a second.
//!
//! Contract: counters since each node started; a member that does not answer is left out and
//! the answer names the nodes summed (this node first counts as id 0 outside a meta group).

use crate::metrics::Metrics;
use slotgate_meta::MetaNode;
use slotgate_shared::api::SlotCount;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long other members get to answer.
const ASK_WITHIN: Duration = Duration::from_secs(1);

/// Per-slot sums, and the ids of the nodes in them (sorted).
pub async fn cluster_load(metrics: &Metrics, meta: Option<&MetaNode>) -> (Vec<u64>, BTreeMap<u32, SlotCount>) {
    let mut sums: BTreeMap<u32, SlotCount> = BTreeMap::new();
    let mut add = |counts: Vec<SlotCount>| {
        for c in counts {
            let e = sums.entry(c.slot).or_insert(SlotCount { slot: c.slot, statements: 0, rows_written: 0 });
            e.statements = e.statements.saturating_add(c.statements);
            e.rows_written = e.rows_written.saturating_add(c.rows_written);
        }
    };
    add(metrics.slots().snapshot());
    let mut nodes = vec![meta.map_or(0, |m| m.id())];
    if let Some(meta) = meta {
        for (id, counts) in meta.members_slot_load(ASK_WITHIN).await {
            nodes.push(id);
            add(counts);
        }
    }
    nodes.sort_unstable();
    (nodes, sums)
}
