//! `GET /slots/top?limit=N`: the hottest slots and each shard's share of the load, summed over
//! this node and every other member of the meta group that answers within a second
//! (`jobs::load`).
//!
//! Contract: reads counters only (statements and rows written per slot since each node
//! started, `metrics::slots`); the answer names the nodes it sums. Slots are owned as in this node's topology. Needs the admin token when
//! one is set. [`load_by_slot`] is what a split by load balances.

use super::{authorized, json_error, unauthorized, AdminState};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use slotgate_shared::api::{LoadLine, SlotCount, SlotsTop};
use slotgate_shared::Topology;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
pub(super) struct TopQuery {
    limit: Option<usize>,
}

/// The cluster's load as this node can gather it (see [`crate::jobs::load`]).
pub(super) async fn load_by_slot(s: &AdminState) -> (Vec<u64>, BTreeMap<u32, SlotCount>) {
    crate::jobs::load::cluster_load(&s.metrics, s.meta.as_ref()).await
}

/// The top `limit` slots by load and every shard's share.
pub(super) fn top(t: &Topology, nodes: Vec<u64>, sums: &BTreeMap<u32, SlotCount>, limit: usize) -> SlotsTop {
    let total: u64 = sums.values().map(SlotCount::load).sum();
    let share = |load: u64| if total == 0 { 0.0 } else { load as f64 / total as f64 };
    let owner = |slot: u32| t.shards.get(t.shard_of_slot(slot)).map_or_else(String::new, |s| s.id.clone());
    let mut hot: Vec<&SlotCount> = sums.values().filter(|c| c.slot < t.slot_count).collect();
    hot.sort_by(|a, b| b.load().cmp(&a.load()).then(a.slot.cmp(&b.slot)));
    let slots = hot
        .iter()
        .take(limit)
        .map(|c| LoadLine { slot: Some(c.slot), shard: owner(c.slot), statements: c.statements, rows_written: c.rows_written, share: share(c.load()) })
        .collect();
    let mut per_shard: BTreeMap<usize, (u64, u64)> = t.shards.iter().enumerate().map(|(i, _)| (i, (0, 0))).collect();
    for c in sums.values().filter(|c| c.slot < t.slot_count) {
        let e = per_shard.entry(t.shard_of_slot(c.slot)).or_default();
        e.0 = e.0.saturating_add(c.statements);
        e.1 = e.1.saturating_add(c.rows_written);
    }
    let shards = per_shard
        .into_iter()
        .filter_map(|(i, (statements, rows_written))| {
            let id = t.shards.get(i)?.id.clone();
            Some(LoadLine { slot: None, shard: id, statements, rows_written, share: share(statements.saturating_add(rows_written)) })
        })
        .collect();
    SlotsTop { nodes, slots, shards }
}

pub(super) async fn slots_top(State(s): State<AdminState>, headers: HeaderMap, Query(q): Query<TopQuery>) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return unauthorized();
    }
    let t = s.topology.load();
    if t.shards.is_empty() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "no topology yet: the meta group is not initialised (slotctl init)");
    }
    let (nodes, sums) = load_by_slot(&s).await;
    axum::Json(top(&t, nodes, &sums, q.limit.unwrap_or(10))).into_response()
}

/// The slots of `owned` (in slot order) from which on the rest carries about half their
/// load; None when there is no load to balance.
pub fn load_split_point(owned: &[u32], sums: &BTreeMap<u32, SlotCount>) -> Option<usize> {
    let load = |s: &u32| sums.get(s).map_or(0, SlotCount::load);
    let total: u64 = owned.iter().map(load).sum();
    if total == 0 || owned.len() < 2 {
        return None;
    }
    // The first cut where the lower part reaches half; both parts keep at least one slot.
    let mut below = 0u64;
    for (i, s) in owned.iter().enumerate() {
        let next = below + load(s);
        if next * 2 >= total {
            // Cut before or after this slot, whichever is closer to half.
            let cut = if (total as i128 - 2 * below as i128).abs() <= (2 * next as i128 - total as i128).abs() { i } else { i + 1 };
            return Some(cut.clamp(1, owned.len() - 1));
        }
        below = next;
    }
    Some(owned.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(v: &[(u32, u64)]) -> BTreeMap<u32, SlotCount> {
        v.iter().map(|(s, n)| (*s, SlotCount { slot: *s, statements: *n, rows_written: 0 })).collect()
    }

    #[test]
    fn split_point_halves_the_load() {
        let owned: Vec<u32> = (0..8).collect();
        // Even load: half the slots.
        assert_eq!(load_split_point(&owned, &sums(&(0..8).map(|s| (s, 10)).collect::<Vec<_>>())), Some(4));
        // One hot slot at the start: it stays, everything else moves.
        assert_eq!(load_split_point(&owned, &sums(&[(0, 1000), (5, 1)])), Some(1));
        // Hot at the end: only the last slot moves.
        assert_eq!(load_split_point(&owned, &sums(&[(1, 1), (7, 1000)])), Some(7));
        // Two hot slots: one each side.
        assert_eq!(load_split_point(&owned, &sums(&[(2, 100), (6, 100)])), Some(3));
        assert_eq!(load_split_point(&owned, &sums(&[])), None);
        assert_eq!(load_split_point(&[3], &sums(&[(3, 5)])), None);
    }
}
