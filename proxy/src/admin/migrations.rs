//! The online-migration endpoints: parse requests, run the checks, record the migration; the
//! leader's job runner (`jobs/`) does the work.
//!
//! Contract (every node forwards to the meta leader, which holds the live progress):
//! - `POST /migrations {"slots": "0-63", "to": "s3"}`: runs the checks of
//!   [`crate::jobs::migration::check`] (refused with 409 and a sentence saying what to do),
//!   then commits `migration_begin`; answers the new migration.
//! - `GET /migrations`, `GET /migrations/{id}`: the migrations the topology records (active
//!   and the last finished ones) with the live progress of the jobs this leader runs.
//! - `POST /migrations/{id}/cancel`: commits `migration_cancel`; the job rolls back at its
//!   next step (before the cutover's commit only).
//! - `POST /shards/split {"shard", "into", "primary"?, "replicas"?, "by_load"?}`: adds `into`
//!   when missing and migrates the upper half of `shard`'s slots to it (half the slots, or the
//!   upper slots carrying half the measured load); `POST /shards/merge {"from",
//!   "into"}`: migrates every slot of `from` to `into`, whose job removes `from` when done.

use crate::jobs::migration::Progress;
use crate::jobs::Jobs;
use slotgate_shared::api::{CommandRequest, MergeRequest, MigrateRequest, MigrationView, SlotCount, SplitRequest};
use std::collections::BTreeMap;
use slotgate_shared::{Migration, Shard, ShardState, SlotRange, TopologyCommand};

/// Checks and records a migration.
pub async fn begin(jobs: &Jobs, req: &MigrateRequest) -> Result<MigrationView, String> {
    let slots = SlotRange::parse_list(&req.slots).map_err(|e| format!("bad slots {:?}: {e}", req.slots))?;
    start(jobs, slots, &req.to, Kind::Migrate, req.actor.clone()).await
}

/// `POST /shards/split`: adds the new shard when missing, then migrates the upper half of
/// the source's slots to it: half by count, or (with `load`, the per-slot counters summed
/// over the nodes) the upper slots that carry about half the load.
pub async fn split(jobs: &Jobs, req: &SplitRequest, load: Option<&BTreeMap<u32, SlotCount>>) -> Result<MigrationView, String> {
    let t = topology(jobs)?;
    let source = t.shards.iter().position(|s| s.id == req.shard).ok_or_else(|| format!("unknown shard {:?}", req.shard))?;
    let owned: Vec<u32> = (0..t.slot_count).filter(|s| t.shard_of_slot(*s) == source).collect();
    if owned.len() < 2 {
        return Err(format!("shard {:?} owns {} slot(s); a split needs at least 2", req.shard, owned.len()));
    }
    let cut = match load {
        None => owned.len() / 2,
        Some(sums) => super::slot_load::load_split_point(&owned, sums).ok_or_else(|| {
            format!("no load was counted on the slots of shard {:?} yet; split it by slot count (without --by-load), or wait for traffic", req.shard)
        })?,
    };
    let half = SlotRange::compress(owned[cut..].iter().copied());
    match t.shards.iter().position(|s| s.id == req.into) {
        Some(i) if (0..t.slot_count).any(|s| t.shard_of_slot(s) == i) => {
            return Err(format!("shard {:?} already owns slots; split into a new or empty shard", req.into));
        }
        Some(_) => {}
        None => {
            let primary = req.primary.clone().ok_or_else(|| format!("shard {:?} does not exist: give its --primary", req.into))?;
            let shard = Shard { id: req.into.clone(), state: ShardState::Active, primary, replicas: req.replicas.clone() };
            submit(jobs, TopologyCommand::AddShard { shard }, req.actor.clone()).await?;
        }
    }
    start(jobs, half, &req.into, Kind::Split, req.actor.clone()).await
}

