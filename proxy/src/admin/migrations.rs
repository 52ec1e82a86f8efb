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

use crate::jobs::migration::Progress;
use crate::jobs::Jobs;
use slotgate_shared::api::{CommandRequest, MigrateRequest, MigrationView};
use slotgate_shared::{Migration, SlotRange, TopologyCommand};

/// Checks and records a migration.
pub async fn begin(jobs: &Jobs, req: &MigrateRequest) -> Result<MigrationView, String> {
    let slots = SlotRange::parse_list(&req.slots).map_err(|e| format!("bad slots {:?}: {e}", req.slots))?;
    let t = jobs.sw.meta.current().topology.clone().ok_or("the meta group has no topology yet: run slotctl init")?;
    let first = slots.first().map(|r| r.first).ok_or("no slots given")?;
    if first >= t.slot_count {
        return Err(format!("slot {first} does not exist; slots are 0-{}", t.slot_count.saturating_sub(1)));
    }
    let from = t.shards.get(t.shard_of_slot(first)).map(|s| s.id.clone()).ok_or("the slot has no owner")?;
    if !t.shards.iter().any(|s| s.id == req.to) {
        return Err(format!("unknown shard {:?}; add it first (slotctl shard add)", req.to));
    }
    // The pure checks (one source, no other migration or move on these slots) before the
    // checks that talk to the shards.
    TopologyCommand::MigrationBegin { slots: slots.clone(), to: req.to.clone() }.apply(Some(&t)).map_err(|e| e.to_string())?;
    crate::jobs::migration::check(&jobs.sw, &t, &from, &req.to).await.map_err(|e| e.to_string())?;
    let actor = req.actor.clone().unwrap_or_else(|| "slotctl".into());
    let command = TopologyCommand::MigrationBegin { slots: slots.clone(), to: req.to.clone() };
    jobs.sw.meta.submit(CommandRequest { request_id: None, actor: Some(actor), if_version: None, force: false, command }).await.map_err(|e| e.to_string())?;
    // The leader answers after applying: its state has the new migration.
    let t = jobs.sw.meta.current().topology.clone().ok_or("the meta group has no topology")?;
    let m = t.migrations.iter().rev().find(|m| m.slots == slots && m.to == req.to).cloned().ok_or("the migration was not recorded")?;
    Ok(view(m, None))
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
    let command = TopologyCommand::MigrationCancel { id };
    let req = CommandRequest { request_id: None, actor: Some(actor.unwrap_or_else(|| "slotctl".into())), if_version: None, force: false, command };
    jobs.sw.meta.submit(req).await.map_err(|e| e.to_string())?;
    let m = jobs.sw.meta.current().topology.as_ref().and_then(|t| t.migration(id).cloned()).ok_or_else(|| format!("no migration {id}"))?;
    let p = jobs.progress(id).await;
    Ok(view(m, p))
}

fn view(m: Migration, progress: Option<Progress>) -> MigrationView {
    MigrationView { slot_list: SlotRange::format_list(&m.slots), migration: m, progress }
}
