//! Slot moves through the cutover protocol, 3 slotgate nodes over 2 real MariaDB shards:
//! statements on the moving slot are held and then go to the new owner, statements on other
//! slots of the same shard are not held, a move not acknowledged within its budget rolls back
//! (held work resumes on the old owner), a transaction that outlives the drain timeout is
//! rolled back with a retryable error (1213, 40001), and writers through every node while
//! slots move back and forth lose nothing and never reach the old owner after a move.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(20);
const SLOTS: u32 = 64;

fn opts(node_extra: &str) -> ProxyOptions {
    ProxyOptions {
        routing_extra: format!("slot_count = {SLOTS}\n[[routing.rules]]\ndatabase = \"sm\"\ntable = \"t\"\ncolumn = \"id\"\n"),
        node_extra: node_extra.to_string(),
        ..ProxyOptions::default()
    }
}

fn slot(k: i64) -> u32 {
    slot_of(&KeyValue::Int(k), SLOTS)
}

/// Keys (from `from` on) in slot `s`.
fn keys_in(s: u32, from: i64, n: usize) -> Vec<i64> {
    (from..).filter(|k| slot(*k) == s).take(n).collect()
}

async fn setup<'a>(a: &'a MariaDb, b: &'a MariaDb, node_extra: &str) -> anyhow::Result<TestCluster<'a>> {
    for s in [a, b] {
        s.exec("CREATE DATABASE sm").await?;
        s.exec("CREATE TABLE sm.t (id BIGINT PRIMARY KEY, w INT, at DATETIME(6) NOT NULL DEFAULT NOW(6))").await?;
    }
    let c = TestCluster::start(&[a, b], 3, 3, opts(node_extra)).await?;
    c.wait_leader(SECS).await?;
    for i in 0..3 {
        c.wait_version(i, 1, SECS).await?;
    }
    Ok(c)
}

async fn count(db: &MariaDb, filter: &str) -> anyhow::Result<i64> {
    let n: Option<i64> = db.conn().await?.query_first(format!("SELECT COUNT(*) FROM sm.t WHERE {filter}")).await?;
    Ok(n.unwrap_or(-1))
}

async fn moving(c: &TestCluster<'_>, node: usize) -> anyhow::Result<bool> {
    let (_, t) = c.get(node, "/topology").await?;
    Ok(t["moving"].as_array().is_some_and(|m| !m.is_empty()))
}

