//! The versioned topology: which shard owns each slot, the shards' nodes, the sharding rules.
//!
//! Contract: a `Topology` that passed `validate()` is immutable and complete: every slot is
//! owned by exactly one known shard and every rule names a column. Lookups never fail on a
//! valid topology. Proxies route a whole statement (or transaction) with one snapshot.

use crate::command::SlotRange;
use crate::slot::{slot_of, KeyValue};
use serde::{Deserialize, Serialize};

/// A shard's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    Active,
    Draining,
    Offline,
}

/// One shard: a primary and its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub id: String,
    pub state: ShardState,
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
}

/// `database.table` is sharded by `column`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardingRule {
    pub database: String,
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("slot_count must be between 1 and 65536, not {0}")]
    SlotCount(u32),
    #[error("the slot table has {have} entries but slot_count is {want}")]
    SlotTable { have: usize, want: u32 },
    #[error("slot {slot} is owned by shard index {index}, which does not exist")]
    UnknownOwner { slot: u32, index: u16 },
    #[error("unknown shard {0:?}")]
    UnknownShard(String),
    #[error("duplicate shard {0:?}")]
    DuplicateShard(String),
    #[error("duplicate rule for {0}")]
    DuplicateRule(String),
    #[error("rule for {0} has an empty name")]
    EmptyRuleName(String),
}

/// A prepared slot move: its slots are frozen (proxies hold new work on them) until a later
/// version commits them to `to` or rolls the move back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotMove {
    pub slots: Vec<SlotRange>,
    pub to: String,
}