/// `POST /shards/merge`: migrates every slot of `from` to `into`; the job removes `from` once
/// the migration is done.
pub async fn merge(jobs: &Jobs, req: &MergeRequest) -> Result<MigrationView, String> {
    let t = topology(jobs)?;
    let from = t.shards.iter().position(|s| s.id == req.from).ok_or_else(|| format!("unknown shard {:?}", req.from))?;
    if from == t.home_index() {
        return Err(format!("shard {:?} is the home shard (it holds the unsharded tables); merge another shard into it instead", req.from));
    }
    let owned = SlotRange::compress((0..t.slot_count).filter(|s| t.shard_of_slot(*s) == from));
    if owned.is_empty() {
        return Err(format!("shard {:?} owns no slots; remove it with slotctl shard remove", req.from));
    }
    start(jobs, owned, &req.into, Kind::Merge, req.actor.clone()).await
}

/// What a migration is started for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Migrate,
    Split,
    Merge,
}

async fn start(jobs: &Jobs, slots: Vec<SlotRange>, to: &str, kind: Kind, actor: Option<String>) -> Result<MigrationView, String> {
    let t = topology(jobs)?;
    let first = slots.first().map(|r| r.first).ok_or("no slots given")?;
    if first >= t.slot_count {
        return Err(format!("slot {first} does not exist; slots are 0-{}", t.slot_count.saturating_sub(1)));
    }
    let from = t.shards.get(t.shard_of_slot(first)).map(|s| s.id.clone()).ok_or("the slot has no owner")?;
    if !t.shards.iter().any(|s| s.id == to) {
        return Err(format!("unknown shard {to:?}; add it first (slotctl shard add)"));
    }
    // The pure checks (one source, no other migration or move on these slots) before the
    // checks that talk to the shards.
    let command = TopologyCommand::MigrationBegin { slots: slots.clone(), to: to.to_string(), retire_source: kind == Kind::Merge, split: kind == Kind::Split };
    command.apply(Some(&t)).map_err(|e| e.to_string())?;
    crate::jobs::migration::check(&jobs.sw, &t, &from, to).await.map_err(|e| e.to_string())?;
    submit(jobs, command, actor).await?;
    // The leader answers after applying: its state has the new migration.
    let t = topology(jobs)?;
    let m = t.migrations.iter().rev().find(|m| m.slots == slots && m.to == to).cloned().ok_or("the migration was not recorded")?;
    Ok(view(m, None))
}

fn topology(jobs: &Jobs) -> Result<slotgate_shared::Topology, String> {
    jobs.sw.meta.current().topology.clone().ok_or_else(|| "the meta group has no topology yet: run slotctl init".to_string())
}

async fn submit(jobs: &Jobs, command: TopologyCommand, actor: Option<String>) -> Result<(), String> {
    let req = CommandRequest { request_id: None, actor: Some(actor.unwrap_or_else(|| "slotctl".into())), if_version: None, force: false, command };
    jobs.sw.meta.submit(req).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Every migration the topology records.
pub async fn list(jobs: &Jobs) -> Vec<MigrationView> {
    let t = jobs.sw.meta.current().topology.clone();
    let mut out = Vec::new();
    for m in t.map(|t| t.migrations).unwrap_or_default() {
        let p = jobs.progress(m.id).await;
        out.push(view(m, p));
    }
    out
}

/// Asks migration `id` to roll back.
pub async fn cancel(jobs: &Jobs, id: u64, actor: Option<String>) -> Result<MigrationView, String> {
    submit(jobs, TopologyCommand::MigrationCancel { id }, actor).await?;
    let m = topology(jobs)?.migration(id).cloned().ok_or_else(|| format!("no migration {id}"))?;
    let p = jobs.progress(id).await;
    Ok(view(m, p))
}

fn view(m: Migration, progress: Option<Progress>) -> MigrationView {
    MigrationView { slot_list: SlotRange::format_list(&m.slots), migration: m, progress }
}
