//! Slot moves through the cutover protocol: a move is first *prepared* (its slots frozen:
//! proxies hold new work on them and drain what is in flight), then *committed* (the slots
//! belong to the new shard and are released) or *rolled back* (released where they were).
//!
//! Contract: pure functions on a topology being built by [`crate::TopologyCommand::apply`]; a
//! refusal says why in one sentence. A slot is in at most one pending move; only a prepared
//! move can be committed, so no version ever reassigns a slot that proxies were not holding.

use crate::command::{CommandError, SlotRange};
use crate::topology::{SlotMove, Topology};

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::Invalid(msg.into())
}

/// Checks that `slots` exist and returns them expanded, in order.
fn check_slots(t: &Topology, slots: &[SlotRange]) -> Result<Vec<u32>, CommandError> {
    if slots.is_empty() {
        return Err(invalid("no slots given"));
    }
    let mut out = Vec::new();
    for r in slots {
        if r.first >= t.slot_count || r.last >= t.slot_count {
            return Err(invalid(format!("slot {} does not exist; slots are 0-{}", r.last.max(r.first), t.slot_count.saturating_sub(1))));
        }
        out.extend(r.first..=r.last);
    }
    Ok(out)
}

/// Prepare: freezes `slots` for a move to shard `to`.
pub(crate) fn freeze(next: &mut Topology, slots: &[SlotRange], to: &str) -> Result<(), CommandError> {
    let idx = next.shards.iter().position(|s| s.id == to).ok_or_else(|| CommandError::UnknownShard(to.into()))?;
    let list = check_slots(next, slots)?;
    if list.iter().all(|s| next.slots[*s as usize] as usize == idx) {
        return Err(invalid(format!("shard {to:?} already owns every slot given")));
    }
    if let Some(s) = list.iter().find(|s| next.is_moving(**s)) {
        return Err(invalid(format!("slot {s} is already being moved; wait for that move to finish")));
    }
    crate::migration::check_freeze(next, slots, to)?;
    next.moving.push(SlotMove { slots: slots.to_vec(), to: to.to_string() });
    Ok(())
}

/// Rollback: releases a prepared move; the slots stay where they were.
pub(crate) fn unfreeze(next: &mut Topology, slots: &[SlotRange], to: &str) -> Result<(), CommandError> {
    let pos = find(next, slots, to)?;
    next.moving.remove(pos);
    Ok(())
}

/// Commit: the prepared move's slots now belong to `to`, and are released.
pub(crate) fn commit(next: &mut Topology, slots: &[SlotRange], to: &str) -> Result<(), CommandError> {
    let idx = next.shards.iter().position(|s| s.id == to).ok_or_else(|| CommandError::UnknownShard(to.into()))? as u16;
    let pos = find(next, slots, to)?;
    for slot in check_slots(next, slots)? {
        next.slots[slot as usize] = idx;
    }
    next.moving.remove(pos);
    crate::migration::committed(next, slots, to);
    Ok(())
}

fn find(t: &Topology, slots: &[SlotRange], to: &str) -> Result<usize, CommandError> {
    t.moving.iter().position(|m| m.slots == slots && m.to == to).ok_or_else(|| {
        invalid(format!(
            "slots {} are not prepared for a move to {to:?}; slots move through the cutover protocol: use `slotctl slots assign` (POST /slots/move)",
            SlotRange::format_list(slots)
        ))
    })
}

#[cfg(test)]
mod tests {
    use crate::command::{SlotRange, TopologyCommand};
    use crate::topology::{Shard, ShardState, Topology};

    fn topo() -> Topology {
        let shard = |id: &str, port: u16| Shard { id: id.into(), state: ShardState::Active, primary: format!("127.0.0.1:{port}"), replicas: vec![] };
        Topology::uniform(8, vec![shard("a", 1), shard("b", 2)], "a", vec![]).unwrap()
    }

    #[test]
    fn a_move_is_prepared_then_committed_or_rolled_back() {
        let t = topo();
        let slots = vec![SlotRange { first: 0, last: 1 }];
        let raw = TopologyCommand::AssignSlots { slots: slots.clone(), to: "b".into() };
        assert!(raw.apply(Some(&t)).is_err(), "an unprepared move is refused");
        let freeze = TopologyCommand::FreezeSlots { slots: slots.clone(), to: "b".into() };
        let p = freeze.apply(Some(&t)).unwrap();
        assert!(p.is_moving(0) && p.is_moving(1) && !p.is_moving(2));
        assert_eq!(p.slots, t.slots, "a prepare moves nothing yet");
        assert_eq!(p.after_moves().shard_of_slot(1), 1);
        assert!(freeze.apply(Some(&p)).is_err(), "a slot is in one move at a time");
        let other = TopologyCommand::FreezeSlots { slots: vec![SlotRange { first: 1, last: 2 }], to: "b".into() };
        assert!(other.apply(Some(&p)).is_err());
        let done = raw.apply(Some(&p)).unwrap();
        assert_eq!((done.shard_of_slot(0), done.shard_of_slot(1), done.shard_of_slot(2)), (1, 1, 0));
        assert!(done.moving.is_empty());
        let back = TopologyCommand::UnfreezeSlots { slots, to: "b".into() }.apply(Some(&p)).unwrap();
        assert_eq!(back.slots, t.slots);
        assert!(back.moving.is_empty());
    }

    #[test]
    fn bad_moves_are_refused() {
        let t = topo();
        let to_b = |first, last| TopologyCommand::FreezeSlots { slots: vec![SlotRange { first, last }], to: "b".into() };
        assert!(to_b(8, 8).apply(Some(&t)).is_err(), "no slot 8");
        assert!(to_b(4, 7).apply(Some(&t)).is_err(), "b owns them already");
        let unknown = TopologyCommand::FreezeSlots { slots: vec![SlotRange { first: 0, last: 0 }], to: "zz".into() };
        assert!(unknown.apply(Some(&t)).is_err());
        let c = Shard { id: "c".into(), state: ShardState::Active, primary: "127.0.0.1:3".into(), replicas: vec![] };
        let t = TopologyCommand::AddShard { shard: c }.apply(Some(&t)).unwrap();
        let p = TopologyCommand::FreezeSlots { slots: vec![SlotRange { first: 0, last: 0 }], to: "c".into() }.apply(Some(&t)).unwrap();
        assert!(TopologyCommand::RemoveShard { shard: "c".into() }.apply(Some(&p)).is_err(), "a move's target stays");
    }
}
