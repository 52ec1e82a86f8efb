//! Commit → all-nodes-swapped latency of topology versions in a 3-node meta group.
//!
//! Starts three slotgate nodes in this process (real sockets, real Raft over HTTP, durable
//! storage in a temp dir; the shards' addresses are never dialled because pools connect
//! lazily), then submits `N` topology commands through the leader one after another. For each:
//! - `commit`: time until the leader answered (committed and applied on the leader);
//! - `all swapped`: time until every node's router holds the new version (`ArcSwap`), measured
//!   from the same start.
//!
//! Usage: `cargo run --release -p slotgate-bench --bin swap_latency [-- N]` (default N = 200).

use anyhow::Context;
use slotgate_proxy::server::NodeOptions;
use slotgate_proxy::{Config, Node, NodeHandle, Users};
use slotgate_shared::api::CommandRequest;
use slotgate_shared::{ShardingRule, TopologyCommand};
use std::time::{Duration, Instant};

fn config(i: usize, ports: &[u16], dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut text = format!(
        "[node]\nid = {}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:{}\"\nusers_file = \"unused\"\n\
         [backend]\nuser = \"u\"\npassword = \"p\"\n\
         [[shards]]\nid = \"s0\"\nprimary = \"127.0.0.1:9\"\n[routing]\nhome_shard = \"s0\"\n\
         [meta]\ndata_dir = \"{}\"\ncluster_secret = \"bench-cluster-secret-0123\"\nheartbeat_ms = 100\n\
         election_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n",
        i + 1,
        ports[i],
        dir.join(format!("n{i}")).display()
    );
    for (v, p) in ports.iter().enumerate() {
        text.push_str(&format!("[[meta.voters]]\nid = {}\naddr = \"127.0.0.1:{p}\"\n", v + 1));
    }
    let c = Config::parse(&text).map_err(anyhow::Error::msg)?;
    c.validate()?;
    Ok(c)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let mut ports = Vec::new();
    for _ in 0..3 {
        ports.push(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    }
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..3 {
        nodes.push(Node::start_with(config(i, &ports, dir.path())?, Users::default(), NodeOptions::default()).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.iter().any(|h| h.topology().version() < 1) {
        anyhow::ensure!(Instant::now() < deadline, "the meta group did not initialise");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = loop {
        let found = nodes.iter().position(|h| h.meta().is_some_and(|m| m.raft().metrics().borrow().current_leader == Some(m.id())));
        if let Some(l) = found {
            break l;
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let meta = nodes[leader].meta().cloned().context("meta member")?;
    let (mut commit, mut all) = (Vec::new(), Vec::new());
    for k in 0..n {
        let table = format!("t{}", k / 2);
        let command = if k % 2 == 0 {
            TopologyCommand::AddRule { rule: ShardingRule { database: "b".into(), table, column: "id".into() } }
        } else {
            TopologyCommand::RemoveRule { database: "b".into(), table }
        };
        let req = CommandRequest { request_id: None, actor: Some("bench".into()), if_version: None, force: true, command };
        let start = Instant::now();
        let reply = meta.submit(req).await?;
        commit.push(start.elapsed().as_secs_f64() * 1000.0);
        while nodes.iter().any(|h| h.topology().version() < reply.version) {
            tokio::task::yield_now().await;
        }
        all.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("topology commands: {n}, 3 voters on loopback, fsync'd redb storage");
    println!("commit (leader answered)      p50 {:.2} ms  p99 {:.2} ms", percentile(&mut commit, 0.5), percentile(&mut commit, 0.99));
    println!("all 3 nodes swapped            p50 {:.2} ms  p99 {:.2} ms", percentile(&mut all, 0.5), percentile(&mut all, 0.99));
    let extra: Vec<f64> = all.iter().zip(&commit).map(|(a, c)| (a - c).max(0.0)).collect();
    let mut extra = extra;
    println!("swap after commit (extra)      p50 {:.2} ms  p99 {:.2} ms", percentile(&mut extra, 0.5), percentile(&mut extra, 0.99));
    for h in nodes {
        h.shutdown().await;
    }
    Ok(())
}
