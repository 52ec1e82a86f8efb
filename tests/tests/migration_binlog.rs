//! The migration's binlog applier and verifier against real MariaDB servers, without the rest
//! of the cluster: row events of the moving slots (inserts, updates that change the key or
//! move a row out of the slots, deletes) reach the target exactly, the rest never do, and the
//! per-slot checksums agree until a target row is changed behind the applier's back.

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use slotgate_proxy::jobs::migration::binlog::{Applier, BinlogPos};
use slotgate_proxy::jobs::migration::tables::TableInfo;
use slotgate_proxy::jobs::migration::verify;
use slotgate_tests::mariadb::MariaDb;
use std::time::{Duration, Instant};

async fn root(m: &MariaDb) -> Conn {
    let opts = OptsBuilder::default().ip_or_hostname(m.host()).tcp_port(m.port()).user(Some("root")).pass(Some(m.root_password().to_string())).prefer_socket(false);
    Conn::new(opts).await.unwrap()
}

const SLOTS: u32 = 8;
const MOVING: &str = "0,1,2";

async fn rows(c: &mut Conn, moving_only: bool) -> Vec<(i64, u64, Option<String>, Option<i64>)> {
    let filter = if moving_only { format!("WHERE CRC32(k) % {SLOTS} IN ({MOVING})") } else { String::new() };
    c.query(format!("SELECT id, k, v, UNIX_TIMESTAMP(ts) FROM mig.t {filter} ORDER BY id")).await.unwrap()
}

#[tokio::test]
async fn the_applier_brings_exactly_the_moving_slots_rows_to_the_target() {
    let (src, dst) = (MariaDb::start().await.unwrap(), MariaDb::start().await.unwrap());
    let (mut s, mut t) = (root(&src).await, root(&dst).await);
    let ddl = "CREATE TABLE mig.t (id INT PRIMARY KEY, k BIGINT UNSIGNED NOT NULL, v VARCHAR(20), ts TIMESTAMP NULL)";
    for c in [&mut s, &mut t] {
        c.query_drop("CREATE DATABASE mig").await.unwrap();
        c.query_drop(ddl).await.unwrap();
    }
    t.query_drop("SET NAMES binary").await.unwrap();
    t.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
    let table = TableInfo::read(&mut s, "mig", "t", "k").await.unwrap();
    let start = BinlogPos::current(&mut s).await.unwrap();

    // Writes after the start position: inserts, a key change, updates, deletes, and a big key.
    for id in 1..=200i64 {
        s.exec_drop("INSERT INTO mig.t VALUES (?, ?, ?, '2024-05-01 10:00:00')", (id, id as u64 * 7, format!("v{id}"))).await.unwrap();
    }
    s.query_drop("INSERT INTO mig.t VALUES (1001, 18446744073709551615, 'max', NULL)").await.unwrap();
    s.query_drop("UPDATE mig.t SET v = CONCAT(v, '-u') WHERE id % 3 = 0").await.unwrap();
    s.query_drop("UPDATE mig.t SET k = k + 1 WHERE id % 5 = 0").await.unwrap();
    s.query_drop("UPDATE mig.t SET id = id + 500 WHERE id % 7 = 0").await.unwrap();
    s.query_drop("DELETE FROM mig.t WHERE id % 11 = 0").await.unwrap();
    s.query_drop("BEGIN").await.unwrap();
    s.query_drop("DELETE FROM mig.t WHERE id = 2").await.unwrap();
    s.query_drop("ROLLBACK").await.unwrap();
    let end = BinlogPos::current(&mut s).await.unwrap();
    assert!(end > start);

    let mut moving = vec![false; SLOTS as usize];
    for slot in MOVING.split(',') {
        moving[slot.parse::<usize>().unwrap()] = true;
    }
    let stream = root(&src).await;
    let mut applier = Applier::start(stream, t, 0xF0F0_0001, start.clone(), vec![table.clone()], moving, SLOTS).await.unwrap();
    applier.run_until(&end, Instant::now() + Duration::from_secs(30)).await.unwrap();
    assert!(applier.position() >= &end);
    applier.close().await;

    let mut t = root(&dst).await;
    let want = rows(&mut s, true).await;
    assert!(want.len() > 30, "the moving slots hold rows: {}", want.len());
    assert_eq!(rows(&mut t, false).await, want, "the target holds exactly the source's rows of the moving slots");

    let a = verify::checksums(&mut s, &table, SLOTS, MOVING).await.unwrap();
    let b = verify::checksums(&mut t, &table, SLOTS, MOVING).await.unwrap();
    assert_eq!(a.len(), 3);
    verify::compare(&table, &a, &b).unwrap();
    let (id, ..) = want[0];
    t.exec_drop("UPDATE mig.t SET v = 'tampered' WHERE id = ?", (id,)).await.unwrap();
    let b = verify::checksums(&mut t, &table, SLOTS, MOVING).await.unwrap();
    let err = verify::compare(&table, &a, &b).unwrap_err();
    assert!(err.contains("contents differ"), "{err}");
}

