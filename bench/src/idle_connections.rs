//! Memory of one slotgate node holding many idle client connections (issue #12 target:
//! 10 000 idle clients, half of them `autocommit=0` as PyMySQL and SQLAlchemy open them,
//! with `pool_max = 16`: resident memory ≤ 200 MB).
//!
//! Starts a MariaDB (the test harness) and one slotgate node as a process (the release
//! binary beside this one), opens N client connections (mysql_async; every second one runs
//! `SET autocommit = 0` at connect), then reads the node's VmRSS from /proc: before, with
//! every connection open and idle, and after closing them. Checks that the clients got
//! answers (a `SELECT 1` on a sample of them, an `autocommit=0` one among them running a
//! transaction) and that the shard saw at most `pool_max` connections from the node.
//!
//! Usage (the file descriptor limit must cover N on both sides):
//! `cargo build --release -p slotgate-proxy -p slotgate-bench && ulimit -n 25000 &&
//!  target/release/idle_connections [N]` (default 10000).

use anyhow::Context;
use mysql_async::prelude::*;
use slotgate_tests::cluster::free_port;
use slotgate_tests::proxy::{config_text, ProxyOptions, PASSWORD, USER};
use slotgate_tests::MariaDb;
use std::time::{Duration, Instant};

const POOL_MAX: usize = 16;

/// (VmRSS, VmHWM) of `pid`, in KiB.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let db = MariaDb::start().await?;
    db.exec("CREATE DATABASE b").await?;
    db.exec("CREATE TABLE b.t (id BIGINT PRIMARY KEY, w INT)").await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let admin = free_port()?;
    let users = dir.path().join("users.toml");
    let opts = ProxyOptions {
        listen: Some(format!("127.0.0.1:{port}")),
        admin_listen: Some(format!("127.0.0.1:{admin}")),
        node_extra: format!("max_connections = {}\n", n + 100),
        backend_extra: format!("pool_max = {POOL_MAX}\n"),
        ..ProxyOptions::default()
    };
    let (config, users_text) = config_text(&[&db], &opts, &users.display().to_string())?;
    std::fs::write(&users, users_text)?;
    let config_path = dir.path().join("slotgate.toml");
    std::fs::write(&config_path, config)?;
    let bin = std::env::current_exe()?.parent().context("bench binary directory")?.join("slotgate");
    anyhow::ensure!(bin.exists(), "{} is missing: cargo build --release -p slotgate-proxy", bin.display());
    let mut node = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("node.log"))?)
        .kill_on_drop(true)
        .spawn()?;
    let pid = node.id().context("node pid")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = |autocommit_off: bool| {
        let mut b = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some(USER)).pass(Some(PASSWORD)).db_name(Some("b")).prefer_socket(false);
        if autocommit_off {
            b = b.init(vec!["SET autocommit = 0"]);
        }
        mysql_async::Opts::from(b)
    };
    loop {
        if mysql_async::Conn::new(url(false)).await.is_ok() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the node did not accept clients (log {})", dir.path().join("node.log").display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_before, _) = memory(pid)?;

    // Open them, 200 at a time.
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let opening: Vec<_> = chunk.iter().map(|i| mysql_async::Conn::new(url(i % 2 == 1))).collect();
        for c in futures_util::future::join_all(opening).await {
            conns.push(c.context("a client connection was refused")?);
        }
    }
    let opened = started.elapsed();
    // Idle: let the node settle its buffers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, hwm) = memory(pid)?;

    // They answer: a sample runs a statement, an autocommit=0 one a whole transaction.
    for c in conns.iter_mut().step_by((n / 50).max(1)) {
        let one: Option<i64> = c.query_first("SELECT 1").await?;
        anyhow::ensure!(one == Some(1), "a client got no answer");
    }
    let tx = conns.get_mut(1).context("at least 2 connections")?;
    tx.query_drop("INSERT INTO t (id, w) VALUES (1, 1)").await?;
    tx.query_drop("COMMIT").await?;
    let backend: Option<(String, u64)> = db.conn().await?.query_first("SHOW STATUS LIKE 'Threads_connected'").await?;
    let backend = backend.map(|(_, v)| v).unwrap_or(0);
    anyhow::ensure!(backend <= POOL_MAX as u64 + 2, "the shard saw {backend} connections (pool_max {POOL_MAX})");

    for c in conns.drain(..) {
        drop(c);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_after, _) = memory(pid)?;
    let per_conn = (rss_idle.saturating_sub(rss_before)) as f64 / n as f64;
    println!("idle_connections: {n} clients ({} with autocommit=0), pool_max {POOL_MAX}, opened in {:.1} s", n / 2, opened.as_secs_f64());
    println!("| node RSS before | with {n} idle clients | peak (VmHWM) | after closing | per client | shard connections |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.1} MB | {:.1} MB | {:.1} MB | {:.1} MB | {:.1} KB | {backend} (incl. the bench's own) |",
        mb(rss_before),
        mb(rss_idle),
        mb(hwm),
        mb(rss_after),
        per_conn
    );
    let _ = node.kill().await;
    anyhow::ensure!(mb(rss_idle) <= 200.0, "resident memory {:.1} MB is above the 200 MB target", mb(rss_idle));
    Ok(())
}