/// Starts moving `slots` to s1 through node `via` (forced) and returns once node `watch`
/// shows the move prepared; the task yields the HTTP status and answer.
async fn start_move(c: &TestCluster<'_>, via: usize, slots: &str, watch: usize) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<(u16, Value)>>> {
    let url = format!("http://127.0.0.1:{}/slots/move", c.admin_port(via));
    let body = json!({"slots": slots, "to": "s1", "force": true});
    let mover = tokio::spawn(async move {
        let r = reqwest::Client::new().post(url).bearer_auth(slotgate_tests::cluster::ADMIN_TOKEN).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await?))
    });
    let deadline = Instant::now() + SECS;
    while !moving(c, watch).await? {
        anyhow::ensure!(Instant::now() < deadline, "the move was never prepared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(mover)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_holds_only_its_slots_and_aborts_what_outlives_the_drain() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    let c = setup(&a, &b, "drain_timeout_ms = 1500\n").await?;
    // Slot 3 and slot 5 both belong to s0 (slots 0-31) under the uniform split.
    let (held_slot, other_slot) = (3u32, 5u32);
    let k = keys_in(held_slot, 1, 3);
    let other = keys_in(other_slot, 1, 1)[0];

    // A transaction through node 0 writes the moving slot on s0 and stays open.
    let mut tx = c.node(0)?.conn(Some("sm")).await?;
    tx.query_drop("BEGIN").await?;
    tx.query_drop(format!("INSERT INTO t (id, w) VALUES ({}, 0)", k[0])).await?;

    // Move the slot through node 1 (forwarded to the leader); it waits for that transaction.
    let started = Instant::now();
    let mover = start_move(&c, 1, &held_slot.to_string(), 2).await?;

    // Another slot of s0 is not held: the write is done while the move is still prepared.
    let mut n2 = c.node(2)?.conn(Some("sm")).await?;
    n2.query_drop(format!("INSERT INTO t (id, w) VALUES ({other}, 2)")).await?;
    assert!(moving(&c, 2).await?, "the other slot's write had to wait for the move");
    assert_eq!(count(&a, &format!("id = {other}")).await?, 1);

    // The moving slot is held, then goes to the new owner.
    let held = {
        let url = c.node(2)?.url(Some("sm"));
        let key = k[1];
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
            conn.query_drop(format!("INSERT INTO t (id, w) VALUES ({key}, 2)")).await?;
            Ok::<_, anyhow::Error>(Instant::now())
        })
    };
    let (status, reply) = mover.await??;
    assert_eq!(status, 200, "{reply}");
    let done = held.await??;
    assert!(done >= started + Duration::from_millis(1400), "the held write waited for the drain timeout");
    assert_eq!((count(&a, &format!("id = {}", k[1])).await?, count(&b, &format!("id = {}", k[1])).await?), (0, 1));

    // The transaction that outlived the drain was rolled back: a retryable error, no row.
    let err = tx.query_drop("COMMIT").await.unwrap_err();
    match err {
        mysql_async::Error::Server(e) => {
            assert_eq!((e.code, e.state.as_str()), (1213, "40001"), "{e:?}");
            assert!(e.message.contains("cutover"), "{e:?}");
        }
        other => panic!("expected ERROR 1213, got {other:?}"),
    }
    assert_eq!(count(&a, &format!("id = {}", k[0])).await? + count(&b, &format!("id = {}", k[0])).await?, 0);
    // Retried, it goes to the new owner.
    tx.query_drop("BEGIN").await?;
    tx.query_drop(format!("INSERT INTO t (id, w) VALUES ({}, 0)", k[0])).await?;
    tx.query_drop("COMMIT").await?;
    assert_eq!((count(&a, &format!("id = {}", k[0])).await?, count(&b, &format!("id = {}", k[0])).await?), (0, 1));

    // Every node routes the slot to s1 now; the leader counted the move.
    for i in 0..3 {
        let mut conn = c.node(i)?.conn(Some("sm")).await?;
        let n: Option<i64> = conn.query_first(format!("SELECT COUNT(*) FROM t WHERE id = {}", k[1])).await?;
        assert_eq!(n, Some(1), "node {i}");
    }
    let leader = c.wait_leader(SECS).await?;
    let text = c.metrics(leader).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_cutover_total{kind=\"slot_move\",result=\"committed\"}"), 1.0, "{text}");
    Ok(())
}


