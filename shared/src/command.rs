//! Topology commands: the only way a topology changes once the meta group owns it.
//!
//! Contract: [`TopologyCommand::apply`] is pure and deterministic. Given the current topology
//! (or none before `init`) it returns the next topology, whose version is exactly one more, or a
//! [`CommandError`] that says in one sentence why the command was refused and what to do; a
//! refused command changes nothing. Every topology it returns has passed `validate()`, and in
//! addition: every shard that owns a slot (or is the home shard) is `active`, shard states
//! move only along legal transitions, and a shard is removed only when it owns nothing.

use crate::topology::{Shard, ShardState, ShardingRule, Topology, TopologyError};
use serde::{Deserialize, Serialize};

/// An inclusive range of slots, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    pub first: u32,
    pub last: u32,
}

impl SlotRange {
    /// Parses `"7"`, `"0-511"` or a comma-separated list of those.
    pub fn parse_list(text: &str) -> Result<Vec<SlotRange>, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let first = a.parse::<u32>().map_err(|_| format!("{part:?} is not a slot or a slot range like 0-511"))?;
            let last = b.parse::<u32>().map_err(|_| format!("{part:?} is not a slot or a slot range like 0-511"))?;
            if last < first {
                return Err(format!("slot range {part:?} ends before it starts"));
            }
            out.push(SlotRange { first, last });
        }
        if out.is_empty() {
            return Err("no slots given; write them like 0-511,1000".into());
        }
        Ok(out)
    }

    /// `"0-511,600"`: the list form [`SlotRange::parse_list`] reads.
    pub fn format_list(ranges: &[SlotRange]) -> String {
        let one = |r: &SlotRange| if r.first == r.last { r.first.to_string() } else { format!("{}-{}", r.first, r.last) };
        ranges.iter().map(one).collect::<Vec<_>>().join(",")
    }

    /// Every slot of every range, in order.
    pub fn expand(ranges: &[SlotRange]) -> impl Iterator<Item = u32> + '_ {
        ranges.iter().flat_map(|r| r.first..=r.last)
    }

    /// Ascending slots as the fewest ranges.
    pub fn compress(slots: impl IntoIterator<Item = u32>) -> Vec<SlotRange> {
        let mut out: Vec<SlotRange> = Vec::new();
        for slot in slots {
            match out.last_mut() {
                Some(r) if r.last + 1 == slot => r.last = slot,
                _ => out.push(SlotRange { first: slot, last: slot }),
            }
        }
        out
    }
}

