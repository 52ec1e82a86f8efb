//! The meta hooks of a slotgate node: before slots move, check on their current owners that
//! they hold no rows (no online migration yet); before a rule is added, check the table's keys
//! (`rule_check`); count topology commands; tell the other members' deadlock detectors which
//! backend threads this node's sessions use.
//!
//! Contract: for `freeze_slots` (the prepare of a slot move) without `--force`, every sharded table is counted on each
//! source shard's primary with `CRC32(column) % slot_count IN (moving slots)` — the slot
//! function operators can run themselves. Any rows, or a shard that cannot be asked, refuse
//! the command with a sentence that says what to do. Other commands pass.

use crate::backend::Backends;
use crate::metrics::Metrics;
use mysql_async::prelude::Queryable;
use slotgate_meta::{HookFuture, MetaHooks};
use slotgate_shared::{SlotRange, Topology, TopologyCommand};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct NodeHooks {
    pub backends: Backends,
    pub metrics: Metrics,
}

impl MetaHooks for NodeHooks {
    fn precheck<'a>(&'a self, current: &'a Topology, command: &'a TopologyCommand) -> HookFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match command {
                TopologyCommand::FreezeSlots { slots, to } => self.slots_empty(current, slots, to).await,
                TopologyCommand::AddRule { rule } => super::rule_check::check_rule(&self.backends, current, rule).await,
                _ => Ok(()),
            }
        })
    }

    fn command_done(&self, kind: &str, result: &str) {
        self.metrics.meta().command(kind, result);
    }

    fn transactions(&self) -> Vec<(String, u32, u32)> {
        self.backends.lent_threads()
    }

    fn slot_load(&self) -> Vec<slotgate_shared::api::SlotCount> {
        self.metrics.slots().snapshot()
    }
}

impl NodeHooks {
    async fn slots_empty(&self, t: &Topology, slots: &[SlotRange], to: &str) -> Result<(), String> {
        let mut by_source: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        // Slots past the end are refused by the command itself; never iterate beyond it.
        let last = t.slot_count.saturating_sub(1);
        let clamped: Vec<SlotRange> = slots.iter().filter(|r| r.first <= last).map(|r| SlotRange { first: r.first, last: r.last.min(last) }).collect();
        for slot in SlotRange::expand(&clamped) {
            let owner = t.shard_of_slot(slot);
            if t.shards.get(owner).is_some_and(|s| s.id != to) {
                by_source.entry(owner).or_default().push(slot);
            }
        }
        for (owner, moving) in by_source {
            let shard = &t.shards[owner].id;
            let list = moving.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            for rule in &t.rules {
                let sql = format!(
                    "SELECT COUNT(*) FROM {}.{} WHERE CRC32({}) % {} IN ({list})",
                    crate::backend::quote_ident(&rule.database),
                    crate::backend::quote_ident(&rule.table),
                    crate::backend::quote_ident(&rule.column),
                    t.slot_count
                );
                let rows = self.count(shard, &sql).await.map_err(|e| {
                    format!("cannot check whether the slots hold rows of {}.{} on shard {shard:?} ({e}); retry when it answers, or pass --force if you know they are empty", rule.database, rule.table)
                })?;
                if rows > 0 {
                    return Err(format!(
                        "{rows} rows of {}.{} on shard {shard:?} live in slots being moved; moving them would hide those rows (slotgate has no online migration yet): copy and delete them first, or pass --force",
                        rule.database, rule.table
                    ));
                }
            }
        }
        Ok(())
    }

    async fn count(&self, shard: &str, sql: &str) -> Result<u64, String> {
        let pool = self.backends.primary(shard).ok_or("no pool for this shard")?;
        let work = async {
            let mut c = pool.acquire(false).await.map_err(|e| e.to_string())?;
            match c.conn().query_first::<u64, _>(sql).await {
                Ok(n) => Ok(n.unwrap_or(0)),
                // The table does not exist on this shard: it holds no rows there.
                Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(0),
                Err(e) => Err(e.to_string()),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), work).await.map_err(|_| "timed out after 10 s".to_string())?
    }
}
