//! Cross-shard deadlocks (issue #12 item 1): two transactions that lock rows on two shards
//! in opposite orders wait on each other while each shard sees only a lock wait. slotgate
//! must break the cycle at once: one client gets ERROR 1213 (40001), its transaction is
//! rolled back on every shard, the other commits; nobody waits for innodb_lock_wait_timeout.

use mysql_async::prelude::*;
use mysql_async::Conn;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{ProxyOptions, TestProxy};
use std::time::{Duration, Instant};

const RULES: &str = "slot_count = 1024\n\
[[routing.rules]]\ndatabase = \"bank\"\ntable = \"acc\"\ncolumn = \"id\"\n";

/// A key on s0 and one on s1 (two shards, 512 slots each).
fn keys() -> (i64, i64) {
    let on = |s: u32| (1..=100i64).find(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) / 512 == s);
    (on(0).unwrap_or(-1), on(1).unwrap_or(-1))
}

fn code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// One side of the cycle: locks `first`, signals, waits for the other side, then locks
/// `second` (held by the other side) and commits. Answers the error code of the statement
/// that failed (None: committed) and how long the second lock took.
async fn side(mut c: Conn, first: i64, second: i64, locked: tokio::sync::mpsc::Sender<()>, mut go: tokio::sync::mpsc::Receiver<()>) -> (Option<u16>, Duration) {
    c.query_drop("START TRANSACTION").await.expect("begin");
    c.query_drop(format!("UPDATE acc SET v = v + 1 WHERE id = {first}")).await.expect("first lock");
    locked.send(()).await.expect("signal");
    go.recv().await;
    let started = Instant::now();
    let r = c.query_drop(format!("UPDATE acc SET v = v + 1 WHERE id = {second}")).await;
    let took = started.elapsed();
    match r {
        Ok(()) => {
            c.query_drop("COMMIT").await.expect("commit");
            (None, took)
        }
        Err(e) => {
            let code = code(&e);
            if let mysql_async::Error::Server(s) = &e {
                assert_eq!(s.state, "40001", "{s:?}");
            }
            // The transaction is over: a ROLLBACK is accepted and changes nothing.
            c.query_drop("ROLLBACK").await.expect("rollback after the deadlock");
            (code, took)
        }
    }
}

async fn cycle(a: Conn, b: Conn, k0: i64, k1: i64) -> Vec<(Option<u16>, Duration)> {
    let (a_locked, mut a_locked_rx) = tokio::sync::mpsc::channel(1);
    let (b_locked, mut b_locked_rx) = tokio::sync::mpsc::channel(1);
    let (a_go, a_go_rx) = tokio::sync::mpsc::channel(1);
    let (b_go, b_go_rx) = tokio::sync::mpsc::channel(1);
    let ta = tokio::spawn(side(a, k0, k1, a_locked, a_go_rx));
    let tb = tokio::spawn(side(b, k1, k0, b_locked, b_go_rx));
    a_locked_rx.recv().await.expect("a locked");
    b_locked_rx.recv().await.expect("b locked");
    a_go.send(()).await.expect("go a");
    b_go.send(()).await.expect("go b");
    vec![ta.await.expect("side a"), tb.await.expect("side b")]
}

fn check(results: &[(Option<u16>, Duration)]) {
    let victims: Vec<_> = results.iter().filter(|(c, _)| c.is_some()).collect();
    assert_eq!(victims.len(), 1, "exactly one victim: {results:?}");
    assert_eq!(victims[0].0, Some(1213), "{results:?}");
    for (_, took) in results {
        assert!(*took < Duration::from_secs(10), "nobody waits for the lock timeout: {results:?}");
    }
}

async fn setup_rows(p: &TestProxy, k0: i64, k1: i64) {
    let mut c = p.conn(None).await.expect("conn");
    c.query_drop("CREATE DATABASE bank").await.expect("db");
    c.query_drop("CREATE TABLE bank.acc (id INT PRIMARY KEY, v INT NOT NULL)").await.expect("table");
    c.query_drop(format!("INSERT INTO bank.acc (id, v) VALUES ({k0}, 0), ({k1}, 0)")).await.expect("rows");
}

/// Both rows incremented exactly once: by the survivor; the victim's first update was
/// rolled back on its shard.
async fn final_values(p: &TestProxy, k0: i64, k1: i64) -> Vec<i64> {
    let mut c = p.conn(Some("bank")).await.expect("conn");
    c.query(format!("SELECT v FROM acc WHERE id IN ({k0}, {k1}) ORDER BY id")).await.expect("select")
}

#[tokio::test]
async fn opposite_lock_orders_over_two_shards_give_one_1213_at_once() {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start()).unwrap();
    let p = TestProxy::start_with(&[&s0, &s1], ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await.unwrap();
    let (k0, k1) = keys();
    setup_rows(&p, k0, k1).await;
    for round in 1..=3 {
        let (a, b) = tokio::try_join!(p.conn(Some("bank")), p.conn(Some("bank"))).unwrap();
        let results = cycle(a, b, k0, k1).await;
        check(&results);
        assert_eq!(final_values(&p, k0, k1).await, vec![round, round]);
    }
    assert_eq!(p.metric("slotgate_distributed_deadlocks_total").await.unwrap(), 3.0);
}

/// The same cycle with each transaction on another slotgate node: the nodes learn each
/// other's backend threads over the meta group's transport and agree on one victim.
#[tokio::test]
async fn a_cycle_through_two_nodes_is_broken_too() {
    use slotgate_tests::cluster::TestCluster;
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start()).unwrap();
    for s in [&s0, &s1] {
        s.exec("CREATE DATABASE bank").await.unwrap();
        s.exec("CREATE TABLE bank.acc (id INT PRIMARY KEY, v INT NOT NULL)").await.unwrap();
    }
    let c = TestCluster::start(&[&s0, &s1], 3, 3, ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await.unwrap();
    c.wait_leader(Duration::from_secs(20)).await.unwrap();
    for i in 0..3 {
        c.wait_version(i, 1, Duration::from_secs(20)).await.unwrap();
    }
    let (k0, k1) = keys();
    let (n0, n1) = (c.node(0).unwrap(), c.node(1).unwrap());
    n0.conn(Some("bank")).await.unwrap().query_drop(format!("INSERT INTO acc (id, v) VALUES ({k0}, 0), ({k1}, 0)")).await.unwrap();
    for round in 1..=2 {
        let (a, b) = tokio::try_join!(n0.conn(Some("bank")), n1.conn(Some("bank"))).unwrap();
        let results = cycle(a, b, k0, k1).await;
        check(&results);
        assert_eq!(final_values(n0, k0, k1).await, vec![round, round]);
    }
    let mut broken = 0.0;
    for i in 0..3 {
        broken += slotgate_tests::proxy::sample(&c.metrics(i).await.unwrap(), "slotgate_distributed_deadlocks_total");
    }
    assert_eq!(broken, 2.0);
}