/// One change of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TopologyCommand {
    /// Creates the first topology (version 1), slots spread evenly over `shards` in order.
    Init { slot_count: u32, shards: Vec<Shard>, home: String, #[serde(default)] rules: Vec<ShardingRule> },
    /// Adds a shard that owns no slots yet.
    AddShard { shard: Shard },
    /// Removes a shard that owns no slot and is not the home shard.
    RemoveShard { shard: String },
    AddReplica { shard: String, addr: String },
    RemoveReplica { shard: String, addr: String },
    SetShardState { shard: String, state: ShardState },
    /// Gives `slots` to shard `to`.
    /// Commit of a prepared slot move (see `FreezeSlots`): the slots now belong to `to`.
    AssignSlots { slots: Vec<SlotRange>, to: String },
    /// Prepare of a slot move: proxies hold new work on these slots and drain what is in flight.
    FreezeSlots { slots: Vec<SlotRange>, to: String },
    /// A slot move rolled back: work resumes where the slots were.
    UnfreezeSlots { slots: Vec<SlotRange>, to: String },
    /// Makes `primary` the shard's primary. If it was a replica it leaves the replica list; the
    /// old primary becomes a replica unless `drop_old`.
    SetPrimary { shard: String, primary: String, #[serde(default)] drop_old: bool },
    AddRule { rule: ShardingRule },
    RemoveRule { database: String, table: String },
    /// Prepare of a cutover: proxies stop starting new work on the shard and drain it.
    Freeze { shard: String },
    /// A cutover rolled back: work resumes on the unchanged shard.
    Unfreeze { shard: String },
    /// Commit of a switchover or failover: `primary` becomes the shard's primary (the old one
    /// becomes a replica unless `drop_old`) and the shard is unfrozen, in one version.
    Cutover { shard: String, primary: String, #[serde(default)] drop_old: bool },
    /// Starts an online migration of `slots` (all owned by one shard) to shard `to`; with
    /// `retire_source` (a merge) the source shard is removed once the migration is done.
    MigrationBegin { slots: Vec<SlotRange>, to: String, #[serde(default)] retire_source: bool, #[serde(default)] split: bool },
    /// A migration's job reached `phase`.
    MigrationPhase { id: u64, phase: crate::migration::MigrationPhase, #[serde(default)] detail: String },
    /// Asks a migration's job to roll back (before its cutover's commit only).
    MigrationCancel { id: u64 },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    #[error("the cluster has no topology yet; run `slotctl init` first")]
    NotInitialised,
    #[error("the cluster is already initialised (version {0}); change it with shard/slots/rule commands")]
    AlreadyInitialised(u64),
    #[error("unknown shard {0:?}; `slotctl shard list` shows the shards")]
    UnknownShard(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<TopologyError> for CommandError {
    fn from(e: TopologyError) -> Self {
        CommandError::Invalid(e.to_string())
    }
}

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::Invalid(msg.into())
}

impl TopologyCommand {
    /// Every value [`TopologyCommand::kind`] returns.
    pub const KINDS: [&'static str; 18] = [
        "init",
        "add_shard",
        "remove_shard",
        "add_replica",
        "remove_replica",
        "set_shard_state",
        "assign_slots",
        "set_primary",
        "add_rule",
        "remove_rule",
        "freeze",
        "unfreeze",
        "cutover",
        "freeze_slots",
        "unfreeze_slots",
        "migration_begin",
        "migration_phase",
        "migration_cancel",
    ];

    /// A short name of the command, used in history and as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            TopologyCommand::Init { .. } => "init",
            TopologyCommand::AddShard { .. } => "add_shard",
            TopologyCommand::RemoveShard { .. } => "remove_shard",
            TopologyCommand::AddReplica { .. } => "add_replica",
            TopologyCommand::RemoveReplica { .. } => "remove_replica",
            TopologyCommand::SetShardState { .. } => "set_shard_state",
            TopologyCommand::AssignSlots { .. } => "assign_slots",
            TopologyCommand::SetPrimary { .. } => "set_primary",
            TopologyCommand::AddRule { .. } => "add_rule",
            TopologyCommand::RemoveRule { .. } => "remove_rule",
            TopologyCommand::Freeze { .. } => "freeze",
            TopologyCommand::Unfreeze { .. } => "unfreeze",
            TopologyCommand::Cutover { .. } => "cutover",
            TopologyCommand::FreezeSlots { .. } => "freeze_slots",
            TopologyCommand::UnfreezeSlots { .. } => "unfreeze_slots",
            TopologyCommand::MigrationBegin { .. } => "migration_begin",
            TopologyCommand::MigrationPhase { .. } => "migration_phase",
            TopologyCommand::MigrationCancel { .. } => "migration_cancel",
        }
    }

    /// The next topology, or why not; see the module contract.
    pub fn apply(&self, current: Option<&Topology>) -> Result<Topology, CommandError> {
        if let TopologyCommand::Init { slot_count, shards, home, rules } = self {
            if let Some(t) = current {
                return Err(CommandError::AlreadyInitialised(t.version));
            }
            if shards.is_empty() {
                return Err(invalid("init needs at least one shard"));
            }
            let mut seen = std::collections::HashSet::new();
            for s in shards {
                check_shard(s)?;
                for addr in std::iter::once(&s.primary).chain(&s.replicas) {
                    if !seen.insert(addr.as_str()) {
                        return Err(invalid(format!("{addr} appears in more than one place; every backend node belongs to one shard once")));
                    }
                }
            }
            let mut shards = shards.clone();
            for s in &mut shards {
                s.state = ShardState::Active;
            }
            return Ok(Topology::uniform(*slot_count, shards, home, rules.clone())?);
        }
        let cur = current.ok_or(CommandError::NotInitialised)?;
        let mut next = cur.clone();
        next.version = cur.version + 1;
        match self {
            TopologyCommand::Init { .. } => unreachable!("handled above"),
            TopologyCommand::AddShard { shard } => {
                check_shard(shard)?;
                if next.shards.iter().any(|s| s.id == shard.id) {
                    return Err(invalid(format!("shard {:?} already exists", shard.id)));
                }
                if next.shards.len() >= u16::MAX as usize {
                    return Err(invalid("too many shards"));
                }
                check_addr_unused(&next, &shard.primary)?;
                for r in &shard.replicas {
                    check_addr_unused(&next, r)?;
                }
                next.shards.push(shard.clone());
            }
            TopologyCommand::RemoveShard { shard } => {
                let idx = index(&next, shard)?;
                if idx == next.home as usize {
                    return Err(invalid(format!("shard {shard:?} is the home shard (unsharded tables live there); it cannot be removed")));
                }
                if next.migrations.iter().any(|m| !m.phase.finished() && (m.to == *shard || m.from == *shard)) {
                    return Err(invalid(format!("shard {shard:?} takes part in a slot migration in progress; wait for it to finish or cancel it")));
                }
                if next.moving.iter().any(|m| m.to == *shard) {
                    return Err(invalid(format!("shard {shard:?} is the target of a slot move in progress; wait for it to finish")));
                }
                let owned = next.slots.iter().filter(|o| **o as usize == idx).count();
                if owned > 0 {
                    return Err(invalid(format!("shard {shard:?} still owns {owned} slots; assign them to another shard first")));
                }
                next.shards.remove(idx);
                let idx = idx as u16;
                for o in next.slots.iter_mut() {
                    if *o > idx {
                        *o -= 1;
                    }
                }
                if next.home > idx {
                    next.home -= 1;
                }
            }
            TopologyCommand::AddReplica { shard, addr } => {
                check_addr(addr)?;
                check_addr_unused(&next, addr)?;
                let idx = index(&next, shard)?;
                next.shards[idx].replicas.push(addr.clone());
            }
            TopologyCommand::RemoveReplica { shard, addr } => {
                let idx = index(&next, shard)?;
                let s = &mut next.shards[idx];
                let before = s.replicas.len();
                s.replicas.retain(|r| r != addr);
                if s.replicas.len() == before {
                    return Err(invalid(format!("{addr} is not a replica of shard {shard:?}")));
                }
            }
            TopologyCommand::SetShardState { shard, state } => {
                let idx = index(&next, shard)?;
                let from = next.shards[idx].state;
                if from == *state {
                    return Err(invalid(format!("shard {shard:?} is already {}", state_name(*state))));
                }
                let legal = matches!(
                    (from, *state),
                    (ShardState::Active, ShardState::Draining)
                        | (ShardState::Draining, ShardState::Active)
                        | (ShardState::Draining, ShardState::Offline)
                        | (ShardState::Active, ShardState::Offline)
                        | (ShardState::Offline, ShardState::Active)
                );
                if !legal {
                    return Err(invalid(format!(
                        "shard {shard:?} cannot go from {} to {}; go through draining",
                        state_name(from),
                        state_name(*state)
                    )));
                }
                next.shards[idx].state = *state;
            }
            TopologyCommand::AssignSlots { slots, to } => crate::moves::commit(&mut next, slots, to)?,
            TopologyCommand::FreezeSlots { slots, to } => crate::moves::freeze(&mut next, slots, to)?,
            TopologyCommand::UnfreezeSlots { slots, to } => crate::moves::unfreeze(&mut next, slots, to)?,
            TopologyCommand::MigrationBegin { slots, to, retire_source, split } => crate::migration::begin(&mut next, slots, to, *retire_source, *split)?,
            TopologyCommand::MigrationPhase { id, phase, detail } => crate::migration::set_phase(&mut next, *id, *phase, detail)?,
            TopologyCommand::MigrationCancel { id } => crate::migration::cancel(&mut next, *id)?,
            TopologyCommand::SetPrimary { shard, primary, drop_old } => {
                if next.is_frozen(shard) {
                    return Err(invalid(format!("shard {shard:?} is frozen for a cutover; wait for it to finish")));
                }
                set_primary(&mut next, shard, primary, *drop_old)?;
            }
            TopologyCommand::Freeze { shard } => {
                index(&next, shard)?;
                if next.is_frozen(shard) {
                    return Err(invalid(format!("shard {shard:?} is already frozen for a cutover")));
                }
                next.frozen.push(shard.clone());
            }
            TopologyCommand::Unfreeze { shard } => {
                if !next.is_frozen(shard) {
                    return Err(invalid(format!("shard {shard:?} is not frozen")));
                }
                next.frozen.retain(|f| f != shard);
            }
            TopologyCommand::Cutover { shard, primary, drop_old } => {
                if !next.is_frozen(shard) {
                    return Err(invalid(format!("shard {shard:?} is not frozen; a cutover commits only after its prepare")));
                }
                set_primary(&mut next, shard, primary, *drop_old)?;
                next.frozen.retain(|f| f != shard);
            }
            TopologyCommand::AddRule { rule } => {
                if next.rule(&rule.database, &rule.table).is_some() {
                    return Err(invalid(format!("{}.{} already has a sharding rule", rule.database, rule.table)));
                }
                next.rules.push(rule.clone());
            }
            TopologyCommand::RemoveRule { database, table } => {
                let before = next.rules.len();
                next.rules.retain(|r| !(r.database == *database && r.table == *table));
                if next.rules.len() == before {
                    return Err(invalid(format!("{database}.{table} has no sharding rule")));
                }
            }
        }
        next.validate()?;
        check_owners_active(&next)?;
        Ok(next)
    }
}

fn set_primary(next: &mut Topology, shard: &str, primary: &str, drop_old: bool) -> Result<(), CommandError> {
    check_addr(primary)?;
    let idx = index(next, shard)?;
    let s = &next.shards[idx];
    if s.primary == primary {
        return Err(invalid(format!("{primary} is already the primary of shard {shard:?}")));
    }
    if !s.replicas.iter().any(|r| r == primary) {
        check_addr_unused(next, primary)?;
    }
    let s = &mut next.shards[idx];
    s.replicas.retain(|r| r != primary);
    let old = std::mem::replace(&mut s.primary, primary.to_string());
    if !drop_old {
        s.replicas.push(old);
    }
    Ok(())
}

fn state_name(s: ShardState) -> &'static str {
    match s {
        ShardState::Active => "active",
        ShardState::Draining => "draining",
        ShardState::Offline => "offline",
    }
}

fn index(t: &Topology, shard: &str) -> Result<usize, CommandError> {
    t.shards.iter().position(|s| s.id == shard).ok_or_else(|| CommandError::UnknownShard(shard.to_string()))
}

fn check_shard(s: &Shard) -> Result<(), CommandError> {
    if s.id.is_empty() || s.id.len() > 64 || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(format!("shard id {:?} must be 1-64 letters, digits, '-' or '_'", s.id)));
    }
    check_addr(&s.primary)?;
    for r in &s.replicas {
        check_addr(r)?;
        if *r == s.primary {
            return Err(invalid(format!("{r} cannot be both primary and replica of shard {:?}", s.id)));
        }
    }
    Ok(())
}

