//! `slotctl member add|promote|remove`: change the meta group's membership.
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
