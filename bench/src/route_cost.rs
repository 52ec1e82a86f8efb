//! Parse + route cost per statement, measured in-process (no network):
//! `cargo run --release -p slotgate-bench --bin route_cost [iterations]`.
//!
//! Prints ns/statement for: a parse-cache miss (every point select has a new literal),
//! a cache hit (the same text, as prepared statements and repeated queries are), routing a
//! prepared statement by its bound value, and a scatter rewrite with ORDER BY/LIMIT.

use mysql_common::value::Value;
use slotgate_proxy::router::{self, ParseCache, RouteContext};
use slotgate_shared::{Shard, ShardState, ShardingRule, Topology};
use std::time::Instant;

fn topology() -> anyhow::Result<Topology> {
    let shards = (0..4)
        .map(|i| Shard { id: format!("s{i}"), state: ShardState::Active, primary: format!("127.0.0.1:{}", 3306 + i), replicas: vec![] })
        .collect();
    let rules = (1..=4)
        .map(|i| ShardingRule { database: "sbtest".into(), table: format!("sbtest{i}"), column: "id".into() })
        .collect();
    Ok(Topology::uniform(1024, shards, "s0", rules)?)
}

fn measure(name: &str, iterations: u64, mut f: impl FnMut(u64) -> anyhow::Result<()>) -> anyhow::Result<()> {
    for i in 0..iterations / 10 {
        f(i)?;
    }
    let start = Instant::now();
    for i in 0..iterations {
        f(i)?;
    }
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    println!("| {name} | {ns:.0} |");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let topo = topology()?;
    let no_params: [Value; 0] = [];
    let ctx = RouteContext { database: Some("sbtest"), params: &no_params };
    println!("| statement | ns per parse + route |\n|---|---:|");
    let cache = ParseCache::new(10_000);
    measure("point select, parse-cache miss (new literal each time)", iterations, |i| {
        let sql = format!("SELECT c FROM sbtest1 WHERE id={}", i % 1_000_000);
        let parsed = cache.parse(&sql)?;
        router::route(&parsed, &topo, &ctx)?;
        Ok(())
    })?;
    measure("point select, parse-cache hit", iterations, |_| {
        let parsed = cache.parse("SELECT c FROM sbtest1 WHERE id=42")?;
        router::route(&parsed, &topo, &ctx)?;
        Ok(())
    })?;
    let prepared = cache.parse("SELECT c FROM sbtest1 WHERE id=?")?;
    measure("prepared point select, routed by bound value", iterations, |i| {
        let params = [Value::Int(i as i64)];
        let ctx = RouteContext { database: Some("sbtest"), params: &params };
        router::route(&prepared, &topo, &ctx)?;
        Ok(())
    })?;
    measure("scatter SELECT with ORDER BY / LIMIT (cache hit, rewrite)", iterations / 4, |_| {
        let parsed = cache.parse("SELECT id, c FROM sbtest1 WHERE k > 10 ORDER BY c DESC LIMIT 10 OFFSET 5")?;
        router::route(&parsed, &topo, &ctx)?;
        Ok(())
    })?;
    Ok(())
}
