//! Versioned cutover with 3 slotgate nodes over real MariaDB GTID primaries and replicas:
//! planned switchovers under concurrent writers through every node (no client error, every
//! acknowledged write present exactly once), a switchover that cannot finish within its budget
//! rolls back, and a node cut off from the meta group stops serving once its lease expires.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(20);

async fn all_at(c: &TestCluster<'_>, v: u64) -> anyhow::Result<()> {
    for i in 0..3 {
        c.wait_version(i, v, SECS).await?;
    }
    Ok(())
}


/// Table `co.t` on primary `p` (replicated to `r`), 3 nodes with `s0` = p and replica r.
async fn cluster_with_replica<'a>(p: &'a MariaDb, r: &'a MariaDb) -> anyhow::Result<TestCluster<'a>> {
    p.exec("CREATE DATABASE co").await?;
    p.exec("CREATE TABLE co.t (id BIGINT PRIMARY KEY, w INT)").await?;
    r.wait_caught_up(p).await?;
    let c = TestCluster::start(&[p], 3, 3, ProxyOptions::default()).await?;
    c.wait_leader(SECS).await?;
    all_at(&c, 1).await?;
    let (s, v) = c.command(0, "replica", json!({"kind": "add_replica", "shard": "s0", "addr": r.addr()})).await?;
    anyhow::ensure!(s == 200, "add_replica: {v}");
    all_at(&c, 2).await?;
    Ok(c)
}

/// Stops the writers when the test ends, also by a failed assertion.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn switchover(c: &TestCluster<'_>, via: usize, to: &str) -> anyhow::Result<(u16, Value)> {
    c.post(via, "/switchover", &json!({"shard": "s0", "to": to})).await
}