#[tokio::test]
async fn a_table_without_a_primary_key_is_refused_with_what_to_do() {
    let m = MariaDb::start().await.unwrap();
    let mut c = root(&m).await;
    c.query_drop("CREATE DATABASE mig").await.unwrap();
    c.query_drop("CREATE TABLE mig.nopk (k INT, v TEXT)").await.unwrap();
    let err = TableInfo::read(&mut c, "mig", "nopk", "k").await.unwrap_err().to_string();
    assert!(err.contains("has no primary key") && err.contains("ADD PRIMARY KEY"), "{err}");
}

/// The applier from `from` on `src` into `dst` for `mig.t` (moving slots 0-2), or its error.
async fn applier_from(src: &MariaDb, dst: &MariaDb, from: BinlogPos) -> Result<Applier, slotgate_proxy::jobs::migration::MigrationError> {
    let mut s = root(src).await;
    let table = TableInfo::read(&mut s, "mig", "t", "k").await.unwrap();
    let moving = (0..SLOTS).map(|s| s <= 2).collect();
    Applier::start(root(src).await, root(dst).await, 0xF0F0_0002, from, vec![table], moving, SLOTS).await
}

#[tokio::test]
async fn a_purged_binlog_and_a_lost_source_are_errors_never_a_silent_gap() {
    let (mut src, dst) = (MariaDb::start().await.unwrap(), MariaDb::start().await.unwrap());
    let (mut s, mut t) = (root(&src).await, root(&dst).await);
    for c in [&mut s, &mut t] {
        c.query_drop("CREATE DATABASE mig").await.unwrap();
        c.query_drop("CREATE TABLE mig.t (id INT PRIMARY KEY, k BIGINT UNSIGNED NOT NULL, v VARCHAR(20), ts TIMESTAMP NULL)").await.unwrap();
    }
    // A position in a binlog file that is purged before the applier reads it.
    let old = BinlogPos::current(&mut s).await.unwrap();
    s.query_drop("INSERT INTO mig.t VALUES (1, 1, 'a', NULL)").await.unwrap();
    s.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let now = BinlogPos::current(&mut s).await.unwrap();
    // MariaDB keeps a binlog file until its binlog checkpoint has passed (crash recovery may
    // still need it): purge until the old file is gone.
    let purged = Instant::now() + Duration::from_secs(20);
    loop {
        s.query_drop(format!("PURGE BINARY LOGS TO '{}'", now.file)).await.unwrap();
        let logs: Vec<(String, u64)> = s.query("SHOW BINARY LOGS").await.unwrap();
        if !logs.iter().any(|(f, _)| *f == old.file) {
            break;
        }
        assert!(Instant::now() < purged, "{} was never purged: {logs:?}", old.file);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = match applier_from(&src, &dst, old.clone()).await {
        Err(e) => e,
        Ok(mut a) => a.run_until(&now, deadline).await.expect_err("a purged start position cannot be read"),
    };
    assert!(Instant::now() < deadline, "the error came at once, not at the deadline");
    let text = err.to_string();
    assert!(text.starts_with("source: ") && text.contains(&old.file), "{text}");

    // A source that dies under a running applier: an error at once, not a hang.
    let mut a = applier_from(&src, &dst, now.clone()).await.unwrap();
    s.query_drop("INSERT INTO mig.t VALUES (2, 2, 'b', NULL)").await.unwrap();
    let end = BinlogPos::current(&mut s).await.unwrap();
    a.run_until(&end, Instant::now() + Duration::from_secs(10)).await.unwrap();
    drop(s);
    src.kill().unwrap();
    let far = BinlogPos { file: end.file.clone(), pos: end.pos + 1_000_000 };
    let started = Instant::now();
    let err = a.run_until(&far, Instant::now() + Duration::from_secs(60)).await.expect_err("the source is gone");
    assert!(started.elapsed() < Duration::from_secs(35), "noticed within the read timeout: {:?}", started.elapsed());
    assert!(err.to_string().starts_with("source: "), "{err}");
}