#[tokio::test(flavor = "multi_thread")]
async fn slots_moving_under_writers_lose_nothing_and_never_go_the_old_way() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    let c = setup(&a, &b, "").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = c.node(w).map(|n| n.url(Some("sm"))).unwrap_or_default();
            tokio::spawn(slotgate_tests::load::writer(url, w as i64 + 1, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 0-15 to s1, back to s0, then 16-31 to s1, each through another node.
    let moves = [("0-15", "s1", 0usize), ("0-15", "s0", 1), ("16-31", "s1", 2)];
    for (slots, to, via) in moves {
        let (s, r) = c.post(via, "/slots/move", &json!({"slots": slots, "to": to, "force": true})).await?;
        assert_eq!(s, 200, "{r}");
        for i in 0..3 {
            c.wait_version(i, r["version"].as_u64().unwrap_or(0), SECS).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        let (ids, errors) = w.await?;
        assert!(errors.is_empty(), "slot moves must not show clients errors: {errors:?}");
        assert!(!ids.is_empty());
        acked.extend(ids);
    }

    // Every acknowledged row exactly once over both shards, nothing else.
    let mut rows: Vec<(i64, String)> = Vec::new();
    for (db, name) in [(&a, "s0"), (&b, "s1")] {
        let ids: Vec<i64> = db.conn().await?.query("SELECT id FROM sm.t").await?;
        rows.extend(ids.into_iter().map(|i| (i, name.to_string())));
    }
    let mut seen: Vec<i64> = rows.iter().map(|r| r.0).collect();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "a row is on both shards");
    acked.sort_unstable();
    assert_eq!(seen, acked, "rows on the shards = acknowledged writes");

    // No row of a moved slot reached its old owner after the leader collected every
    // acknowledgement (the commit's stamp) and before the slots moved back.
    let (_, history) = c.get(0, "/topology/history").await?;
    let history = history.as_array().cloned().unwrap_or_default();
    let stamp = |kind: &str, slots: &str, to: &str| {
        history.iter().filter(|h| h["command"]["kind"] == kind && h["command"]["to"] == to).find_map(|h| {
            let first = h["command"]["slots"][0]["first"].as_u64()?;
            let last = h["command"]["slots"][0]["last"].as_u64()?;
            (format!("{first}-{last}") == slots).then(|| h["at_ms"].as_u64()).flatten()
        })
    };
    let t = |ms: u64| format!("FROM_UNIXTIME({}.{:03})", ms / 1000, ms % 1000);
    let checks = [
        (&a, "0-15", stamp("assign_slots", "0-15", "s1"), stamp("freeze_slots", "0-15", "s0")),
        (&b, "0-15", stamp("assign_slots", "0-15", "s0"), None),
        (&a, "16-31", stamp("assign_slots", "16-31", "s1"), None),
    ];
    for (old_owner, slots, from, until) in checks {
        let from = from.ok_or_else(|| anyhow::anyhow!("no commit of {slots} in the history"))?;
        let (lo, hi) = slots.split_once('-').unwrap_or(("0", "0"));
        let mut filter = format!("CRC32(id) % {SLOTS} BETWEEN {lo} AND {hi} AND at >= {}", t(from));
        if let Some(until) = until {
            filter.push_str(&format!(" AND at < {}", t(until)));
        }
        assert_eq!(count(old_owner, &filter).await?, 0, "rows of slots {slots} reached their old owner after the move: {filter}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_not_acknowledged_within_its_budget_rolls_back_and_held_work_resumes() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    // The drain waits longer than the cutover budget (6 s in the test cluster).
    let c = setup(&a, &b, "drain_timeout_ms = 30000\nbuffer_window_ms = 15000\n").await?;
    let k = keys_in(3, 1, 2);
    let mut tx = c.node(0)?.conn(Some("sm")).await?;
    tx.query_drop("BEGIN").await?;
    tx.query_drop(format!("INSERT INTO t (id, w) VALUES ({}, 0)", k[0])).await?;

    let mover = start_move(&c, 2, "3", 1).await?;
    // Held through node 1 while the move is prepared.
    let held = {
        let url = c.node(1)?.url(Some("sm"));
        let key = k[1];
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
            conn.query_drop(format!("INSERT INTO t (id, w) VALUES ({key}, 1)")).await?;
            Ok::<_, anyhow::Error>(())
        })
    };
    let (status, reply) = mover.await??;
    assert_eq!(status, 409, "{reply}");
    assert!(reply["error"].as_str().is_some_and(|e| e.contains("rolled back")), "{reply}");
    held.await??;
    // Everything stayed on the old owner: the held write, and the open transaction, which
    // was not aborted (the move it was holding up is gone) and commits.
    tx.query_drop("COMMIT").await?;
    for key in &k {
        assert_eq!((count(&a, &format!("id = {key}")).await?, count(&b, &format!("id = {key}")).await?), (1, 0), "key {key}");
    }
    assert!(!moving(&c, 0).await?);
    let leader = c.wait_leader(SECS).await?;
    let text = c.metrics(leader).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_cutover_total{kind=\"slot_move\",result=\"rolled_back\"}"), 1.0, "{text}");
    Ok(())
}
