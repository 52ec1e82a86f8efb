//! Online slot migration under load: the write pause of its cutover and its copy rate.
//!
//! Starts two MariaDB shards (the test harness) and three slotgate nodes forming a meta group,
//! loads `ROWS` rows, and first copies the rows of the moving slots with a plain
//! `mariadb-dump --single-transaction --where ... | mariadb` into another database of the
//! target, as the baseline copy rate. Then, with `WRITERS` clients inserting rows through the
//! three nodes without pause, migrates the slots back and forth `N` times. Reports:
//! - copy rate: rows of the moving slots / time of the copy phase (history timestamps), and its
//!   ratio to the dump's rate measured in the same run;
//! - cutover pause as the leader measured it (freeze committed → owner committed);
//! - write pause: per migration, the longest single INSERT into the moving slots any writer
//!   saw while the cutover ran (what an application notices).
//!
//! It also checks that no writer saw an error and every acknowledged row is on its owner once.
//!
//! Usage: `cargo run --release -p slotgate-bench --bin migration_cutover [-- N [ROWS]]`
//! (defaults 6 and 100000).

use mysql_async::prelude::*;
use serde_json::{json, Value};
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: usize = 6;
const SLOTS: u32 = 64;
const MOVING: &str = "0-15";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn moving(k: i64) -> bool {
    slot_of(&KeyValue::Int(k), SLOTS) <= 15
}

/// Milliseconds between the history entries of migration `id` entering `from` and `to`.
fn phase_ms(history: &Value, id: u64, from: &str, to: &str) -> Option<f64> {
    let at = |phase: &str| {
        history.as_array()?.iter().rev().find(|e| e["command"]["kind"] == json!("migration_phase") && e["command"]["id"] == json!(id) && e["command"]["phase"] == json!(phase)).and_then(|e| e["at_ms"].as_f64())
    };
    Some(at(to)? - at(from)?)
}

