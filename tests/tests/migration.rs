//! Online slot migrations through `POST /migrations`, 3 slotgate nodes over 3 real MariaDB
//! shards: slots that hold rows move under writers, updaters and deleters through every node
//! with no client error and every acknowledged write present exactly once on its owner (none
//! left on the old owner); multi-shard reads during the copy and the catch-up count every row
//! once (the target's copies are hidden), also as prepared statements; a cancel during the
//! catch-up returns to the old layout; a leader killed during the copy, or during the catch-up,
//! is replaced by a new leader that starts the job again (writes go on, nothing is lost): the
//! former finishes the migration; a table without a primary key is refused with a sentence saying why; a split
//! onto a new shard and a merge back leave every node answering as before; DDL on a moving
//! table stops the migration with the reason and the source keeps the slots; a lost target
//! leaves it rolling back until the target answers again, then failed with nothing lost.

use mysql_async::prelude::*;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::cluster::{TestCluster, ADMIN_TOKEN};
use slotgate_tests::proxy::{sample, ProxyOptions};
use slotgate_tests::MariaDb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(20);
const SLOTS: u32 = 64;
/// Slots 0-9 belong to s0 (the uniform layout gives s0 0-21).
const MOVING: &str = "0-9";
const PRELOAD: i64 = 3000;

fn slot(k: i64) -> u32 {
    slot_of(&KeyValue::Int(k), SLOTS)
}

fn moving(k: i64) -> bool {
    slot(k) <= 9
}

fn opts(migration: &str) -> ProxyOptions {
    ProxyOptions {
        routing_extra: format!("slot_count = {SLOTS}\n[[routing.rules]]\ndatabase = \"mg\"\ntable = \"t\"\ncolumn = \"id\"\n"),
        sections: format!("[migration]\n{migration}\n"),
        ..ProxyOptions::default()
    }
}

/// `mg.t` on every shard, `PRELOAD` rows written through the proxy.
async fn setup<'a>(shards: &[&'a MariaDb], migration: &str) -> anyhow::Result<TestCluster<'a>> {
    for s in shards {
        s.exec("CREATE DATABASE mg").await?;
        s.exec("CREATE TABLE mg.t (id BIGINT PRIMARY KEY, w INT NOT NULL, note VARCHAR(40))").await?;
    }
    let c = TestCluster::start(shards, 3, 3, opts(migration)).await?;
    c.wait_leader(SECS).await?;
    for i in 0..3 {
        c.wait_version(i, 1, SECS).await?;
    }
    let mut conn = c.node(0)?.conn(Some("mg")).await?;
    for chunk in (1..=PRELOAD).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk.iter().map(|k| format!("({k}, {}, 'row {k}')", k % 7)).collect();
        conn.query_drop(format!("INSERT INTO t (id, w, note) VALUES {}", values.join(","))).await?;
    }
    Ok(c)
}

async fn migration(c: &TestCluster<'_>, via: usize, id: u64) -> anyhow::Result<Value> {
    let (s, v) = c.get(via, &format!("/migrations/{id}")).await?;
    anyhow::ensure!(s == 200, "GET /migrations/{id}: {s} {v}");
    Ok(v)
}

/// Waits until migration `id` is in one of `phases` (seen through node `via`).
async fn wait_phase(c: &TestCluster<'_>, via: usize, id: u64, phases: &[&str], within: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    loop {
        let v = migration(c, via, id).await?;
        if v["phase"] != last {
            eprintln!("migration {id}: {} {}", v["phase"], v["detail"]);
            last = v["phase"].clone();
        }
        if phases.iter().any(|p| v["phase"] == json!(p)) {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "migration {id} never reached {phases:?}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(c: &TestCluster<'_>, via: usize) -> anyhow::Result<u64> {
    let (s, v) = c.post(via, "/migrations", &json!({"slots": MOVING, "to": "s2"})).await?;
    anyhow::ensure!(s == 200, "POST /migrations: {s} {v}");
    assert_eq!(v["from"], json!("s0"), "{v}");
    v["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no id in {v}"))
}

/// Every row of every shard: id -> (shard, w).
async fn all_rows(shards: &[&MariaDb]) -> anyhow::Result<Vec<(usize, i64, i64)>> {
    let mut out = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let rows: Vec<(i64, i64)> = s.conn().await?.query("SELECT id, w FROM mg.t").await?;
        out.extend(rows.into_iter().map(|(id, w)| (i, id, w)));
    }
    Ok(out)
}

