//! `slotctl member add|promote|remove`: change the meta group's membership; `slotctl
//! switchover|failover`: ask the meta leader to switch a shard's primary; `slotctl slots
//! assign`: ask it to move slots (both through the cutover protocol).
//!
//! Contract: each subcommand makes one call (`POST /cluster/members`,
//! `POST /cluster/members/{id}/promote`, `DELETE /cluster/members/{id}`) and prints a line
//! saying what happened, then the members table of the returned `ClusterStatus`.

use super::{emit, emit_json, Ctx};
use crate::client::Reply;
use crate::table;
use anyhow::Result;
use slotgate_shared::api::{AddMember, ClusterStatus};

pub async fn add(ctx: &Ctx, id: u64, addr: String) -> Result<()> {
    let reply = ctx.client.post("/cluster/members", &AddMember { id, addr: addr.clone() }).await?;
    report(
        ctx,
        &reply,
        format!("member {id} added as a learner at {addr}; once its lag is 0, run `slotctl member promote {id}`"),
    )
}

pub async fn promote(ctx: &Ctx, id: u64) -> Result<()> {
    let reply = ctx.client.post_empty(&format!("/cluster/members/{id}/promote")).await?;
    report(ctx, &reply, format!("member {id} is now a voter"))
}

pub async fn remove(ctx: &Ctx, id: u64) -> Result<()> {
    let reply = ctx.client.delete(&format!("/cluster/members/{id}")).await?;
    report(ctx, &reply, format!("member {id} removed"))
}

/// `slotctl switchover <shard> [--to <replica>]` (`POST /switchover`, led by the meta leader).
pub async fn switchover(ctx: &Ctx, shard: String, to: Option<String>) -> Result<()> {
    cutover(ctx, "/switchover", "switched over", shard, to).await
}

/// `slotctl failover <shard>` (`POST /failover`): the unplanned path, forced.
pub async fn failover(ctx: &Ctx, shard: String) -> Result<()> {
    cutover(ctx, "/failover", "failed over", shard, None).await
}

/// `slotctl slots assign <ranges> --to <shard> [--force]` (`POST /slots/move`, led by the
/// meta leader: prepare, drain, acknowledge, commit).
pub async fn move_slots(ctx: &Ctx, slots: &[slotgate_shared::SlotRange], to: String, force: bool) -> Result<()> {
    let list = slotgate_shared::SlotRange::format_list(slots);
    // One idempotency key for every attempt the client makes (it retries on other nodes
    // after a timeout): a retry never starts a second move.
    let key = super::new_request_id();
    let reply = ctx.client.post("/slots/move", &serde_json::json!({ "slots": list, "to": to, "force": force, "request_id": key })).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let r: serde_json::Value = reply.parse()?;
    if r["retried"] == true {
        emit(&format!("slots {list} now belong to shard {to} (moved by an earlier attempt of this command) at topology version {}", r["version"]));
        return Ok(());
    }
    emit(&format!("slots {list} now belong to shard {to} at topology version {} (paused {} ms)", r["version"], r["frozen_ms"]));
    Ok(())
}

async fn cutover(ctx: &Ctx, path: &str, done: &str, shard: String, to: Option<String>) -> Result<()> {
    let key = super::new_request_id();
    let reply = ctx.client.post(path, &serde_json::json!({ "shard": shard, "to": to, "request_id": key })).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let r: serde_json::Value = reply.parse()?;
    if r["retried"] == true {
        emit(&format!("{done} shard {shard} (by an earlier attempt of this command) at topology version {}", r["version"]));
        return Ok(());
    }
    emit(&format!(
        "{done} shard {}: primary {} -> {} at topology version {} (writes paused {} ms)",
        r["shard"].as_str().unwrap_or(&shard),
        r["old_primary"].as_str().unwrap_or("?"),
        r["new_primary"].as_str().unwrap_or("?"),
        r["version"],
        r["frozen_ms"]
    ));
    Ok(())
}

fn report(ctx: &Ctx, reply: &Reply, line: String) -> Result<()> {
    if ctx.json {
        emit_json(reply);
        return Ok(());
    }
    let status: ClusterStatus = reply.parse()?;
    emit(&format!("{line}\n{}", members_table(&status)));
    Ok(())
}

/// ID, ADDR, KIND (the leader marked), MATCHED, LAG; `-` where the node does not know.
pub fn members_table(c: &ClusterStatus) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = c
        .members
        .iter()
        .map(|m| {
            let kind = if c.leader == Some(m.id) { format!("{} (leader)", m.kind) } else { m.kind.clone() };
            vec![m.id.to_string(), m.addr.clone(), kind, opt(m.matched_index), opt(m.lag)]
        })
        .collect();
    table::render(&["ID", "ADDR", "KIND", "MATCHED", "LAG"], &rows)
}
