//! Fuzz check of the meta state machine and its decoders: arbitrary bytes decoded as a log
//! entry, a request or a snapshot (as the redb store and a snapshot install decode them), and
//! arbitrary sequences of topology commands applied to a growing state.
//!
//! Properties: decoding never panics; applying never panics; a refused command changes
//! neither the topology nor the history and says why; an applied one adds exactly one
//! version and leaves a topology that passes `validate()`; a request id applied twice is
//! answered from memory; the state round-trips through its snapshot encoding.

use crate::bytes::Bytes;
use slotgate_meta::store::StoredState;
use slotgate_meta::{MetaRequest, MetaState, TypeConfig};
use slotgate_shared::{MigrationPhase, Shard, ShardState, ShardingRule, SlotRange, TopologyCommand};

pub fn check(data: &[u8]) {
    let mut b = Bytes::new(data);
    if b.u8() % 4 == 0 {
        decode(b.rest());
    } else {
        sequence(&mut b);
    }
}

fn decode(bytes: &[u8]) {
    let _ = serde_json::from_slice::<openraft::Entry<TypeConfig>>(bytes);
    let _ = serde_json::from_slice::<StoredState>(bytes);
    if let Ok(req) = serde_json::from_slice::<MetaRequest>(bytes) {
        let mut state = MetaState::default();
        let first = state.apply(&req);
        if first.refused.is_none() && state.topology.is_some() {
            if let Some(t) = &state.topology {
                assert!(t.validate().is_ok(), "an applied init left an invalid topology");
            }
        }
    }
}

const SHARDS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
const ADDRS: [&str; 4] = ["127.0.0.1:3306", "127.0.0.1:3307", "10.0.0.1:3306", "db:3306"];

fn shard_id(b: &mut Bytes<'_>) -> String {
    SHARDS[b.below(SHARDS.len())].to_string()
}

fn addr(b: &mut Bytes<'_>) -> String {
    ADDRS[b.below(ADDRS.len())].to_string()
}

fn shard(b: &mut Bytes<'_>) -> Shard {
    let state = [ShardState::Active, ShardState::Draining, ShardState::Offline][b.below(3)];
    Shard { id: shard_id(b), state, primary: addr(b), replicas: (0..b.below(3)).map(|_| addr(b)).collect() }
}

fn slots(b: &mut Bytes<'_>) -> Vec<SlotRange> {
    (0..1 + b.below(3))
        .map(|_| {
            let first = u32::from(b.u8() % 20);
            SlotRange { first, last: first + u32::from(b.u8() % 6) }
        })
        .collect()
}

fn rule(b: &mut Bytes<'_>) -> ShardingRule {
    let db = ["shop", "app"][b.below(2)];
    let table = ["orders", "users", "t"][b.below(3)];
    ShardingRule { database: db.into(), table: table.into(), column: ["id", "k"][b.below(2)].into() }
}

fn command(b: &mut Bytes<'_>) -> TopologyCommand {
    match b.u8() % 19 {
        0 => TopologyCommand::Init {
            slot_count: [0, 1, 16, 20, 1024][b.below(5)],
            shards: (0..b.below(4)).map(|_| shard(b)).collect(),
            home: shard_id(b),
            rules: (0..b.below(3)).map(|_| rule(b)).collect(),
        },
        1 => TopologyCommand::AddShard { shard: shard(b) },
        2 => TopologyCommand::RemoveShard { shard: shard_id(b) },
        3 => TopologyCommand::AddReplica { shard: shard_id(b), addr: addr(b) },
        4 => TopologyCommand::RemoveReplica { shard: shard_id(b), addr: addr(b) },
        5 => TopologyCommand::SetShardState { shard: shard_id(b), state: [ShardState::Active, ShardState::Draining, ShardState::Offline][b.below(3)] },
        6 => TopologyCommand::AssignSlots { slots: slots(b), to: shard_id(b) },
        7 => TopologyCommand::FreezeSlots { slots: slots(b), to: shard_id(b) },
        8 => TopologyCommand::UnfreezeSlots { slots: slots(b), to: shard_id(b) },
        9 => TopologyCommand::SetPrimary { shard: shard_id(b), primary: addr(b), drop_old: b.bool() },
        10 => TopologyCommand::AddRule { rule: rule(b) },
        11 => {
            let r = rule(b);
            TopologyCommand::RemoveRule { database: r.database, table: r.table }
        }
        12 => TopologyCommand::Freeze { shard: shard_id(b) },
        13 => TopologyCommand::Unfreeze { shard: shard_id(b) },
        14 => TopologyCommand::Cutover { shard: shard_id(b), primary: addr(b), drop_old: b.bool() },
        15 | 16 => TopologyCommand::MigrationBegin { slots: slots(b), to: shard_id(b), retire_source: b.bool(), split: b.bool() },
        17 => {
            use MigrationPhase::*;
            let phase = [Copy, CatchUp, Verify, Cutover, Cleanup, RollingBack, Done, Failed, Cancelled][b.below(9)];
            TopologyCommand::MigrationPhase { id: u64::from(b.u8() % 4), phase, detail: String::new() }
        }
        _ => TopologyCommand::MigrationCancel { id: u64::from(b.u8() % 4) },
    }
}

fn sequence(b: &mut Bytes<'_>) {
    let mut state = MetaState::default();
    let mut n = 0u32;
    let mut ids: Vec<String> = Vec::new();
    while !b.is_empty() && n < 64 {
        n += 1;
        let retry = !ids.is_empty() && b.u8() % 8 == 0;
        let request_id = if retry { ids[b.below(ids.len())].clone() } else { format!("r{n}") };
        if !retry {
            ids.push(request_id.clone());
        }
        let req = MetaRequest { request_id, actor: "fuzz".into(), at_ms: u64::from(n), if_version: None, command: command(b) };
        let before = state.clone();
        let resp = state.apply(&req);
        if retry {
            assert!(resp.retried, "a second request with the same id was applied again");
            assert_eq!(state.topology, before.topology, "a retried request changed the topology");
            continue;
        }
        match &resp.refused {
            Some(why) => {
                assert!(!why.is_empty(), "a refusal without a reason");
                assert_eq!(state.topology, before.topology, "a refused command changed the topology: {:?}", req.command);
                assert_eq!(state.history, before.history, "a refused command was recorded in the history");
            }
            None => {
                let t = state.topology.as_ref().unwrap_or_else(|| panic!("an applied command left no topology"));
                assert_eq!(t.version, before.version() + 1, "an applied command did not add exactly one version");
                assert_eq!(resp.version, t.version);
                if let Err(e) = t.validate() {
                    panic!("{:?} left an invalid topology: {e}", req.command);
                }
            }
        }
    }
    let encoded = serde_json::to_vec(&state).unwrap_or_else(|e| panic!("the state does not encode: {e}"));
    let decoded: MetaState = serde_json::from_slice(&encoded).unwrap_or_else(|e| panic!("the state does not decode: {e}"));
    assert_eq!(decoded, state, "the state changed through its snapshot encoding");
}