/// The dump baseline: rows of the moving slots from `src` into database `dumpcopy` of `dst`.
fn dump_copy(src: &MariaDb, dst: &MariaDb) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let where_ = format!("CRC32(id) % {SLOTS} <= 15");
    let mut dump = std::process::Command::new("mariadb-dump")
        .args(["-h", src.host(), "-P", &src.port().to_string(), "-u", src.user(), &format!("-p{}", src.password())])
        .args(["--single-transaction", "--skip-lock-tables", "--where", &where_, "mg", "t"])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = dump.stdout.take().ok_or_else(|| anyhow::anyhow!("no dump output"))?;
    let load = std::process::Command::new("mariadb")
        .args(["-h", dst.host(), "-P", &dst.port().to_string(), "-u", dst.user(), &format!("-p{}", dst.password()), "dumpcopy"])
        .stdin(out)
        .status()?;
    anyhow::ensure!(dump.wait()?.success() && load.success(), "mariadb-dump | mariadb failed");
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slotgate_tests::logs();
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(6);
    let rows: i64 = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    for s in [&a, &b] {
        s.exec("CREATE DATABASE mg").await?;
        s.exec("CREATE TABLE mg.t (id BIGINT PRIMARY KEY, w INT NOT NULL, note VARCHAR(64))").await?;
    }
    b.exec("CREATE DATABASE dumpcopy").await?;
    let opts = ProxyOptions {
        routing_extra: format!("slot_count = {SLOTS}\n[[routing.rules]]\ndatabase = \"mg\"\ntable = \"t\"\ncolumn = \"id\"\n"),
        ..ProxyOptions::default()
    };
    let c = TestCluster::start(&[&a, &b], 3, 3, opts).await?;
    c.wait_leader(Duration::from_secs(20)).await?;
    for i in 0..3 {
        c.wait_version(i, 1, Duration::from_secs(20)).await?;
    }
    // Slots 0-31 belong to s0: load the rows there directly.
    let mut conn = a.conn().await?;
    let keys: Vec<i64> = (1..).filter(|k| slot_of(&KeyValue::Int(*k), SLOTS) < 32).take(rows as usize).collect();
    for chunk in keys.chunks(2000) {
        let values: Vec<String> = chunk.iter().map(|k| format!("({k}, {}, 'a row of some forty characters, {k}')", k % 7)).collect();
        conn.query_drop(format!("INSERT INTO mg.t VALUES {}", values.join(","))).await?;
    }
    let moving_rows = keys.iter().filter(|k| moving(**k)).count() as f64;
    eprintln!("loaded {rows} rows; dumping the {moving_rows} rows of slots {MOVING}");
    let dump = dump_copy(&a, &b)?;
    eprintln!("dump | load took {dump:?}");
    let dump_rate = moving_rows / dump.as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    // Longest INSERT into the moving slots (µs) since the last reset, across writers.
    let longest = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = c.node(w % 3)?.url(Some("mg"));
        let (stop, longest) = (stop.clone(), longest.clone());
        writers.push(tokio::spawn(slotgate_tests::load::timed_writer(url, w as i64, 1_000_000_000, stop, longest, moving)));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (mut cutover, mut pause, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..n {
        let to = if k % 2 == 0 { "s1" } else { "s0" };
        let (s, v) = c.post(k % 3, "/migrations", &json!({"slots": MOVING, "to": to})).await?;
        anyhow::ensure!(s == 200, "migration {k}: {v}");
        let id = v["id"].as_u64().unwrap_or(0);
        // The pause is measured around the cutover only.
        let mut armed = false;
        let deadline = Instant::now() + Duration::from_secs(600);
        let end = loop {
            let (_, m) = c.get(0, &format!("/migrations/{id}")).await?;
            anyhow::ensure!(Instant::now() < deadline, "migration {k} did not end in 600 s: {m}");
            if !armed && (m["phase"] == json!("verify") || m["phase"] == json!("cutover")) {
                longest.store(0, Ordering::Relaxed);
                armed = true;
            }
            if ["done", "failed", "cancelled"].iter().any(|p| m["phase"] == json!(p)) {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        anyhow::ensure!(end["phase"] == json!("done"), "migration {k}: {end}");
        eprintln!("migration {k} to {to}: {}", end["progress"]);
        pause.push(longest.load(Ordering::Relaxed) as f64 / 1000.0);
        cutover.push(end["progress"]["cutover_pause_ms"].as_f64().unwrap_or(f64::NAN));
        let (_, history) = c.get(0, "/topology/history?limit=1000").await?;
        let copied = end["progress"]["rows_copied"].as_f64().unwrap_or(0.0);
        if let Some(ms) = phase_ms(&history, id, "copy", "catch_up") {
            rates.push(copied / (ms / 1000.0));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut errors) = (Vec::new(), 0);
    for w in writers {
        let (got, e) = w.await??;
        acked.extend(got);
        errors += e;
    }
    let mut total = 0i64;
    for s in [&a, &b] {
        let n: Option<i64> = s.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
        total += n.unwrap_or(0);
    }
    println!("migrations: {n} of slots {MOVING} ({moving_rows} rows at the start), {WRITERS} writers through 3 nodes, {rows} rows loaded");
    println!("acknowledged writes: {}, rows on the shards: {total} (expected {}), client errors: {errors}", acked.len(), rows + acked.len() as i64);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!("copy rate (copy phase)              {:.0} rows/s; mariadb-dump | mariadb {:.0} rows/s; ratio {:.2}", mean(&rates), dump_rate, mean(&rates) / dump_rate);
    println!("cutover (freeze → owner committed)  p50 {:.1} ms  p99 {:.1} ms", pct(&mut cutover, 0.5), pct(&mut cutover, 0.99));
    println!("write pause (longest INSERT)        p50 {:.1} ms  p99 {:.1} ms", pct(&mut pause, 0.5), pct(&mut pause, 0.99));
    Ok(())
}
