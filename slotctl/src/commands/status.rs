//! `slotctl status`: the meta group as one node sees it, then the topology.
//!
//! Contract: asks `GET /cluster` then `GET /topology` (each through the client's failover, so
//! the two answers may come from different nodes); a missing topology is reported, not an
//! error. `--json` prints `{"cluster":<GET /cluster>,"topology":<GET /topology or null>}`.

use super::member::members_table;
use super::topology::shards_table;
use super::{emit, Ctx};
use anyhow::Result;
use slotgate_shared::api::ClusterStatus;
use slotgate_shared::Topology;

pub async fn status(ctx: &Ctx) -> Result<()> {
    let cluster_reply = ctx.client.get("/cluster").await?;
    let cluster: ClusterStatus = cluster_reply.parse()?;
    let topology = ctx.topology().await?;
    if ctx.json {
        let topo_json = topology.as_ref().map(|(r, _)| r.body.trim()).unwrap_or("null");
        emit(&format!("{{\"cluster\":{},\"topology\":{topo_json}}}\n", cluster_reply.body.trim()));
        return Ok(());
    }
    let mut out = cluster_text(&cluster, &cluster_reply.url);
    out.push('\n');
    out.push_str(&topology_text(topology.as_ref().map(|(_, t)| t)));
    emit(&out);
    Ok(())
}

/// The answering node, leader, term, log indexes and the members table.
fn cluster_text(c: &ClusterStatus, url: &str) -> String {
    let idx = |i: Option<u64>| i.map_or_else(|| "-".to_string(), |i| i.to_string());
    let url = url.strip_suffix("/cluster").unwrap_or(url);
    let mut out = format!("node {} ({}) at {url}\n", c.node, c.role);
    match c.leader {
        Some(l) => out.push_str(&format!("leader: node {l}, term {}\n", c.term)),
        None => out.push_str(&format!("leader: none (election in progress or no quorum), term {}\n", c.term)),
    }
    out.push_str(&format!(
        "log: last index {}, commit index {}, applied index {}\n",
        idx(c.last_log_index),
        idx(c.commit_index),
        idx(c.applied_index)
    ));
    out.push_str("\nmembers:\n");
    out.push_str(&members_table(c));
    if c.leader != Some(c.node) && !c.members.is_empty() {
        out.push_str("(matched and lag are known only on the leader; point --cluster at it to see them)\n");
    }
    out
}

fn topology_text(t: Option<&Topology>) -> String {
    let Some(t) = t else {
        return "no topology yet; run `slotctl init`\n".to_string();
    };
    format!(
        "topology version {}: {} slots, {} shards, {} sharding rules\n{}",
        t.version,
        t.slot_count,
        t.shards.len(),
        t.rules.len(),
        shards_table(t)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotgate_shared::api::MemberStatus;

    #[test]
    fn cluster_text_on_a_follower() {
        let c = ClusterStatus {
            node: 2,
            role: "follower".into(),
            leader: Some(1),
            term: 4,
            last_log_index: Some(10),
            commit_index: Some(9),
            applied_index: None,
            topology_version: 3,
            members: vec![
                MemberStatus { id: 1, addr: "a:9033".into(), kind: "voter".into(), matched_index: None, lag: None },
                MemberStatus { id: 2, addr: "b:9033".into(), kind: "voter".into(), matched_index: None, lag: None },
            ],
        };
        assert_eq!(
            cluster_text(&c, "http://b:9033/cluster"),
            "node 2 (follower) at http://b:9033\n\
             leader: node 1, term 4\n\
             log: last index 10, commit index 9, applied index -\n\
             \n\
             members:\n\
             ID  ADDR    KIND            MATCHED  LAG\n\
             1   a:9033  voter (leader)  -        -\n\
             2   b:9033  voter           -        -\n\
             (matched and lag are known only on the leader; point --cluster at it to see them)\n"
        );
        assert_eq!(topology_text(None), "no topology yet; run `slotctl init`\n");
    }
}
