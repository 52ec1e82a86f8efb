//! Write pause of planned switchovers under load.
//!
//! Starts a MariaDB primary with an asynchronous GTID replica (the test harness), three
//! slotgate nodes forming a meta group, and `WRITERS` clients inserting rows through the nodes
//! without pause. Then switches the shard's primary back and forth `N` times. Reports:
//! - `frozen`: prepare committed → cutover committed, as the leader measured it;
//! - `pause`: for each switchover, the longest single INSERT any writer saw while it ran
//!   (what an application notices);
//!
//! It also checks that no writer saw an error and every acknowledged row is on the final primary.
//!
//! Usage: `cargo run --release -p slotgate-bench --bin switchover_pause [-- N]` (default 20).

use mysql_async::prelude::*;
use serde_json::json;
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRITERS: usize = 6;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20);
    let (p, r) = MariaDb::start_with_replica().await?;
    p.exec("CREATE DATABASE b").await?;
    p.exec("CREATE TABLE b.t (id BIGINT PRIMARY KEY, w INT)").await?;
    r.wait_caught_up(&p).await?;
    let c = TestCluster::start(&[&p], 3, 3, ProxyOptions::default()).await?;
    c.wait_leader(Duration::from_secs(20)).await?;
    for i in 0..3 {
        c.wait_version(i, 1, Duration::from_secs(20)).await?;
    }
    let (s, v) = c.command(0, "replica", json!({"kind": "add_replica", "shard": "s0", "addr": r.addr()})).await?;
    anyhow::ensure!(s == 200, "{v}");

    let stop = Arc::new(AtomicBool::new(false));
    // Longest INSERT (µs) seen since the last reset, across writers.
    let longest = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = c.node(w % 3)?.url(Some("b"));
        let (stop, longest) = (stop.clone(), longest.clone());
        writers.push(tokio::spawn(slotgate_tests::load::timed_writer(url, w as i64, 0, stop, longest, |_| true)));
    }
    // A new meta leader waits out one lease (3 s in the test cluster) before its first cutover.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (mut frozen, mut pause) = (Vec::new(), Vec::new());
    let targets = [r.addr(), p.addr()];
    for k in 0..n {
        tokio::time::sleep(Duration::from_millis(300)).await;
        longest.store(0, Ordering::Relaxed);
        let (s, v) = c.post(k % 3, "/switchover", &json!({"shard": "s0", "to": targets[k % 2]})).await?;
        anyhow::ensure!(s == 200, "switchover {k}: {v}");
        let version = v["version"].as_u64().unwrap_or(0);
        for i in 0..3 {
            c.wait_version(i, version, Duration::from_secs(20)).await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        frozen.push(v["frozen_ms"].as_f64().unwrap_or(0.0));
        pause.push(longest.load(Ordering::Relaxed) as f64 / 1000.0);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut errors) = (Vec::new(), 0);
    for w in writers {
        let (a, e) = w.await??;
        acked.extend(a);
        errors += e;
    }
    let final_primary = if n % 2 == 1 { &r } else { &p };
    let rows: Option<i64> = final_primary.conn().await?.query_first("SELECT COUNT(*) FROM b.t").await?;
    println!("switchovers: {n}, writers: {WRITERS} through 3 nodes, async GTID replication, debug logging off");
    println!("acknowledged writes: {}, on the final primary: {:?}, client errors: {errors}", acked.len(), rows);
    println!("frozen (prepare → cutover commit)   p50 {:.1} ms  p99 {:.1} ms", pct(&mut frozen, 0.5), pct(&mut frozen, 0.99));
    println!("write pause (longest INSERT)        p50 {:.1} ms  p99 {:.1} ms", pct(&mut pause, 0.5), pct(&mut pause, 0.99));
    Ok(())
}
