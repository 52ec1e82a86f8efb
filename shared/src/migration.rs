//! Online slot migrations as the topology records them: which slots move from which shard to
//! which, and the phase the leader's job reached, so that a new leader resumes (or rolls back)
//! the job from the last recorded phase, and proxies know which shards hold rows of slots they
//! do not own (copies on the target before the cutover, leftovers on the source until cleanup).
//!
//! Contract: pure functions on a topology being built by [`crate::TopologyCommand::apply`].
//! A slot is in at most one active migration; phases move only forwards (or back to `copy` on a
//! restart, or to `rolling_back`); `cleanup` is entered only by the cutover's commit
//! (`assign_slots`), in the same version that gives the slots to the target, so the shard
//! holding foreign rows changes atomically with ownership.

use crate::command::{CommandError, SlotRange};
use crate::topology::{ShardState, Topology};
use serde::{Deserialize, Serialize};

/// How many finished migrations the topology keeps for `slotctl migration list`.
pub const KEEP_FINISHED: usize = 16;

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationPhase {
    /// Checks passed; rows are being copied from a consistent snapshot of the source.
    Copy,
    /// The target applies the source's binlog from the snapshot's position.
    CatchUp,
    /// Checksums of source and target at one binlog position are compared.
    Verify,
    /// Slots frozen (or about to be): the last events are applied, then the owner changes.
    Cutover,
    /// The target owns the slots; their rows are deleted from the source in batches.
    Cleanup,
    /// Stopped before the cutover: the target's copies are being deleted.
    RollingBack,
    Done,
    /// Rolled back after an error (the detail says which); the source kept the slots.
    Failed,
    /// Rolled back at the operator's request; the source kept the slots.
    Cancelled,
}

impl MigrationPhase {
    pub fn name(self) -> &'static str {
        match self {
            MigrationPhase::Copy => "copy",
            MigrationPhase::CatchUp => "catch_up",
            MigrationPhase::Verify => "verify",
            MigrationPhase::Cutover => "cutover",
            MigrationPhase::Cleanup => "cleanup",
            MigrationPhase::RollingBack => "rolling_back",
            MigrationPhase::Done => "done",
            MigrationPhase::Failed => "failed",
            MigrationPhase::Cancelled => "cancelled",
        }
    }

    /// Every phase, in order (metric values are indices in this list).
    pub const ALL: [MigrationPhase; 9] = [
        MigrationPhase::Copy,
        MigrationPhase::CatchUp,
        MigrationPhase::Verify,
        MigrationPhase::Cutover,
        MigrationPhase::Cleanup,
        MigrationPhase::RollingBack,
        MigrationPhase::Done,
        MigrationPhase::Failed,
        MigrationPhase::Cancelled,
    ];

    pub fn finished(self) -> bool {
        matches!(self, MigrationPhase::Done | MigrationPhase::Failed | MigrationPhase::Cancelled)
    }

    /// Before the cutover's commit: the source owns the slots, the target holds copies.
    pub fn before_commit(self) -> bool {
        matches!(self, MigrationPhase::Copy | MigrationPhase::CatchUp | MigrationPhase::Verify | MigrationPhase::Cutover | MigrationPhase::RollingBack)
    }
}

/// One migration of slots from one shard to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub id: u64,
    pub slots: Vec<SlotRange>,
    pub from: String,
    pub to: String,
    pub phase: MigrationPhase,
    /// Why the job is where it is (an error, a restart, the verification's result).
    #[serde(default)]
    pub detail: String,
    /// The operator asked to cancel; the job rolls back at its next step.
    #[serde(default)]
    pub cancel: bool,
    /// A merge: once done, the source shard (which then owns no slot) is removed.
    #[serde(default)]
    pub retire_source: bool,
    /// Started by a shard split (`shard split`, or the automatic split).
    #[serde(default)]
    pub split: bool,
}

impl Migration {
    pub fn covers(&self, slot: u32) -> bool {
        self.slots.iter().any(|r| r.first <= slot && slot <= r.last)
    }
}

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::Invalid(msg.into())
}

/// The active migration covering `slot`, if any.
pub(crate) fn active_on(t: &Topology, slot: u32) -> Option<&Migration> {
    t.migrations.iter().find(|m| !m.phase.finished() && m.covers(slot))
}

