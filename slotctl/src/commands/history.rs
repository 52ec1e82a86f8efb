//! `slotctl history`: the last applied topology commands, oldest first.
//!
//! Contract: one `GET /topology/history?limit=N`; human output is a table of version, UTC
//! time, actor, command kind and a one-line summary ([`summary`], pure).

use super::topology::{format_ranges, state_name};
use super::{emit, emit_json, Ctx};
use crate::table;
use crate::time::format_utc_ms;
use anyhow::Result;
use slotgate_shared::api::HistoryEntry;
use slotgate_shared::TopologyCommand;

pub async fn history(ctx: &Ctx, limit: u32) -> Result<()> {
    let reply = ctx.client.get(&format!("/topology/history?limit={limit}")).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let entries: Vec<HistoryEntry> = reply.parse()?;
    if entries.is_empty() {
        emit("no topology history yet; run `slotctl init`\n");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| vec![e.version.to_string(), format_utc_ms(e.at_ms), e.actor.clone(), e.command.kind().to_string(), summary(&e.command)])
        .collect();
    emit(&table::render(&["VERSION", "TIME (UTC)", "ACTOR", "COMMAND", "SUMMARY"], &rows));
    Ok(())
}

/// One line saying what `command` did.
pub fn summary(command: &TopologyCommand) -> String {
    match command {
        TopologyCommand::Init { slot_count, shards, home, rules } => {
            let ids: Vec<&str> = shards.iter().map(|s| s.id.as_str()).collect();
            format!("{slot_count} slots over {}; home {home}; {} rules", ids.join(","), rules.len())
        }
        TopologyCommand::AddShard { shard } => {
            let mut s = format!("{} primary {}", shard.id, shard.primary);
            if !shard.replicas.is_empty() {
                s.push_str(&format!(" replicas {}", shard.replicas.join(",")));
            }
            s
        }
        TopologyCommand::RemoveShard { shard } => shard.clone(),
        TopologyCommand::AddReplica { shard, addr } => format!("{shard} + replica {addr}"),
        TopologyCommand::RemoveReplica { shard, addr } => format!("{shard} - replica {addr}"),
        TopologyCommand::SetShardState { shard, state } => format!("{shard} -> {}", state_name(*state)),
        TopologyCommand::AssignSlots { slots, to } => format!("{} -> {to}", format_ranges(slots, ",")),
        TopologyCommand::FreezeSlots { slots, to } => format!("{} -> {to} (prepare)", format_ranges(slots, ",")),
        TopologyCommand::UnfreezeSlots { slots, to } => format!("{} -> {to} (rolled back)", format_ranges(slots, ",")),
        TopologyCommand::SetPrimary { shard, primary, drop_old } => {
            format!("{shard} primary {primary}{}", if *drop_old { " (old primary dropped)" } else { "" })
        }
        TopologyCommand::AddRule { rule } => format!("{}.{} by {}", rule.database, rule.table, rule.column),
        TopologyCommand::RemoveRule { database, table } => format!("{database}.{table}"),
        TopologyCommand::Freeze { shard } => format!("{shard} frozen (cutover prepare)"),
        TopologyCommand::Unfreeze { shard } => format!("{shard} unfrozen (cutover rolled back)"),
        TopologyCommand::Cutover { shard, primary, .. } => format!("{shard} primary {primary} (cutover commit)"),
        TopologyCommand::MigrationBegin { slots, to, retire_source, split } => {
            let why = match (retire_source, split) {
                (true, _) => " (merge: the source is removed after)",
                (false, true) => " (split)",
                (false, false) => "",
            };
            format!("migrate {} -> {to}{why}", format_ranges(slots, ","))
        }
        TopologyCommand::MigrationPhase { id, phase, detail } if detail.is_empty() => format!("migration {id}: {}", phase.name()),
        TopologyCommand::MigrationPhase { id, phase, detail } => format!("migration {id}: {} ({detail})", phase.name()),
        TopologyCommand::MigrationCancel { id } => format!("migration {id}: cancel requested"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotgate_shared::{Shard, ShardState, ShardingRule, SlotRange};

    #[test]
    fn summaries() {
        let shard = Shard { id: "s2".into(), state: ShardState::Active, primary: "h:1".into(), replicas: vec!["r:1".into()] };
        let rule = ShardingRule { database: "shop".into(), table: "orders".into(), column: "customer_id".into() };
        let init = TopologyCommand::Init { slot_count: 1024, shards: vec![shard.clone()], home: "s2".into(), rules: vec![rule.clone()] };
        assert_eq!(summary(&init), "1024 slots over s2; home s2; 1 rules");
        assert_eq!(summary(&TopologyCommand::AddShard { shard }), "s2 primary h:1 replicas r:1");
        let slots = vec![SlotRange { first: 0, last: 511 }, SlotRange { first: 600, last: 600 }];
        assert_eq!(summary(&TopologyCommand::AssignSlots { slots, to: "s1".into() }), "0-511,600 -> s1");
        assert_eq!(summary(&TopologyCommand::SetShardState { shard: "s1".into(), state: ShardState::Draining }), "s1 -> draining");
        assert_eq!(
            summary(&TopologyCommand::SetPrimary { shard: "s0".into(), primary: "h:2".into(), drop_old: true }),
            "s0 primary h:2 (old primary dropped)"
        );
        assert_eq!(summary(&TopologyCommand::AddRule { rule }), "shop.orders by customer_id");
    }

    #[test]
    fn history_row_time() {
        let entry: HistoryEntry = serde_json::from_str(
            r#"{"version":7,"request_id":"ab","actor":"ops","at_ms":1700000000123,"command":{"kind":"remove_rule","database":"d","table":"t"}}"#,
        )
        .unwrap();
        assert_eq!(format_utc_ms(entry.at_ms), "2023-11-14T22:13:20Z");
        assert_eq!((entry.command.kind(), summary(&entry.command)), ("remove_rule", "d.t".to_string()));
    }
}
