//! `slotctl slots migrate <ranges> --to <shard> [--wait]` and `slotctl migration
//! list|show <id>|cancel <id>`: online slot migrations, run by the meta leader.
//!
//! Contract: `migrate` makes one `POST /migrations` (the leader checks the shards and records
//! the migration) and prints its id; with `--wait` it then polls `GET /migrations/{id}` until
//! the migration ends, printing each phase once, and fails unless it ends `done`. `list`,
//! `show` and `cancel` make one call each. `shard split` and `shard merge` start their
//! migration the same way (`POST /shards/split|merge`).

use super::{emit, emit_json, Ctx};
use crate::table;
use anyhow::{bail, Result};
use slotgate_shared::api::{MigrateRequest, MigrationView};
use serde::Serialize;
use slotgate_shared::{MigrationPhase, SlotRange};
use std::time::Duration;

pub async fn migrate(ctx: &Ctx, slots: &[SlotRange], to: String, wait: bool) -> Result<()> {
    let req = MigrateRequest { slots: SlotRange::format_list(slots), to, actor: Some(ctx.actor.clone()) };
    start(ctx, "/migrations", &req, wait).await
}

/// Starts a migration (`POST path`: a migrate, split or merge request), then follows it with
/// `wait`.
pub async fn start<B: Serialize>(ctx: &Ctx, path: &str, body: &B, wait: bool) -> Result<()> {
    let reply = ctx.client.post(path, body).await?;
    let m: MigrationView = reply.parse()?;
    if ctx.json && !wait {
        emit_json(&reply);
        return Ok(());
    }
    let id = m.migration.id;
    if !ctx.json {
        emit(&format!(
            "migration {id} started: slots {} from shard {} to shard {}{}; follow it with `slotctl migration show {id}`\n",
            m.slot_list,
            m.migration.from,
            m.migration.to,
            if m.migration.retire_source { format!(" (shard {} is removed after)", m.migration.from) } else { String::new() }
        ));
    }
    if !wait {
        return Ok(());
    }
    let mut last = None;
    loop {
        let reply = ctx.client.get(&format!("/migrations/{id}")).await?;
        let m: MigrationView = reply.parse()?;
        if last != Some(m.migration.phase) {
            if !ctx.json {
                emit(&format!("{:<12} {}\n", m.migration.phase.name(), m.migration.detail));
            }
            last = Some(m.migration.phase);
        }
        if m.migration.phase.finished() {
            if ctx.json {
                emit_json(&reply);
            }
            if m.migration.phase != MigrationPhase::Done {
                bail!("migration {id} ended {}: {}", m.migration.phase.name(), m.migration.detail);
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn list(ctx: &Ctx) -> Result<()> {
    let reply = ctx.client.get("/migrations").await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let all: Vec<MigrationView> = reply.parse()?;
    if all.is_empty() {
        emit("no migrations\n");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|m| {
            let p = m.progress.clone().unwrap_or_default();
            vec![
                m.migration.id.to_string(),
                m.slot_list.clone(),
                m.migration.from.clone(),
                m.migration.to.clone(),
                m.migration.phase.name().to_string() + if m.migration.cancel && !m.migration.phase.finished() { " (cancelling)" } else { "" },
                format!("{}/{}", p.rows_copied, p.rows_estimated),
                format!("{:.0}", p.lag_seconds),
                m.migration.detail.clone(),
            ]
        })
        .collect();
    emit(&table::render(&["ID", "SLOTS", "FROM", "TO", "PHASE", "COPIED", "LAG_S", "DETAIL"], &rows));
    Ok(())
}

pub async fn show(ctx: &Ctx, id: u64) -> Result<()> {
    let reply = ctx.client.get(&format!("/migrations/{id}")).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let m: MigrationView = reply.parse()?;
    emit(&describe(&m));
    Ok(())
}

pub async fn cancel(ctx: &Ctx, id: u64) -> Result<()> {
    let reply = ctx.client.post(&format!("/migrations/{id}/cancel"), &serde_json::json!({ "actor": ctx.actor })).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let m: MigrationView = reply.parse()?;
    emit(&format!("migration {id} is cancelling: its job rolls back and shard {} keeps slots {}\n", m.migration.from, m.slot_list));
    Ok(())
}

/// `show`'s text: one `key: value` line each.
fn describe(m: &MigrationView) -> String {
    let mut out = format!(
        "migration {}\nslots:    {}\nfrom:     {}\nto:       {}\nphase:    {}{}\ndetail:   {}\n",
        m.migration.id,
        m.slot_list,
        m.migration.from,
        m.migration.to,
        m.migration.phase.name(),
        if m.migration.cancel && !m.migration.phase.finished() { " (cancel requested)" } else { "" },
        m.migration.detail
    );
    match &m.progress {
        Some(p) => {
            out += &format!("copied:   {} of about {} rows\n", p.rows_copied, p.rows_estimated);
            if let Some(eta) = p.eta_seconds {
                out += &format!("eta:      {eta} s\n");
            }
            out += &format!("binlog:   {} events, {} rows applied, lag {:.0} s\n", p.binlog_events, p.binlog_rows_applied, p.lag_seconds);
            if let Some(ms) = p.cutover_pause_ms {
                out += &format!("cutover:  writes on the slots paused {ms} ms\n");
            }
            if p.rows_deleted > 0 {
                out += &format!("deleted:  {} rows\n", p.rows_deleted);
            }
        }
        None => out += "progress: not reported (the leader's job has not started, or the leader changed)\n",
    }
    out
}
