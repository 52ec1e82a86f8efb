//! Reading the topology: `shard list`, `slots list`, `rule list`, and the shards table and slot
//! range text that `status` and `history` share.
//!
//! Contract: the formatting functions are pure; a topology whose slot table names a shard index
//! that does not exist is shown as it is (such slots appear under no shard), never a panic.

use super::{emit, emit_json, Ctx};
use crate::table;
use anyhow::Result;
use slotgate_shared::{ShardState, SlotRange, Topology};
use slotgate_shared::api::{LoadLine, SlotsTop};

pub async fn shard_list(ctx: &Ctx) -> Result<()> {
    let (reply, t) = ctx.require_topology().await?;
    if ctx.json {
        emit_json(&reply);
    } else {
        emit(&shards_table(&t));
    }
    Ok(())
}

pub async fn slots_list(ctx: &Ctx) -> Result<()> {
    let (reply, t) = ctx.require_topology().await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let mut out = String::new();
    for (i, shard) in t.shards.iter().enumerate() {
        let ranges = owned_ranges(&t.slots, i);
        let text = if ranges.is_empty() { "(none)".to_string() } else { format_ranges(&ranges, ", ") };
        out.push_str(&format!("{}: {text}\n", shard.id));
    }
    for m in &t.moving {
        out.push_str(&format!("moving now: {} -> {} (frozen for the cutover)\n", format_ranges(&m.slots, ", "), m.to));
    }
    emit(&out);
    Ok(())
}

pub async fn slots_top(ctx: &Ctx, limit: usize) -> Result<()> {
    let reply = ctx.client.get(&format!("/slots/top?limit={limit}")).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let top: SlotsTop = reply.parse()?;
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    let line = |l: &LoadLine, first: String| vec![first, l.shard.clone(), l.statements.to_string(), l.rows_written.to_string(), pct(l.share)];
    let mut out = String::new();
    if top.slots.is_empty() {
        out.push_str("no load counted yet (statements pinned to one slot are counted)\n");
    } else {
        let rows: Vec<Vec<String>> = top.slots.iter().map(|l| line(l, l.slot.map_or_else(String::new, |s| s.to_string()))).collect();
        out.push_str(&table::render(&["SLOT", "SHARD", "STATEMENTS", "ROWS WRITTEN", "SHARE"], &rows));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = top.shards.iter().map(|l| line(l, l.shard.clone())).map(|mut r| { r.remove(1); r }).collect();
    out.push_str(&table::render(&["SHARD", "STATEMENTS", "ROWS WRITTEN", "SHARE"], &rows));
    let nodes: Vec<String> = top.nodes.iter().map(u64::to_string).collect();
    out.push_str(&format!("(counted by node(s) {} since each started)\n", nodes.join(", ")));
    emit(&out);
    Ok(())
}

pub async fn rule_list(ctx: &Ctx) -> Result<()> {
    let (reply, t) = ctx.require_topology().await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    if t.rules.is_empty() {
        let home = t.shards.get(t.home_index()).map(|s| s.id.as_str()).unwrap_or("?");
        emit(&format!("no sharding rules; every table lives on the home shard {home}\n"));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = t.rules.iter().map(|r| vec![r.database.clone(), r.table.clone(), r.column.clone()]).collect();
    emit(&table::render(&["DATABASE", "TABLE", "COLUMN"], &rows));
    Ok(())
}

/// ID, STATE, PRIMARY, REPLICAS, SLOTS (count owned), HOME (`*` on the home shard).
pub fn shards_table(t: &Topology) -> String {
    let rows: Vec<Vec<String>> = t
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let owned = t.slots.iter().filter(|o| **o as usize == i).count();
            let replicas = if s.replicas.is_empty() { "-".to_string() } else { s.replicas.join(",") };
            let home = if i == t.home_index() { "*" } else { "" };
            let state = match t.shard_activity(&s.id) {
                Some(what) => format!("{}, {what}", state_name(s.state)),
                None => state_name(s.state).to_string(),
            };
            vec![s.id.clone(), state, s.primary.clone(), replicas, owned.to_string(), home.into()]
        })
        .collect();
    table::render(&["ID", "STATE", "PRIMARY", "REPLICAS", "SLOTS", "HOME"], &rows)
}

pub fn state_name(s: ShardState) -> &'static str {
    match s {
        ShardState::Active => "active",
        ShardState::Draining => "draining",
        ShardState::Offline => "offline",
    }
}

/// The slots owned by shard index `shard`, as maximal runs of consecutive slots, in order.
pub fn owned_ranges(slots: &[u16], shard: usize) -> Vec<SlotRange> {
    SlotRange::compress(slots.iter().enumerate().filter(|(_, owner)| **owner as usize == shard).map(|(slot, _)| slot as u32))
}

/// `0-255, 300` (with `sep` = `", "`) or `0-255,300`.
pub fn format_ranges(ranges: &[SlotRange], sep: &str) -> String {
    ranges
        .iter()
        .map(|r| if r.first == r.last { r.first.to_string() } else { format!("{}-{}", r.first, r.last) })
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotgate_shared::Shard;

    #[test]
    fn compacts_slot_ranges() {
        let slots = [0u16, 0, 0, 1, 0, 2, 2, 1, 1, 0];
        assert_eq!(format_ranges(&owned_ranges(&slots, 0), ", "), "0-2, 4, 9");
        assert_eq!(format_ranges(&owned_ranges(&slots, 1), ", "), "3, 7-8");
        assert_eq!(format_ranges(&owned_ranges(&slots, 2), ","), "5-6");
        assert!(owned_ranges(&slots, 3).is_empty());
        assert_eq!(owned_ranges(&[4u16; 1024], 4), vec![SlotRange { first: 0, last: 1023 }]);
    }

    #[test]
    fn shards_table_counts_slots_and_marks_home() {
        let shard = |id: &str, port: u16, replicas: Vec<String>| Shard {
            id: id.into(),
            state: ShardState::Active,
            primary: format!("h:{port}"),
            replicas,
        };
        let mut t = Topology::uniform(8, vec![shard("s0", 1, vec!["r:1".into(), "r:2".into()]), shard("s1", 2, vec![])], "s1", vec![]).unwrap();
        t.shards[0].state = ShardState::Draining;
        t.slots[0] = 1;
        assert_eq!(
            shards_table(&t),
            "ID  STATE     PRIMARY  REPLICAS  SLOTS  HOME\n\
             s0  draining  h:1      r:1,r:2   3\n\
             s1  active    h:2      -         5      *\n"
        );
    }
}