/// An immutable, versioned snapshot of the cluster's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub version: u64,
    pub slot_count: u32,
    /// `slots[slot]` is the index in `shards` of the owner.
    pub slots: Vec<u16>,
    pub shards: Vec<Shard>,
    pub rules: Vec<ShardingRule>,
    /// Index in `shards` of the shard holding unsharded tables.
    pub home: u16,
    /// Shards whose writes are frozen for a cutover (by id): proxies start no new work on
    /// them until a later version unfreezes them.
    #[serde(default)]
    pub frozen: Vec<String>,
    /// Slot moves prepared and not yet committed or rolled back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moving: Vec<SlotMove>,
    /// Online slot migrations: the active ones and the last few finished ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<crate::migration::Migration>,
    /// The id of the last migration begun.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub migration_seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Topology {
    /// Slots split in contiguous, near-equal ranges over `shards`, in order.
    pub fn uniform(slot_count: u32, shards: Vec<Shard>, home: &str, rules: Vec<ShardingRule>) -> Result<Topology, TopologyError> {
        if slot_count == 0 || slot_count > 65536 {
            return Err(TopologyError::SlotCount(slot_count));
        }
        let n = shards.len().max(1) as u64;
        let slots = (0..slot_count as u64).map(|s| (s * n / slot_count as u64) as u16).collect();
        let home = shards.iter().position(|s| s.id == home).ok_or_else(|| TopologyError::UnknownShard(home.into()))? as u16;
        let t = Topology { version: 1, slot_count, slots, shards, rules, home, frozen: vec![], moving: vec![], migrations: vec![], migration_seq: 0 };
        t.validate()?;
        Ok(t)
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.slot_count == 0 || self.slot_count > 65536 {
            return Err(TopologyError::SlotCount(self.slot_count));
        }
        if self.slots.len() != self.slot_count as usize {
            return Err(TopologyError::SlotTable { have: self.slots.len(), want: self.slot_count });
        }
        for (slot, idx) in self.slots.iter().enumerate() {
            if *idx as usize >= self.shards.len() {
                return Err(TopologyError::UnknownOwner { slot: slot as u32, index: *idx });
            }
        }
        if self.home as usize >= self.shards.len() {
            return Err(TopologyError::UnknownOwner { slot: u32::MAX, index: self.home });
        }
        let mut ids = std::collections::HashSet::new();
        for s in &self.shards {
            if !ids.insert(&s.id) {
                return Err(TopologyError::DuplicateShard(s.id.clone()));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            let name = format!("{}.{}", r.database, r.table);
            if r.database.is_empty() || r.table.is_empty() || r.column.is_empty() {
                return Err(TopologyError::EmptyRuleName(name));
            }
            if !seen.insert((r.database.as_str(), r.table.as_str())) {
                return Err(TopologyError::DuplicateRule(name));
            }
        }
        Ok(())
    }

    /// Index of the shard owning `slot`.
    pub fn shard_of_slot(&self, slot: u32) -> usize {
        self.slots.get(slot as usize).copied().unwrap_or(self.home) as usize
    }

    /// Index of the shard owning `key`.
    pub fn shard_for_key(&self, key: &KeyValue) -> usize {
        self.shard_of_slot(slot_of(key, self.slot_count))
    }

    /// The sharding rule of `database.table` (names compared exactly, as MariaDB on Linux).
    pub fn rule(&self, database: &str, table: &str) -> Option<&ShardingRule> {
        self.rules.iter().find(|r| r.database == database && r.table == table)
    }

    /// Every database that has at least one sharded table.
    pub fn is_sharded_database(&self, database: &str) -> bool {
        self.rules.iter().any(|r| r.database == database)
    }

    /// What an active migration does with shard `id`, as `slotctl shard list` shows it:
    /// `splitting into X`, `merging into X`, `migrating to X` (its source), or `receiving
    /// from X` (its target).
    pub fn shard_activity(&self, id: &str) -> Option<String> {
        let m = self.migrations.iter().find(|m| !m.phase.finished() && (m.from == id || m.to == id))?;
        Some(match (m.from == id, m.retire_source, m.split) {
            (true, true, _) => format!("merging into {}", m.to),
            (true, false, true) => format!("splitting into {}", m.to),
            (true, false, false) => format!("migrating to {}", m.to),
            (false, true, _) => format!("merging {} in", m.from),
            (false, false, true) => format!("splitting from {}", m.from),
            (false, false, false) => format!("receiving from {}", m.from),
        })
    }

    /// Whether shard `id` is frozen for a cutover.
    pub fn is_frozen(&self, id: &str) -> bool {
        self.frozen.iter().any(|f| f == id)
    }

    /// Whether `slot` is frozen by a prepared move.
    pub fn is_moving(&self, slot: u32) -> bool {
        self.moving.iter().any(|m| m.slots.iter().any(|r| r.first <= slot && slot <= r.last))
    }

    /// This topology as it will be once every prepared move commits (no moves pending). A
    /// statement routed the same way with both touches no moving slot.
    pub fn after_moves(&self) -> Topology {
        let mut next = self.clone();
        for m in &self.moving {
            if let Some(idx) = self.shards.iter().position(|s| s.id == m.to) {
                for slot in SlotRange::expand(&m.slots) {
                    if let Some(owner) = next.slots.get_mut(slot as usize) {
                        *owner = idx as u16;
                    }
                }
            }
        }
        next.moving.clear();
        next
    }

    /// What this topology holds back for cutovers (frozen shards, prepared moves), each by a
    /// stable key (`"shard s1"`, `"slots 0-15 -> s2"`) with the command that rolls it back.
    pub fn held_back(&self) -> Vec<(String, crate::TopologyCommand)> {
        let shards = self.frozen.iter().map(|s| (format!("shard {s}"), crate::TopologyCommand::Unfreeze { shard: s.clone() }));
        let moves = self.moving.iter().map(|m| {
            let key = format!("slots {} -> {}", SlotRange::format_list(&m.slots), m.to);
            (key, crate::TopologyCommand::UnfreezeSlots { slots: m.slots.clone(), to: m.to.clone() })
        });
        shards.chain(moves).collect()
    }

    /// Indices of the shards that own slots of a prepared move now (the moves' sources).
    pub fn moving_sources(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for m in &self.moving {
            for slot in SlotRange::expand(&m.slots) {
                let owner = self.shard_of_slot(slot);
                if self.shards.get(owner).is_some_and(|s| s.id != m.to) && !out.contains(&owner) {
                    out.push(owner);
                }
            }
        }
        out.sort_unstable();
        out
    }

    pub fn home_index(&self) -> usize {
        self.home as usize
    }

    /// The shards that can hold rows of sharded tables, ascending: those owning a slot, and
    /// the home shard (rows whose key is NULL). A shard just added, or one whose slots all
    /// moved away, holds none (at most a migration's copies or leftovers, which statements
    /// never read), so statements over every shard skip it.
    pub fn data_shards(&self) -> Vec<usize> {
        let mut owns = vec![false; self.shards.len()];
        for s in &self.slots {
            if let Some(x) = owns.get_mut(*s as usize) {
                *x = true;
            }
        }
        if let Some(x) = owns.get_mut(self.home_index()) {
            *x = true;
        }
        owns.iter().enumerate().filter(|(_, o)| **o).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str) -> Shard {
        Shard { id: id.into(), state: ShardState::Active, primary: "127.0.0.1:1".into(), replicas: vec![] }
    }

    #[test]
    fn uniform_split_covers_every_slot() {
        let t = Topology::uniform(1024, vec![shard("a"), shard("b"), shard("c"), shard("d")], "a", vec![]).unwrap();
        assert_eq!(t.slots.iter().filter(|s| **s == 0).count(), 256);
        assert_eq!(t.shard_of_slot(0), 0);
        assert_eq!(t.shard_of_slot(1023), 3);
        let key = KeyValue::Int(42);
        assert_eq!(t.shard_for_key(&key), t.shard_of_slot(slot_of(&key, 1024)));
    }

    #[test]
    fn invalid_topologies_are_refused() {
        assert!(Topology::uniform(0, vec![shard("a")], "a", vec![]).is_err());
        assert!(Topology::uniform(8, vec![shard("a")], "zz", vec![]).is_err());
        assert!(Topology::uniform(8, vec![shard("a"), shard("a")], "a", vec![]).is_err());
        let rule = ShardingRule { database: "d".into(), table: "t".into(), column: "k".into() };
        assert!(Topology::uniform(8, vec![shard("a")], "a", vec![rule.clone(), rule]).is_err());
        let mut t = Topology::uniform(8, vec![shard("a")], "a", vec![]).unwrap();
        t.slots[3] = 9;
        assert!(t.validate().is_err());
    }
}