/// `migration_begin`: records a new migration in phase `copy`.
pub(crate) fn begin(next: &mut Topology, slots: &[SlotRange], to: &str, retire_source: bool, split: bool) -> Result<(), CommandError> {
    let target = next.shards.iter().position(|s| s.id == to).ok_or_else(|| CommandError::UnknownShard(to.into()))?;
    if next.shards[target].state != ShardState::Active {
        return Err(invalid(format!("shard {to:?} is not active; set it active before moving slots to it")));
    }
    if slots.is_empty() {
        return Err(invalid("no slots given"));
    }
    let mut source = None;
    for slot in SlotRange::expand(slots) {
        if slot >= next.slot_count {
            return Err(invalid(format!("slot {slot} does not exist; slots are 0-{}", next.slot_count.saturating_sub(1))));
        }
        if next.is_moving(slot) {
            return Err(invalid(format!("slot {slot} is being moved; wait for that move to finish")));
        }
        if let Some(m) = active_on(next, slot) {
            return Err(invalid(format!("slot {slot} is already in migration {} ({}); wait for it or cancel it", m.id, m.phase.name())));
        }
        let owner = next.shard_of_slot(slot);
        if owner == target {
            return Err(invalid(format!("shard {to:?} already owns slot {slot}")));
        }
        match source {
            None => source = Some(owner),
            Some(s) if s != owner => {
                return Err(invalid(format!(
                    "the slots belong to shards {:?} and {:?}; migrate the slots of one source shard at a time",
                    next.shards[s].id, next.shards[owner].id
                )))
            }
            Some(_) => {}
        }
    }
    let from = next.shards[source.unwrap_or(next.home as usize)].id.clone();
    next.migration_seq += 1;
    let id = next.migration_seq;
    next.migrations.push(Migration { id, slots: slots.to_vec(), from, to: to.to_string(), phase: MigrationPhase::Copy, detail: String::new(), cancel: false, retire_source, split });
    prune(next);
    Ok(())
}

/// `migration_phase`: the job moved on.
pub(crate) fn set_phase(next: &mut Topology, id: u64, phase: MigrationPhase, detail: &str) -> Result<(), CommandError> {
    let m = next.migrations.iter_mut().find(|m| m.id == id).ok_or_else(|| invalid(format!("no migration {id}; `slotctl migration list` shows them")))?;
    use MigrationPhase::*;
    let legal = match (m.phase, phase) {
        (from, _) if from.finished() => false,
        (_, Cleanup) => false,
        (Copy | CatchUp | Verify | Cutover, Copy | CatchUp | Verify | Cutover | RollingBack) => true,
        (Cleanup, Done) => true,
        (RollingBack, Failed | Cancelled) => true,
        _ => false,
    };
    if !legal {
        return Err(invalid(format!("migration {id} cannot go from {} to {}", m.phase.name(), phase.name())));
    }
    m.phase = phase;
    m.detail = detail.chars().take(2000).collect();
    prune(next);
    Ok(())
}

/// `migration_cancel`: asks the job to roll back (only before the cutover's commit).
pub(crate) fn cancel(next: &mut Topology, id: u64) -> Result<(), CommandError> {
    let m = next.migrations.iter_mut().find(|m| m.id == id).ok_or_else(|| invalid(format!("no migration {id}; `slotctl migration list` shows them")))?;
    if m.phase.finished() {
        return Err(invalid(format!("migration {id} has already finished ({})", m.phase.name())));
    }
    if !m.phase.before_commit() {
        return Err(invalid(format!(
            "migration {id} has committed its cutover: shard {:?} owns the slots now; migrate them back with `slotctl slots migrate {} --to {}`",
            m.to,
            SlotRange::format_list(&m.slots),
            m.from
        )));
    }
    if m.cancel {
        return Err(invalid(format!("migration {id} is already being cancelled")));
    }
    m.cancel = true;
    Ok(())
}

/// Checks a `freeze_slots`: slots in an active migration are frozen only by that migration's
/// cutover.
pub(crate) fn check_freeze(t: &Topology, slots: &[SlotRange], to: &str) -> Result<(), CommandError> {
    for slot in SlotRange::expand(slots) {
        if let Some(m) = active_on(t, slot) {
            if !(m.phase == MigrationPhase::Cutover && m.slots == slots && m.to == to) {
                return Err(invalid(format!("slot {slot} is in migration {} ({}); wait for it or cancel it", m.id, m.phase.name())));
            }
        }
    }
    Ok(())
}

/// After an `assign_slots` commit: the migration whose cutover it was enters `cleanup`.
pub(crate) fn committed(next: &mut Topology, slots: &[SlotRange], to: &str) {
    if let Some(m) = next.migrations.iter_mut().find(|m| m.phase == MigrationPhase::Cutover && m.slots == slots && m.to == to) {
        m.phase = MigrationPhase::Cleanup;
        m.detail = "cutover committed; deleting the moved rows from the source".into();
    }
}

/// Keeps every active migration and the last [`KEEP_FINISHED`] finished ones.
fn prune(t: &mut Topology) {
    let finished = t.migrations.iter().filter(|m| m.phase.finished()).count();
    let mut drop = finished.saturating_sub(KEEP_FINISHED);
    t.migrations.retain(|m| {
        if drop > 0 && m.phase.finished() {
            drop -= 1;
            return false;
        }
        true
    });
}