/// A backend address must look like `host:port`.
fn check_addr(addr: &str) -> Result<(), CommandError> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{addr:?} is not a backend address like host:3306")))
    }
}

fn check_addr_unused(t: &Topology, addr: &str) -> Result<(), CommandError> {
    check_addr(addr)?;
    for s in &t.shards {
        if s.primary == addr || s.replicas.iter().any(|r| r == addr) {
            return Err(invalid(format!("{addr} already belongs to shard {:?}", s.id)));
        }
    }
    Ok(())
}

/// Shards that own slots, and the home shard, must be active.
fn check_owners_active(t: &Topology) -> Result<(), CommandError> {
    let mut owns = vec![false; t.shards.len()];
    for o in &t.slots {
        owns[*o as usize] = true;
    }
    owns[t.home as usize] = true;
    for (i, s) in t.shards.iter().enumerate() {
        if owns[i] && s.state != ShardState::Active {
            return Err(invalid(format!(
                "shard {:?} owns slots (or is the home shard) and must stay active; move its slots away first",
                s.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, port: u16) -> Shard {
        Shard { id: id.into(), state: ShardState::Active, primary: format!("127.0.0.1:{port}"), replicas: vec![] }
    }

    fn init() -> Topology {
        TopologyCommand::Init { slot_count: 8, shards: vec![shard("a", 1), shard("b", 2)], home: "a".into(), rules: vec![] }
            .apply(None)
            .unwrap()
    }

    #[test]
    fn init_once() {
        let t = init();
        assert_eq!(t.version, 1);
        assert_eq!(t.slots, vec![0, 0, 0, 0, 1, 1, 1, 1]);
        let again = TopologyCommand::Init { slot_count: 8, shards: vec![shard("a", 1)], home: "a".into(), rules: vec![] };
        assert_eq!(again.apply(Some(&t)), Err(CommandError::AlreadyInitialised(1)));
        assert_eq!(TopologyCommand::RemoveShard { shard: "a".into() }.apply(None), Err(CommandError::NotInitialised));
    }

    #[test]
    fn assign_and_remove() {
        let t = init();
        let t2 = TopologyCommand::AddShard { shard: shard("c", 3) }.apply(Some(&t)).unwrap();
        assert_eq!(t2.version, 2);
        let slots = SlotRange::parse_list("4-5,7").unwrap();
        let moved = |t: &Topology, slots: Vec<SlotRange>, to: &str| {
            let p = TopologyCommand::FreezeSlots { slots: slots.clone(), to: to.into() }.apply(Some(t)).unwrap();
            TopologyCommand::AssignSlots { slots, to: to.into() }.apply(Some(&p)).unwrap()
        };
        let t3 = moved(&t2, slots.clone(), "c");
        assert_eq!(t3.slots, vec![0, 0, 0, 0, 2, 2, 1, 2]);
        assert!(TopologyCommand::AssignSlots { slots, to: "c".into() }.apply(Some(&t3)).is_err());
        let refused = TopologyCommand::RemoveShard { shard: "b".into() }.apply(Some(&t3)).unwrap_err();
        assert!(refused.to_string().contains("still owns 1 slots"), "{refused}");
        let t4 = moved(&t3, vec![SlotRange { first: 6, last: 6 }], "c");
        let t5 = TopologyCommand::RemoveShard { shard: "b".into() }.apply(Some(&t4)).unwrap();
        assert_eq!(t5.shards.len(), 2);
        assert_eq!(t5.slots, vec![0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(t5.shards[1].id, "c");
        assert!(TopologyCommand::AssignSlots { slots: vec![SlotRange { first: 8, last: 8 }], to: "c".into() }.apply(Some(&t5)).is_err());
        assert_eq!(
            TopologyCommand::AssignSlots { slots: vec![SlotRange { first: 1, last: 1 }], to: "zz".into() }.apply(Some(&t5)),
            Err(CommandError::UnknownShard("zz".into()))
        );
    }

    #[test]
    fn states_and_primaries() {
        let t = init();
        let off = TopologyCommand::SetShardState { shard: "b".into(), state: ShardState::Offline };
        assert!(off.apply(Some(&t)).unwrap_err().to_string().contains("must stay active"));
        let t2 = TopologyCommand::AddReplica { shard: "b".into(), addr: "127.0.0.1:9".into() }.apply(Some(&t)).unwrap();
        assert!(TopologyCommand::AddReplica { shard: "a".into(), addr: "127.0.0.1:9".into() }.apply(Some(&t2)).is_err());
        let t3 = TopologyCommand::SetPrimary { shard: "b".into(), primary: "127.0.0.1:9".into(), drop_old: false }
            .apply(Some(&t2))
            .unwrap();
        assert_eq!(t3.shards[1].primary, "127.0.0.1:9");
        assert_eq!(t3.shards[1].replicas, vec!["127.0.0.1:2".to_string()]);
        assert!(TopologyCommand::AddReplica { shard: "b".into(), addr: "nohost".into() }.apply(Some(&t3)).is_err());
        let t4 = TopologyCommand::AddShard { shard: shard("c", 3) }.apply(Some(&t3)).unwrap();
        let t5 = TopologyCommand::SetShardState { shard: "c".into(), state: ShardState::Offline }.apply(Some(&t4)).unwrap();
        assert!(TopologyCommand::SetShardState { shard: "c".into(), state: ShardState::Draining }.apply(Some(&t5)).is_err());
        assert!(TopologyCommand::AssignSlots { slots: vec![SlotRange { first: 0, last: 0 }], to: "c".into() }.apply(Some(&t5)).is_err());
    }

    #[test]
    fn freeze_then_cutover_or_unfreeze() {
        let t = TopologyCommand::AddReplica { shard: "b".into(), addr: "127.0.0.1:9".into() }.apply(Some(&init())).unwrap();
        let cut = TopologyCommand::Cutover { shard: "b".into(), primary: "127.0.0.1:9".into(), drop_old: false };
        assert!(cut.apply(Some(&t)).is_err(), "no cutover without its prepare");
        let f = TopologyCommand::Freeze { shard: "b".into() }.apply(Some(&t)).unwrap();
        assert!(f.is_frozen("b"));
        assert!(TopologyCommand::Freeze { shard: "b".into() }.apply(Some(&f)).is_err());
        let set = TopologyCommand::SetPrimary { shard: "b".into(), primary: "127.0.0.1:9".into(), drop_old: false };
        assert!(set.apply(Some(&f)).is_err(), "a frozen shard changes only through its cutover");
        let done = cut.apply(Some(&f)).unwrap();
        assert!(!done.is_frozen("b"));
        assert_eq!(done.shards[1].primary, "127.0.0.1:9");
        assert_eq!(done.version, f.version + 1);
        let back = TopologyCommand::Unfreeze { shard: "b".into() }.apply(Some(&f)).unwrap();
        assert!(!back.is_frozen("b"));
        assert_eq!(back.shards[1].primary, "127.0.0.1:2");
    }

    #[test]
    fn rules() {
        let t = init();
        let rule = ShardingRule { database: "d".into(), table: "t".into(), column: "k".into() };
        let t2 = TopologyCommand::AddRule { rule: rule.clone() }.apply(Some(&t)).unwrap();
        assert!(TopologyCommand::AddRule { rule }.apply(Some(&t2)).is_err());
        let t3 = TopologyCommand::RemoveRule { database: "d".into(), table: "t".into() }.apply(Some(&t2)).unwrap();
        assert!(t3.rules.is_empty());
        assert!(TopologyCommand::RemoveRule { database: "d".into(), table: "t".into() }.apply(Some(&t3)).is_err());
    }

    #[test]
    fn slot_ranges_parse() {
        assert_eq!(SlotRange::parse_list("0-3, 9").unwrap(), vec![SlotRange { first: 0, last: 3 }, SlotRange { first: 9, last: 9 }]);
        assert!(SlotRange::parse_list("3-1").is_err());
        assert!(SlotRange::parse_list("x").is_err());
        assert!(SlotRange::parse_list("").is_err());
    }
}