async fn read_only(db: &MariaDb) -> anyhow::Result<bool> {
    let v: Option<i64> = db.root_conn().await?.query_first("SELECT @@global.read_only").await?;
    Ok(v == Some(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn planned_switchovers_under_load_lose_nothing_and_show_no_error() -> anyhow::Result<()> {
    let (p, r) = MariaDb::start_with_replica().await?;
    let c = cluster_with_replica(&p, &r).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(stop.clone());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = c.node(w).map(|n| n.url(Some("co"))).unwrap_or_default();
            tokio::spawn(slotgate_tests::load::writer(url, w as i64, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // p -> r, through a node that may not lead (it forwards to the leader).
    let (s, first) = switchover(&c, 1, &r.addr()).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["new_primary"], json!(r.addr()));
    let v = first["version"].as_u64().unwrap_or(0);
    all_at(&c, v).await?;
    assert!(read_only(&p).await?, "the demoted primary is read-only");
    assert!(!read_only(&r).await?, "the promoted replica is writable");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While demoted, p wrote nothing of its own: the last GTID in its binlog is one it
    // replicated from r (r's server id), not a client write that reached p.
    p.wait_caught_up(&r).await?;
    let r_id: Option<i64> = r.root_conn().await?.query_first("SELECT @@server_id").await?;
    let demoted_pos = p.gtid_binlog_pos().await?;
    let server_of = |pos: &str| pos.split(',').find_map(|g| g.trim().strip_prefix("0-").and_then(|x| x.split('-').next()).and_then(|x| x.parse::<i64>().ok()));
    assert_eq!(server_of(&demoted_pos), r_id, "demoted primary's binlog: {demoted_pos}");

    // r -> p again.
    let (s, second) = switchover(&c, 2, &p.addr()).await?;
    assert_eq!(s, 200, "{second}");
    all_at(&c, second["version"].as_u64().unwrap_or(0)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked = Vec::new();
    for w in writers {
        let (a, errors) = w.await?;
        assert!(errors.is_empty(), "planned switchovers must not show clients errors: {errors:?}");
        assert!(!a.is_empty());
        acked.extend(a);
    }
    // Every acknowledged write is on the current primary exactly once (PRIMARY KEY), and
    // nothing else is.
    let mut conn = p.conn().await?;
    let rows: Vec<i64> = conn.query("SELECT id FROM co.t ORDER BY id").await?;
    acked.sort_unstable();
    assert_eq!(rows, acked, "the primary holds exactly the acknowledged writes");
    r.wait_caught_up(&p).await?;
    let on_r: Option<i64> = r.conn().await?.query_first("SELECT COUNT(*) FROM co.t").await?;
    assert_eq!(on_r, Some(acked.len() as i64), "the replica follows the new primary");

    let text = c.metrics(c.wait_leader(SECS).await?).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_cutover_total{kind=\"switchover\",result=\"committed\"}"), 2.0, "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_that_exceeds_its_budget_rolls_back_and_traffic_resumes() -> anyhow::Result<()> {
    let (p, r) = MariaDb::start_with_replica().await?;
    let c = cluster_with_replica(&p, &r).await?;
    // The replica stops applying: it can never reach the primary's position in time.
    r.root_conn().await?.query_drop("STOP SLAVE").await?;
    p.exec("INSERT INTO co.t VALUES (1, 0)").await?;

    let started = Instant::now();
    let (s, v) = switchover(&c, 0, &r.addr()).await?;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("rolled back")), "{v}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the cutover budget");
    // The old primary stays primary, writable, unfrozen; clients write through every node.
    assert!(!read_only(&p).await?);
    let (_, topo) = c.get(0, "/topology?linearizable=true").await?;
    assert_eq!(topo["shards"][0]["primary"], json!(p.addr()), "{topo}");
    assert_eq!(topo["frozen"], json!([]), "{topo}");
    for i in 0..3 {
        c.wait_version(i, topo["version"].as_u64().unwrap_or(0), SECS).await?;
        let mut conn = c.node(i)?.conn(Some("co")).await?;
        conn.exec_drop("INSERT INTO t (id, w) VALUES (?, ?)", (10 + i as i64, i as i64)).await?;
    }
    let n: Option<i64> = p.conn().await?.query_first("SELECT COUNT(*) FROM co.t").await?;
    assert_eq!(n, Some(4));
    let text = c.metrics(c.wait_leader(SECS).await?).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_cutover_total{kind=\"switchover\",result=\"rolled_back\"}"), 1.0, "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_cut_off_from_the_meta_group_stops_serving_when_its_lease_expires() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    for s in [&a, &b] {
        s.exec("CREATE DATABASE co").await?;
        s.exec("CREATE TABLE co.t (id BIGINT PRIMARY KEY, w INT)").await?;
    }
    let opts = ProxyOptions {
        routing_extra: "slot_count = 64\n[[routing.rules]]\ndatabase = \"co\"\ntable = \"t\"\ncolumn = \"id\"\n".into(),
        ..ProxyOptions::default()
    };
    let c = TestCluster::start(&[&a, &b], 3, 3, opts).await?;
    let leader = c.wait_leader(SECS).await?;
    all_at(&c, 1).await?;
    let cut = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut conn = c.node(cut)?.conn(Some("co")).await?;
    conn.query_drop("INSERT INTO t (id, w) VALUES (1, 1)").await?;

    c.isolate(cut);
    let meta = c.node(cut)?.handle().and_then(|h| h.meta()).cloned().expect("member");
    let deadline = Instant::now() + SECS;
    while meta.serving() {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Meanwhile the majority moves every slot to s1.
    let (s, v) = c.post(other, "/slots/move", &json!({"slots": "0-63", "to": "s1", "force": true})).await?;
    assert_eq!(s, 200, "{v}");
    let moved = v["version"].as_u64().unwrap_or(0);
    c.wait_version(leader, moved, SECS).await?;
    // The cut-off node still holds the old version and refuses to route with it.
    assert!(c.version(cut) < moved);
    let err = conn.query_drop("INSERT INTO t (id, w) VALUES (2, 2)").await.unwrap_err();
    match err {
        mysql_async::Error::Server(e) => {
            assert_eq!(e.code, 1105, "{e:?}");
            assert!(e.message.contains("lost contact with the meta group"), "{e:?}");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    let (status, _) = c.get(cut, "/readyz").await?;
    assert_eq!(status, 503);
    let on_a: Option<i64> = a.conn().await?.query_first("SELECT COUNT(*) FROM co.t WHERE id = 2").await?;
    assert_eq!(on_a, Some(0), "nothing was routed the old way");

    // Healed: it catches up, then serves with the new version.
    c.heal();
    c.wait_version(cut, moved, SECS).await?;
    conn.query_drop("INSERT INTO t (id, w) VALUES (2, 2)").await?;
    let on_b: Option<i64> = b.conn().await?.query_first("SELECT COUNT(*) FROM co.t WHERE id = 2").await?;
    assert_eq!(on_b, Some(1));
    let text = c.metrics(cut).await?;
    assert!(slotgate_tests::proxy::sample(&text, "slotgate_lease_expired_total") >= 1.0, "{text}");
    Ok(())
}

/// What a writer saw: acknowledged ids, errors (MySQL code, or 0 for a connection that
/// failed), and how many ids were acknowledged after `after` was set.
struct Written {
    acked: Vec<i64>,
    errors: Vec<u16>,
    late: usize,
}

/// Like `slotgate_tests::load::writer` but keeps going after errors (reconnecting if needed).
async fn resilient_writer(url: String, w: i64, stop: Arc<AtomicBool>, after: Arc<AtomicBool>) -> Written {
    let (mut acked, mut errors, mut late) = (Vec::new(), Vec::new(), 0usize);
    let opts = mysql_async::Opts::from_url(&url).expect("url");
    let mut conn: Option<mysql_async::Conn> = None;
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = mysql_async::Conn::new(opts.clone()).await.ok();
            if conn.is_none() {
                errors.push(0);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        n += 1;
        let id = w * 1_000_000 + n;
        let Some(c) = conn.as_mut() else { continue };
        match c.exec_drop("INSERT INTO t (id, w) VALUES (?, ?)", (id, w)).await {
            Ok(()) => {
                acked.push(id);
                if after.load(Ordering::Relaxed) {
                    late += 1;
                }
            }
            Err(mysql_async::Error::Server(e)) => {
                errors.push(e.code);
                if e.code == 2013 {
                    conn = None;
                }
            }
            Err(_) => {
                errors.push(0);
                conn = None;
            }
        }
    }
    Written { acked, errors, late }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_then_a_dead_primary_lose_no_acknowledged_write() -> anyhow::Result<()> {
    // Semi-synchronous replication (AFTER_SYNC): a commit is acknowledged once a replica has
    // it. A switchover carries the setting to the new primary and repoints the old one as a
    // semi-sync replica.
    let (p, r) = MariaDb::start_with_replica().await?;
    p.enable_semi_sync(&r).await?;
    let c = cluster_with_replica(&p, &r).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let after = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(stop.clone());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = c.node(w).map(|n| n.url(Some("co"))).unwrap_or_default();
            tokio::spawn(resilient_writer(url, w as i64, stop.clone(), after.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // First a planned switchover to r under the writers, then r (now primary) crashes.
    let (s, v) = switchover(&c, 1, &r.addr()).await?;
    assert_eq!(s, 200, "{v}");
    all_at(&c, v["version"].as_u64().unwrap_or(0)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Crash the primary (SIGKILL), as a host failure would.
    let pid_file: Option<String> = r.root_conn().await?.query_first("SELECT @@pid_file").await?;
    let pid = std::fs::read_to_string(pid_file.unwrap_or_default())?.trim().to_string();
    let killed = std::process::Command::new("kill").args(["-9", &pid]).status()?;
    assert!(killed.success());

    // The leader's health check notices and promotes the replica.
    let deadline = Instant::now() + Duration::from_secs(40);
    let version = loop {
        let (_, topo) = c.get(0, "/topology").await?;
        if topo["shards"][0]["primary"] == json!(p.addr()) && topo["frozen"] == json!([]) {
            break topo["version"].as_u64().unwrap_or(0);
        }
        assert!(Instant::now() < deadline, "no failover: {topo}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    all_at(&c, version).await?;
    after.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut late) = (Vec::new(), 0);
    for w in writers {
        let out = w.await?;
        // Only the statement each writer had in flight on the dead primary may fail, and
        // then with 2013 (outcome unknown); every later one waits for the failover.
        assert!(out.errors.len() <= 1 && out.errors.iter().all(|c| *c == 2013), "clients saw errors other than one 2013 for their in-flight statement: {:?}", out.errors);
        acked.extend(out.acked);
        late += out.late;
    }
    assert!(late > 0, "writes go on through every node after the failover");
    let rows: Vec<i64> = p.conn().await?.query("SELECT id FROM co.t ORDER BY id").await?;
    acked.sort_unstable();
    let missing: Vec<_> = acked.iter().filter(|id| rows.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged writes lost in the failover: {missing:?}");
    assert!(!read_only(&p).await?);
    let (_, topo) = c.get(1, "/topology").await?;
    assert!(!topo["shards"][0]["replicas"].as_array().into_iter().flatten().any(|x| *x == json!(r.addr())), "the dead primary left the topology: {topo}");
    let text = c.metrics(c.wait_leader(SECS).await?).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_failover_total"), 1.0, "{text}");
    let mut held = 0.0;
    for i in 0..3 {
        held += slotgate_tests::proxy::sample(&c.metrics(i).await?, "slotgate_failover_holds_total");
    }
    assert!(held >= 1.0, "statements were held for the failover");
    Ok(())
}

/// Switching back to the former primary right away (no write in between) and again: the
/// former primary holds its own GTIDs in gtid_current_pos, not in gtid_slave_pos, so the
/// wait must look there (issue #14 item 4).
#[tokio::test(flavor = "multi_thread")]
async fn switching_back_and_forth_without_writes_in_between_works() -> anyhow::Result<()> {
    let (p, r) = MariaDb::start_with_replica().await?;
    let c = cluster_with_replica(&p, &r).await?;
    let mut client = c.node(0)?.conn(Some("co")).await?;
    let mut acked = Vec::new();
    for (round, to) in [&r, &p, &r, &p].into_iter().enumerate() {
        if round == 0 {
            client.query_drop("INSERT INTO co.t VALUES (1, 0)").await?;
            acked.push(1);
        }
        let (s, v) = switchover(&c, round % 3, &to.addr()).await?;
        assert_eq!(s, 200, "switchover {round} to {}: {v}", to.addr());
        assert_eq!(v["new_primary"], json!(to.addr()));
        all_at(&c, v["version"].as_u64().unwrap_or(0)).await?;
        assert!(!read_only(to).await?, "the new primary takes writes");
    }
    client.query_drop("INSERT INTO co.t VALUES (100, 0)").await?;
    acked.push(100);
    let rows: Vec<i64> = p.conn().await?.query("SELECT id FROM co.t ORDER BY id").await?;
    assert_eq!(rows, acked, "every acknowledged write is on the primary exactly once");
    Ok(())
}

/// A primary that answers but refuses the backend account (here: the account locked; also
/// access denied, too many connections) is running: failing it over would make two
/// primaries. The meta leader counts it as refusing, never as down, and keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_refuses_the_account_is_not_failed_over() -> anyhow::Result<()> {
    let (p, r) = MariaDb::start_with_replica().await?;
    let c = cluster_with_replica(&p, &r).await?;
    let leader = c.wait_leader(SECS).await?;
    p.root_conn().await?.query_drop(format!("ALTER USER '{}'@'%' ACCOUNT LOCK", p.user())).await?;
    let deadline = Instant::now() + SECS;
    loop {
        let text = c.metrics(leader).await?;
        let refusing = slotgate_tests::proxy::sample(&text, "slotgate_primary_checks_total{result=\"refusing\"}");
        // Past the failover threshold (3 checks in a row) with room to spare.
        if refusing >= 5.0 {
            assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_failover_total"), 0.0, "{text}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the leader never saw the primary refusing: {refusing}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, topo) = c.get(leader, "/topology").await?;
    assert_eq!(topo["shards"][0]["primary"], p.addr(), "{topo}");
    assert_eq!(topo["version"], 2, "no cutover: {topo}");
    Ok(())
}

/// A retried switchover (same `request_id`, e.g. after a client timeout) is answered with the
/// first one's outcome, through any node, and never switches the primary back.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_switchover_with_the_same_request_id_runs_once() -> anyhow::Result<()> {
    let (p, r) = MariaDb::start_with_replica().await?;
    let c = cluster_with_replica(&p, &r).await?;
    let body = json!({"shard": "s0", "to": r.addr(), "request_id": "op-42"});
    let (s, first) = c.post(0, "/switchover", &body).await?;
    assert_eq!(s, 200, "{first}");
    let version = first["version"].as_u64().unwrap_or(0);
    all_at(&c, version).await?;
    for via in 0..3 {
        let (s, again) = c.post(via, "/switchover", &body).await?;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["version"].as_u64(), Some(version), "the same answer through node {via}: {again}");
    }
    let (_, topo) = c.get(1, "/topology").await?;
    assert_eq!(topo["version"].as_u64(), Some(version), "no second switchover ran: {topo}");
    assert_eq!(topo["shards"][0]["primary"], json!(r.addr()));
    // A new key is a new operation: switch back.
    let (s, back) = c.post(2, "/switchover", &json!({"shard": "s0", "to": p.addr(), "request_id": "op-43"})).await?;
    assert_eq!(s, 200, "{back}");
    assert!(back["version"].as_u64() > Some(version));
    Ok(())
}