impl Topology {
    /// Slots whose rows shard `idx` holds without owning them (sorted): a migration's copies
    /// on its target before the cutover, its leftovers on its source until cleanup ends.
    /// Statements that read or write rows without naming their key must not see those.
    pub fn foreign_slots(&self, idx: usize) -> Vec<u32> {
        let Some(id) = self.shards.get(idx).map(|s| s.id.as_str()) else { return vec![] };
        let mut out: Vec<u32> = Vec::new();
        for m in self.migrations.iter().filter(|m| !m.phase.finished()) {
            let holder = if m.phase.before_commit() { &m.to } else { &m.from };
            if holder == id {
                out.extend(SlotRange::expand(&m.slots));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether any shard holds rows of slots it does not own.
    pub fn has_foreign_rows(&self) -> bool {
        self.migrations.iter().any(|m| !m.phase.finished())
    }

    /// The migration `id`.
    pub fn migration(&self, id: u64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::TopologyCommand;
    use crate::topology::Shard;

    fn topo() -> Topology {
        let shard = |id: &str, port: u16| Shard { id: id.into(), state: ShardState::Active, primary: format!("127.0.0.1:{port}"), replicas: vec![] };
        let t = Topology::uniform(8, vec![shard("a", 1), shard("b", 2)], "a", vec![]).unwrap();
        TopologyCommand::AddShard { shard: shard("c", 3) }.apply(Some(&t)).unwrap()
    }

    fn r(first: u32, last: u32) -> Vec<SlotRange> {
        vec![SlotRange { first, last }]
    }

    #[test]
    fn a_migration_goes_through_its_phases_and_moves_foreign_rows_with_ownership() {
        let t = topo();
        let t = TopologyCommand::MigrationBegin { slots: r(0, 1), to: "c".into(), retire_source: false, split: false }.apply(Some(&t)).unwrap();
        assert_eq!(t.shard_activity("c").as_deref(), Some("receiving from a"));
        assert_eq!(t.shard_activity("a").as_deref(), Some("migrating to c"));
        assert_eq!(t.shard_activity("b"), None);
        let m = t.migration(1).unwrap().clone();
        assert_eq!((m.from.as_str(), m.phase), ("a", MigrationPhase::Copy));
        assert_eq!(t.foreign_slots(2), vec![0, 1], "the target holds copies it does not own");
        assert!(t.foreign_slots(0).is_empty());
        let again = TopologyCommand::MigrationBegin { slots: r(1, 2), to: "c".into(), retire_source: false, split: false }.apply(Some(&t));
        assert!(again.is_err(), "a slot is in one migration at a time");
        let mv = TopologyCommand::FreezeSlots { slots: r(0, 1), to: "c".into() };
        assert!(mv.apply(Some(&t)).is_err(), "a migrating slot is frozen only by its cutover");
        let phase = |t: &Topology, p| TopologyCommand::MigrationPhase { id: 1, phase: p, detail: String::new() }.apply(Some(t));
        assert!(phase(&t, MigrationPhase::Cleanup).is_err(), "cleanup comes only with the commit");
        let t = phase(&t, MigrationPhase::CatchUp).unwrap();
        let t = phase(&t, MigrationPhase::Cutover).unwrap();
        let t = mv.apply(Some(&t)).unwrap();
        let t = TopologyCommand::AssignSlots { slots: r(0, 1), to: "c".into() }.apply(Some(&t)).unwrap();
        assert_eq!(t.migration(1).unwrap().phase, MigrationPhase::Cleanup);
        assert_eq!(t.shard_of_slot(0), 2);
        assert_eq!(t.foreign_slots(0), vec![0, 1], "the source holds leftovers until cleanup ends");
        assert!(t.foreign_slots(2).is_empty());
        assert!(TopologyCommand::MigrationCancel { id: 1 }.apply(Some(&t)).is_err(), "no cancel after the commit");
        let t = phase(&t, MigrationPhase::Done).unwrap();
        assert!(!t.has_foreign_rows());
        assert!(phase(&t, MigrationPhase::Copy).is_err(), "a finished migration stays finished");
    }

    #[test]
    fn bad_migrations_are_refused_and_cancel_rolls_back() {
        let t = topo();
        let begin = |slots, to: &str| TopologyCommand::MigrationBegin { slots, to: to.into(), retire_source: false, split: false }.apply(Some(&t));
        assert!(begin(r(3, 4), "c").is_err(), "slots of two shards");
        assert!(begin(r(4, 5), "b").is_err(), "b owns them");
        assert!(begin(r(9, 9), "c").is_err(), "no slot 9");
        assert!(begin(r(0, 0), "zz").is_err());
        let t = begin(r(0, 0), "c").unwrap();
        let t = TopologyCommand::MigrationCancel { id: 1 }.apply(Some(&t)).unwrap();
        assert!(t.migration(1).unwrap().cancel);
        let t = TopologyCommand::MigrationPhase { id: 1, phase: MigrationPhase::RollingBack, detail: "cancelled".into() }.apply(Some(&t)).unwrap();
        assert_eq!(t.foreign_slots(2), vec![0], "copies stay foreign until deleted");
        let t = TopologyCommand::MigrationPhase { id: 1, phase: MigrationPhase::Cancelled, detail: String::new() }.apply(Some(&t)).unwrap();
        assert!(!t.has_foreign_rows());
        assert_eq!(t.shard_of_slot(0), 0);
        assert!(TopologyCommand::RemoveShard { shard: "c".into() }.apply(Some(&t)).is_ok());
    }
}