/// Rows of the moving slots on shard `s`.
async fn moving_rows_on(s: &MariaDb) -> anyhow::Result<i64> {
    let n: Option<i64> = s.conn().await?.query_first(format!("SELECT COUNT(*) FROM mg.t WHERE CRC32(id) % {SLOTS} <= 9")).await?;
    Ok(n.unwrap_or(-1))
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Updates and deletes preloaded rows of the moving slots; returns the last acknowledged `w`
/// of each updated row, the acknowledged deletes and the errors.
async fn mutator(url: String, stop: Arc<AtomicBool>) -> (BTreeMap<i64, i64>, BTreeSet<i64>, Vec<String>) {
    let (mut updated, mut deleted, mut errors) = (BTreeMap::new(), BTreeSet::new(), Vec::new());
    let mut conn = match mysql_async::Opts::from_url(&url) {
        Ok(o) => match mysql_async::Conn::new(o).await {
            Ok(c) => c,
            Err(e) => return (updated, deleted, vec![e.to_string()]),
        },
        Err(e) => return (updated, deleted, vec![e.to_string()]),
    };
    let keys: Vec<i64> = (1..=PRELOAD).filter(|k| moving(*k)).collect();
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let k = keys[(n as usize * 7) % keys.len()];
        if deleted.contains(&k) {
            tokio::task::yield_now().await;
            continue;
        }
        if k % 3 == 0 {
            match conn.exec_drop("DELETE FROM t WHERE id = ?", (k,)).await {
                Ok(()) => {
                    deleted.insert(k);
                }
                Err(e) => errors.push(format!("delete {k}: {e}")),
            }
        } else {
            let w = 1000 + n;
            match conn.exec_drop("UPDATE t SET w = ? WHERE id = ?", (w, k)).await {
                Ok(()) => {
                    updated.insert(k, w);
                }
                Err(e) => errors.push(format!("update {k}: {e}")),
            }
        }
    }
    (updated, deleted, errors)
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_with_rows_move_under_writers_through_three_nodes_and_lose_nothing() -> anyhow::Result<()> {
    slotgate_tests::logs();
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    let c = setup(&shards, "batch_rows = 200\ncatch_up_timeout_s = 60\n").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(stop.clone());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = c.node(w).map(|n| n.url(Some("mg"))).unwrap_or_default();
            tokio::spawn(slotgate_tests::load::writer(url, w as i64 + 1, stop.clone()))
        })
        .collect();
    let url = c.node(1)?.url(Some("mg"));
    let mutator = tokio::spawn(mutator(url, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = start(&c, 1).await?;
    let done = wait_phase(&c, 2, id, &["done", "failed", "cancelled"], Duration::from_secs(60)).await?;
    assert_eq!(done["phase"], json!("done"), "{done}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut inserted = Vec::new();
    for w in writers {
        let (acked, errors) = w.await?;
        assert!(errors.is_empty(), "a migration must not show clients errors: {errors:?}");
        inserted.extend(acked);
    }
    let (updated, deleted, errors) = mutator.await?;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!updated.is_empty() && !deleted.is_empty(), "the mutator ran: {} updated, {} deleted", updated.len(), deleted.len());

    // Every acknowledged row exactly once, on the shard that owns its slot now.
    let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
    let owner = |k: i64| topo["slots"][slot(k) as usize].as_u64().unwrap_or(99) as usize;
    assert!((0..=9).all(|s| topo["slots"][s] == json!(2)), "slots 0-9 belong to s2: {}", topo["slots"]);
    let rows = all_rows(&shards).await?;
    let mut seen = BTreeMap::new();
    for (shard, id, w) in &rows {
        assert!(seen.insert(*id, *w).is_none(), "row {id} is on two shards");
        assert_eq!(*shard, owner(*id), "row {id} (slot {}) is on s{shard}, not on its owner", slot(*id));
    }
    let expected: BTreeSet<i64> = (1..=PRELOAD).filter(|k| !deleted.contains(k)).chain(inserted.iter().copied()).collect();
    let got: BTreeSet<i64> = seen.keys().copied().collect();
    assert_eq!(got.len(), expected.len(), "rows present vs acknowledged");
    assert!(got == expected, "missing: {:?}, extra: {:?}", expected.difference(&got).take(5).collect::<Vec<_>>(), got.difference(&expected).take(5).collect::<Vec<_>>());
    for (k, w) in &updated {
        assert_eq!(seen.get(k), Some(w), "row {k} has its last acknowledged update");
    }
    assert_eq!(moving_rows_on(&a).await?, 0, "the cleanup left nothing on the old owner");
    // Through the proxy: the same count.
    let n: Option<i64> = c.node(2)?.conn(Some("mg")).await?.query_first("SELECT COUNT(*) FROM t").await?;
    assert_eq!(n, Some(expected.len() as i64));

    let leader = c.wait_leader(SECS).await?;
    let text = c.metrics(leader).await?;
    assert!(sample(&text, "slotgate_migration_rows_copied_total") > 0.0, "{text}");
    assert_eq!(sample(&text, "slotgate_migration_cutover_pause_seconds_count"), 1.0);
    let (_, history) = c.get(0, "/topology/history").await?;
    let phases = history.to_string();
    for p in ["\"copy\"", "catch_up", "verify", "cutover", "freeze_slots", "assign_slots", "done"] {
        assert!(phases.contains(p), "history records phase {p}: {phases}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_during_a_migration_count_every_row_once_and_a_cancel_restores_the_layout() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    // A slow copy, and a catch-up that never ends on its own (no pass is under 0 ms).
    let c = setup(&shards, "batch_rows = 50\nmax_rows_per_sec = 2000\ncatch_up_lag_ms = 0\n").await?;
    let truth = |rows: &[(usize, i64, i64)]| (rows.len() as i64, rows.iter().map(|r| r.2).sum::<i64>());
    let (count, sum) = truth(&all_rows(&shards).await?);
    assert_eq!(count, PRELOAD);

    let id = start(&c, 0).await?;
    let mut conns = Vec::new();
    for i in 0..3 {
        conns.push(c.node(i)?.conn(Some("mg")).await?);
    }
    // Until the catch-up runs, and during it: every node's answers count each row once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_copies = false;
    let mut round = 0;
    loop {
        let m = migration(&c, 0, id).await?;
        let copies = moving_rows_on(&d).await?;
        saw_copies |= copies > 0;
        for conn in &mut conns {
            let got: Option<(i64, i64)> = conn.query_first("SELECT COUNT(*), SUM(w) FROM t").await?;
            assert_eq!(got, Some((count, sum)), "text scatter while the target holds {copies} copies ({m})");
            let got: Option<i64> = conn.exec_first("SELECT COUNT(*) FROM t WHERE w >= ?", (0,)).await?;
            assert_eq!(got, Some(count), "prepared scatter");
            let ids: Vec<i64> = conn.exec("SELECT id FROM t WHERE w = ? ORDER BY id LIMIT 5 OFFSET 2", (3,)).await?;
            let want: Vec<i64> = (1..=PRELOAD).filter(|k| k % 7 == 3).skip(2).take(5).collect();
            assert_eq!(ids, want, "prepared, rewritten (LIMIT) scatter");
            let n: Vec<i64> = conn.query("SELECT COUNT(*) FROM t WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) GROUP BY w % 2 ORDER BY 1").await?;
            assert_eq!(n.iter().sum::<i64>(), 12, "multi-shard IN list");
        }
        // A write across shards: affected rows count each row once.
        round += 1;
        let r = conns[0].query_iter(format!("UPDATE t SET note = 'seen {round}' WHERE w = 5")).await?;
        assert_eq!(r.affected_rows() as i64, (1..=PRELOAD).filter(|k| k % 7 == 5).count() as i64);
        drop(r);
        if m["phase"] == json!("catch_up") && saw_copies {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the migration never reached catch_up with copies: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = migration(&c, 0, id).await?;
    assert_eq!(moving_rows_on(&d).await?, (1..=PRELOAD).filter(|k| moving(*k)).count() as i64, "the target holds every copy: {m}");

    // Cancel during the catch-up: the target's copies go, the source keeps the slots.
    let (s, v) = c.post(2, &format!("/migrations/{id}/cancel"), &json!({})).await?;
    assert_eq!(s, 200, "{v}");
    let end = wait_phase(&c, 1, id, &["cancelled", "failed", "done"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("cancelled"), "{end}");
    assert_eq!(moving_rows_on(&d).await?, 0, "the copies are deleted");
    assert_eq!(moving_rows_on(&a).await?, (1..=PRELOAD).filter(|k| moving(*k)).count() as i64, "the source kept its rows");
    let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
    assert!((0..=9).all(|s| topo["slots"][s] == json!(0)), "slots 0-9 stay on s0: {}", topo["slots"]);
    let got: Option<(i64, i64)> = conns[1].query_first("SELECT COUNT(*), SUM(w) FROM t").await?;
    assert_eq!(got, Some((count, sum)));
    let (s, list) = c.get(1, "/migrations").await?;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(|l| l.len()), Some(1), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_during_the_copy_is_replaced_and_the_migration_completes() -> anyhow::Result<()> {
    slotgate_tests::logs();
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    let mut c = setup(&shards, "batch_rows = 50\nmax_rows_per_sec = 1000\n").await?;
    let leader = c.wait_leader(SECS).await?;
    let id = start(&c, leader).await?;
    // Kill the leader while it copies.
    let deadline = Instant::now() + SECS;
    loop {
        let m = migration(&c, leader, id).await?;
        if m["progress"]["rows_copied"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the copy never started: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill(leader).await;
    let other = (leader + 1) % 3;
    let mut conn = c.node(other)?.conn(Some("mg")).await?;
    let mut acked = Vec::new();
    // Writes go on through a surviving node, on the moving slots too (a node refuses with a
    // retryable error while the meta group has no leader).
    let mut k = 10_000i64;
    let end = loop {
        k += 1;
        if insert_unless_leaderless(&mut conn, k).await? {
            acked.push(k);
        }
        let (s, m) = c.get(other, &format!("/migrations/{id}")).await?;
        if s == 200 && ["done", "failed", "cancelled"].iter().any(|p| m["phase"] == json!(p)) {
            break m;
        }
        anyhow::ensure!(k < 200_000, "the migration never ended: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(end["phase"], json!("done"), "{end}");
    assert!(end["detail"].as_str().is_some() , "{end}");
    let rows = all_rows(&shards).await?;
    let ids: BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(ids.len(), rows.len(), "no row on two shards");
    let want: BTreeSet<i64> = (1..=PRELOAD).chain(acked.iter().copied()).collect();
    assert!(ids == want, "every acknowledged row is there once ({} vs {})", ids.len(), want.len());
    assert_eq!(moving_rows_on(&a).await?, 0);
    let (_, history) = c.get(other, "/topology/history").await?;
    assert!(history.to_string().contains("restarted by node"), "the new leader restarted the job: {history}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_primary_key_is_refused_with_what_to_do() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    let c = setup(&shards, "").await?;
    for s in shards {
        s.exec("CREATE TABLE mg.log (id BIGINT, msg TEXT)").await?;
    }
    let (s, v) = c.command(0, "rule-log", json!({"kind": "add_rule", "rule": {"database": "mg", "table": "log", "column": "id"}})).await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post(1, "/migrations", &json!({"slots": MOVING, "to": "s2"})).await?;
    assert_eq!(s, 409, "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains("primary key") && e.contains("mg") && e.contains("log"), "{e}");
    let (_, list) = c.get(0, "/migrations").await?;
    assert_eq!(list, json!([]), "nothing recorded");
    // The same through slotctl's endpoint shape: unknown shard and bad slots.
    let (s, v) = c.post(0, "/migrations", &json!({"slots": MOVING, "to": "nope"})).await?;
    assert_eq!(s, 409, "{v}");
    let (s, v) = c.post(0, "/migrations", &json!({"slots": "70-80", "to": "s2"})).await?;
    assert_eq!(s, 409, "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_onto_a_new_shard_and_a_merge_back_keep_every_row_once() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let c = setup(&[&a, &b], "batch_rows = 300\n").await?;
    let answers = |c: &TestCluster<'_>, node: usize| {
        let url = c.node(node).map(|n| n.url(Some("mg"))).unwrap_or_default();
        async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
            let total: Option<(i64, i64)> = conn.query_first("SELECT COUNT(*), SUM(w) FROM t").await?;
            let groups: Vec<(i64, i64)> = conn.query("SELECT w, COUNT(*) FROM t GROUP BY w ORDER BY w").await?;
            let page: Vec<i64> = conn.exec("SELECT id FROM t WHERE w = ? ORDER BY id DESC LIMIT 4", (2,)).await?;
            anyhow::Ok((total, groups, page))
        }
    };
    let before = answers(&c, 0).await?;
    assert_eq!(before.0.map(|t| t.0), Some(PRELOAD));

    // Split s0 (slots 0-31 of 64) onto a new shard s2: its upper half (16-31) moves.
    let (s, v) = c.post(1, "/shards/split", &json!({"shard": "s0", "into": "s2", "primary": d.addr()})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["slot_list"], json!("16-31"), "{v}");
    assert_eq!((v["split"].clone(), v["retire_source"].clone()), (json!(true), json!(false)), "{v}");
    let (_, topo) = c.get(2, "/topology").await?;
    let t: slotgate_shared::Topology = serde_json::from_value(topo)?;
    if t.migrations.iter().any(|m| !m.phase.finished()) {
        assert_eq!(t.shard_activity("s0").as_deref(), Some("splitting into s2"));
    }
    let id = v["id"].as_u64().unwrap_or(0);
    let end = wait_phase(&c, 0, id, &["done", "failed", "cancelled"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("done"), "{end}");
    for node in 0..3 {
        assert_eq!(answers(&c, node).await?, before, "node {node} after the split");
    }
    let n_d: Option<i64> = d.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
    let expected_d = (1..=PRELOAD).filter(|k| (16..=31).contains(&slot(*k))).count() as i64;
    assert_eq!(n_d, Some(expected_d), "the new shard holds exactly its slots' rows");
    let left: Option<i64> = a.conn().await?.query_first(format!("SELECT COUNT(*) FROM mg.t WHERE CRC32(id) % {SLOTS} BETWEEN 16 AND 31")).await?;
    assert_eq!(left, Some(0));

    // Merge it back: s2's slots return to s0 and s2 leaves the topology.
    let (s, v) = c.post(2, "/shards/merge", &json!({"from": "s2", "into": "s0"})).await?;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_u64().unwrap_or(0);
    let end = wait_phase(&c, 0, id, &["done", "failed", "cancelled"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("done"), "{end}");
    let deadline = Instant::now() + SECS;
    loop {
        let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
        if topo["shards"].as_array().is_some_and(|s| s.len() == 2) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the merged shard was not removed: {topo}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in 0..3 {
        assert_eq!(answers(&c, node).await?, before, "node {node} after the merge");
    }
    let n_d: Option<i64> = d.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
    assert_eq!(n_d, Some(0), "the merged shard was emptied");
    // The home shard cannot be merged away.
    let (s, v) = c.post(0, "/shards/merge", &json!({"from": "s0", "into": "s1"})).await?;
    assert_eq!(s, 409, "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_during_the_catch_up_is_replaced_and_nothing_is_lost() -> anyhow::Result<()> {
    slotgate_tests::logs();
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    // The catch-up never ends on its own (no pass is under 0 ms): it is where the leader dies.
    let mut c = setup(&shards, "catch_up_lag_ms = 0\n").await?;
    let leader = c.wait_leader(SECS).await?;
    let id = start(&c, leader).await?;
    wait_phase(&c, leader, id, &["catch_up"], SECS).await?;
    c.kill(leader).await;
    let other = (leader + 1) % 3;
    let mut conn = c.node(other)?.conn(Some("mg")).await?;
    let mut acked = Vec::new();
    let moving_rows = |acked: &[i64]| (1..=PRELOAD).chain(acked.iter().copied()).filter(|k| moving(*k)).count() as i64;
    // The new leader starts the job again; writes go on meanwhile, and its new copy and
    // catch-up bring them to the target.
    let mut k = 20_000i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        k += 1;
        if insert_unless_leaderless(&mut conn, k).await? {
            acked.push(k);
        }
        let (s, h) = c.get(other, "/topology/history").await?;
        let restarted = s == 200 && h.to_string().contains("from phase catch_up");
        let (s, m) = c.get(other, &format!("/migrations/{id}")).await?;
        if restarted && s == 200 && m["phase"] == json!("catch_up") && moving_rows_on(&d).await? == moving_rows(&acked) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the new leader never caught up again: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Cancelled on the new leader: the layout is as before, with every acknowledged write.
    let (s, v) = c.post(other, &format!("/migrations/{id}/cancel"), &json!({})).await?;
    assert_eq!(s, 200, "{v}");
    let end = wait_phase(&c, other, id, &["cancelled", "failed", "done"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("cancelled"), "{end}");
    assert_eq!(moving_rows_on(&d).await?, 0, "the copies are deleted");
    assert_eq!(moving_rows_on(&a).await?, moving_rows(&acked), "the source has every row of its slots");
    let rows = all_rows(&shards).await?;
    let ids: BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(ids.len(), rows.len(), "no row on two shards");
    let want: BTreeSet<i64> = (1..=PRELOAD).chain(acked.iter().copied()).collect();
    assert!(ids == want, "every acknowledged row is there once ({} vs {})", ids.len(), want.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_on_a_moving_table_stops_the_migration_and_the_source_keeps_the_slots() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let shards = [&a, &b, &d];
    let c = setup(&shards, "catch_up_lag_ms = 0\n").await?;
    let id = start(&c, 0).await?;
    wait_phase(&c, 0, id, &["catch_up"], SECS).await?;
    // DDL through slotgate reaches every shard; the applier sees it in the source's binlog.
    let mut conn = c.node(1)?.conn(Some("mg")).await?;
    conn.query_drop("ALTER TABLE t ADD COLUMN extra INT NULL").await?;
    let end = wait_phase(&c, 2, id, &["failed", "cancelled", "done"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("failed"), "{end}");
    let detail = end["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("mg.t") && detail.contains("changed on the source") && detail.contains("retry"), "{detail}");
    assert_eq!(moving_rows_on(&d).await?, 0, "the target's copies are deleted");
    let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
    assert!((0..=9).all(|s| topo["slots"][s] == json!(0)), "slots 0-9 stay on s0: {}", topo["slots"]);
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").await?;
    assert_eq!(n, Some(PRELOAD), "every row once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_target_rolls_the_migration_back_once_it_answers_again() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    // The target is outside the cluster's configuration: the split adds it.
    let mut d = MariaDb::start().await?;
    let c = setup(&[&a, &b], "catch_up_lag_ms = 0\n").await?;
    let (s, v) = c.post(0, "/shards/split", &json!({"shard": "s0", "into": "s2", "primary": d.addr()})).await?;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_u64().unwrap_or(0);
    wait_phase(&c, 0, id, &["catch_up"], SECS).await?;
    d.kill()?;
    let stuck = wait_phase(&c, 1, id, &["rolling_back", "failed"], SECS).await?;
    assert!(stuck["detail"].as_str().is_some_and(|e| e.contains("target")), "{stuck}");
    // Reads and writes go on meanwhile: the source owns the slots.
    let mut conn = c.node(2)?.conn(Some("mg")).await?;
    conn.exec_drop("INSERT INTO t (id, w) VALUES (?, 1)", (slot_key(20),)).await?;
    d.restart().await?;
    let end = wait_phase(&c, 1, id, &["failed", "cancelled", "done"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("failed"), "{end}");
    let left: Option<i64> = d.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
    assert_eq!(left, Some(0), "the target's copies are deleted once it answers");
    let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
    assert!((16..=31).all(|s| topo["slots"][s] == json!(0)), "slots stay on s0: {}", topo["slots"]);
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").await?;
    assert_eq!(n, Some(PRELOAD + 1), "every row once");
    Ok(())
}

/// Inserts row `k`; `false` when the node refused it because the meta group had no leader
/// (1105, retryable: the leader was just killed).
async fn insert_unless_leaderless(conn: &mut mysql_async::Conn, k: i64) -> anyhow::Result<bool> {
    match conn.exec_drop("INSERT INTO t (id, w) VALUES (?, 1)", (k,)).await {
        Ok(()) => Ok(true),
        Err(mysql_async::Error::Server(e)) if e.code == 1105 && e.message.contains("lost contact") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A key (above the preloaded ones) in slot `s`.
fn slot_key(s: u32) -> i64 {
    (1_000_000..).find(|k| slot(*k) == s).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_load_is_summed_over_the_nodes_and_a_split_by_load_halves_it() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    // The preload's multi-row inserts span slots: they are not counted.
    let c = setup(&[&a, &b], "batch_rows = 300\n").await?;
    let (_, top) = c.get(2, "/slots/top").await?;
    assert_eq!(top["slots"], json!([]), "{top}");
    // Nothing counted on s1 yet: a split by load is refused with what to do.
    let (s, v) = c.post(0, "/shards/split", &json!({"shard": "s1", "into": "s3", "primary": d.addr(), "by_load": true})).await?;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("no load was counted"), "{v}");

    // Point writes on slot 3 through node 2, point reads on slot 20 through node 3, single-row
    // inserts into slot 30 through node 1 (all slots of s0, which owns 0-31).
    let hot = (1..=PRELOAD).find(|k| slot(*k) == 3).unwrap_or(0);
    let read = (1..=PRELOAD).find(|k| slot(*k) == 20).unwrap_or(0);
    let mut c2 = c.node(1)?.conn(Some("mg")).await?;
    for _ in 0..40 {
        c2.exec_drop("UPDATE t SET w = w + 1 WHERE id = ?", (hot,)).await?;
    }
    let mut c3 = c.node(2)?.conn(Some("mg")).await?;
    for _ in 0..10 {
        let _: Option<i64> = c3.exec_first("SELECT w FROM t WHERE id = ?", (read,)).await?;
    }
    let mut c1 = c.node(0)?.conn(Some("mg")).await?;
    let fresh: Vec<i64> = (1_000_000..).filter(|k| slot(*k) == 30).take(5).collect();
    for k in &fresh {
        c1.query_drop(format!("INSERT INTO t (id, w) VALUES ({k}, 1)")).await?;
    }

    let (s, top) = c.get(0, "/slots/top?limit=3").await?;
    assert_eq!(s, 200, "{top}");
    assert_eq!(top["nodes"], json!([1, 2, 3]), "{top}");
    let line = |slot: u32, statements: u64, rows: u64, share: f64| json!({"slot": slot, "shard": "s0", "statements": statements, "rows_written": rows, "share": share});
    assert_eq!(top["slots"], json!([line(3, 40, 40, 0.8), line(20, 10, 0, 0.1), line(30, 5, 5, 0.1)]), "{top}");
    assert_eq!(top["shards"][0], json!({"slot": null, "shard": "s0", "statements": 55, "rows_written": 45, "share": 1.0}), "{top}");
    assert_eq!(top["shards"][1]["statements"], json!(0), "{top}");
    let out = tokio::process::Command::new(slotgate_tests::slotctl_bin())
        .args(["--cluster", &c.cluster_urls(), "--token", ADMIN_TOKEN, "slots", "top", "--limit", "2"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("80.0%") && text.contains("10.0%") && !text.contains("30 ") && text.contains("node(s) 1, 2, 3"), "{text}");
    // Prometheus gets the node's own top by rank.
    let metrics = c.metrics(1).await?;
    assert!(metrics.contains("slotgate_slot_load_top_slot{rank=\"1\"} 3"), "{metrics}");
    assert!(metrics.contains("slotgate_slot_load_top{rank=\"1\"} 80"), "{metrics}");

    // By load, s0's upper half starts after the hot slot 3 (80 of 100): 4-31 move.
    let (s, v) = c.post(1, "/shards/split", &json!({"shard": "s0", "into": "s2", "primary": d.addr(), "by_load": true})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["slot_list"], json!("4-31"), "{v}");
    let id = v["id"].as_u64().unwrap_or(0);
    let end = wait_phase(&c, 0, id, &["done", "failed", "cancelled"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("done"), "{end}");
    let n: Option<i64> = c1.query_first("SELECT COUNT(*) FROM t").await?;
    assert_eq!(n, Some(PRELOAD + fresh.len() as i64), "every row once");
    let (_, top) = c.get(2, "/slots/top?limit=1").await?;
    assert_eq!(top["slots"][0]["shard"], json!("s0"), "slot 3 stays: {top}");
    let share_of = |id: &str| top["shards"].as_array().and_then(|s| s.iter().find(|l| l["shard"] == json!(id))).map(|l| l["share"].clone());
    assert_eq!(share_of("s2"), Some(json!(0.2)), "{top}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_stays_hot_is_split_onto_a_spare_by_the_leader() -> anyhow::Result<()> {
    let (a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let autosplit = format!(
        "batch_rows = 300\n[autosplit]\nenabled = true\nload_share = 0.7\nmin_load = 20\nfor_ms = 1500\ncheck_interval_ms = 300\n\
         [[autosplit.spares]]\nid = \"s2\"\nprimary = \"{}\"\n",
        d.addr()
    );
    let c = setup(&[&a, &b], &autosplit).await?;
    // Even load on slots 2 and 20 of s0 (which owns 0-31), none on s1: s0 carries all of it.
    let keys: Vec<i64> = [2u32, 20].iter().filter_map(|s| (1..=PRELOAD).find(|k| slot(*k) == *s)).collect();
    let mut conns = vec![c.node(0)?.conn(Some("mg")).await?, c.node(1)?.conn(Some("mg")).await?];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0u64;
    let id = loop {
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.exec_drop("UPDATE t SET w = w + 1 WHERE id = ?", (keys[i % keys.len()],)).await?;
            sent += 1;
        }
        if sent % 20 == 0 {
            let (_, list) = c.get(2, "/migrations").await?;
            if let Some(m) = list.as_array().and_then(|l| l.first()) {
                break m["id"].as_u64().unwrap_or(0);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no split started after {sent} statements");
    };
    let end = wait_phase(&c, 0, id, &["done", "failed", "cancelled"], Duration::from_secs(60)).await?;
    assert_eq!(end["phase"], json!("done"), "{end}");
    assert_eq!(end["from"], json!("s0"), "{end}");
    assert_eq!(end["to"], json!("s2"), "{end}");
    // Split by the load of the last window, about even between slots 2 and 20: slot 2 stays,
    // the cut is after it (3-31) or, when slot 20 carried more, at it (20-31).
    let first = match end["slot_list"].as_str() {
        Some("3-31") => 3,
        Some("20-31") => 20,
        other => bail!("slot 2 stays on s0 and slot 20 moves: {other:?}"),
    };
    let (_, history) = c.get(0, "/topology/history").await?;
    let by_controller: Vec<&Value> = history.as_array().map(|h| h.iter().filter(|e| e["actor"] == json!("autosplit")).collect()).unwrap_or_default();
    assert!(by_controller.iter().any(|e| e["command"]["kind"] == json!("add_shard")), "{history}");
    assert!(by_controller.iter().any(|e| e["command"]["kind"] == json!("migration_begin")), "{history}");
    let n_d: Option<i64> = d.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
    let expected = (1..=PRELOAD).filter(|k| (first..=31).contains(&slot(*k))).count() as i64;
    assert_eq!(n_d, Some(expected), "the spare holds exactly its slots' rows");
    let n: Option<i64> = conns[0].query_first("SELECT COUNT(*) FROM t").await?;
    assert_eq!(n, Some(PRELOAD), "every row once");
    // One controller action at a time, and no second split while s2 is in use.
    let (_, list) = c.get(1, "/migrations").await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_source_fails_the_migration_and_the_source_keeps_its_slots_and_rows() -> anyhow::Result<()> {
    let (mut a, b, d) = (MariaDb::start().await?, MariaDb::start().await?, MariaDb::start().await?);
    let source_rows = (1..=PRELOAD).filter(|k| slot(*k) <= 31).count() as i64;
    {
        let c = setup(&[&a, &b], "catch_up_lag_ms = 0\n").await?;
        let (s, v) = c.post(0, "/shards/split", &json!({"shard": "s0", "into": "s2", "primary": d.addr()})).await?;
        assert_eq!(s, 200, "{v}");
        let id = v["id"].as_u64().unwrap_or(0);
        wait_phase(&c, 0, id, &["catch_up"], SECS).await?;
        // The source dies under the binlog applier.
        let pid = a.pid().context("source pid")?;
        anyhow::ensure!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()?.success());
        let end = wait_phase(&c, 1, id, &["failed", "cancelled", "done"], Duration::from_secs(60)).await?;
        assert_eq!(end["phase"], json!("failed"), "{end}");
        assert!(end["detail"].as_str().is_some_and(|e| e.contains("source")), "the reason names the source: {end}");
        let copies: Option<i64> = d.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
        assert_eq!(copies, Some(0), "the target's copies are deleted");
        let (_, topo) = c.get(2, "/topology?linearizable=true").await?;
        assert!((0..=31).all(|s| topo["slots"][s] == json!(0)), "the slots stay on s0: {}", topo["slots"]);
    }
    // The source comes back with every row of its slots.
    a.restart().await?;
    let n: Option<i64> = a.conn().await?.query_first("SELECT COUNT(*) FROM mg.t").await?;
    assert_eq!(n, Some(source_rows));
    Ok(())
}
