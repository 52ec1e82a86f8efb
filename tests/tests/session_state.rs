//! Session state combined with transactions and routing (issue #14): user variables, SQL
//! prepared statements, temporary tables, autocommit and savepoints must not let a statement
//! reach a shard outside the open transaction, nor answer from a shard that cannot hold the
//! row. Each test runs through slotgate over two shards, with keys on both.

use mysql_async::prelude::*;
use mysql_async::Conn;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{ProxyOptions, TestProxy};

const RULES: &str = "slot_count = 1024\n\
[[routing.rules]]\ndatabase = \"shop\"\ntable = \"customers\"\ncolumn = \"id\"\n";

struct Setup {
    _s: (MariaDb, MariaDb),
    proxy: TestProxy,
    /// Keys whose rows live on s0 and on s1.
    k0: Vec<i64>,
    k1: Vec<i64>,
}

async fn setup() -> anyhow::Result<Setup> {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start())?;
    let proxy = TestProxy::start_with(&[&s0, &s1], ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE shop").await?;
    p.query_drop("CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40)) DEFAULT CHARSET latin1").await?;
    let rows: Vec<String> = (1..=40).map(|i| format!("({i}, 'n{i}')")).collect();
    p.query_drop(format!("INSERT INTO shop.customers (id, name) VALUES {}", rows.join(","))).await?;
    // Created after the rules: unsharded, on the home shard only.
    p.query_drop("CREATE TABLE shop.settings (k VARCHAR(10) PRIMARY KEY, v INT)").await?;
    let on = |s: u32| (1..=40i64).filter(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) / 512 == s).collect::<Vec<_>>();
    let (k0, k1) = (on(0), on(1));
    assert!(k0.len() >= 4 && k1.len() >= 4);
    Ok(Setup { _s: (s0, s1), proxy, k0, k1 })
}

impl Setup {
    /// Ids spread over both shards.
    fn spread(&self) -> Vec<i64> {
        self.k0.iter().take(4).chain(self.k1.iter().take(4)).copied().collect()
    }

    async fn changed(&self, ids: &[i64]) -> anyhow::Result<i64> {
        let mut fresh = self.proxy.conn(Some("shop")).await?;
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let n: Option<i64> = fresh.query_first(format!("SELECT COUNT(*) FROM customers WHERE name = 'changed' AND id IN ({})", list.join(","))).await?;
        Ok(n.unwrap_or(-1))
    }
}

async fn update_all(p: &mut Conn, ids: &[i64]) -> anyhow::Result<()> {
    for id in ids {
        p.query_drop(format!("UPDATE customers SET name = 'changed' WHERE id = {id}")).await?;
    }
    Ok(())
}

fn code(e: mysql_async::Error) -> u16 {
    match e {
        mysql_async::Error::Server(e) => e.code,
        other => panic!("not a server error: {other:?}"),
    }
}

#[tokio::test]
async fn rollback_undoes_every_shard_after_session_state() -> anyhow::Result<()> {
    let s = setup().await?;
    let ids = s.spread();
    let preludes: [&[&str]; 4] = [
        &["SET @v = 1"],
        &["PREPARE s FROM 'SELECT name FROM customers WHERE id = ?'", "SET @k = 1", "EXECUTE s USING @k", "DEALLOCATE PREPARE s"],
        &["CREATE TEMPORARY TABLE tmp (a INT)", "INSERT INTO tmp VALUES (1)"],
        &["SET @v = 'x'", "CREATE TEMPORARY TABLE tmp2 (a INT)"],
    ];
    for prelude in preludes {
        let mut p = s.proxy.conn(Some("shop")).await?;
        for q in prelude {
            p.query_drop(*q).await?;
        }
        p.query_drop("START TRANSACTION").await?;
        update_all(&mut p, &ids).await?;
        let in_tx: Option<i64> = p.query_first("SELECT @@in_transaction").await?;
        assert_eq!(in_tx, Some(1), "in a transaction after {prelude:?}");
        p.query_drop("ROLLBACK").await?;
        assert_eq!(s.changed(&ids).await?, 0, "ROLLBACK after {prelude:?} undid every shard");
        // And COMMIT commits every shard.
        p.query_drop("BEGIN").await?;
        update_all(&mut p, &ids).await?;
        p.query_drop("COMMIT").await?;
        assert_eq!(s.changed(&ids).await?, ids.len() as i64, "COMMIT after {prelude:?}");
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        p.query_drop(format!("UPDATE customers SET name = CONCAT('n', id) WHERE id IN ({})", list.join(","))).await?;
    }
    Ok(())
}

#[tokio::test]
async fn sql_prepared_statements_route_by_their_values() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut p = s.proxy.conn(Some("shop")).await?;
    p.query_drop("PREPARE s FROM 'SELECT name FROM customers WHERE id = ?'").await?;
    for k in s.spread() {
        p.query_drop(format!("SET @k = {k}")).await?;
        let name: Option<String> = p.query_first("EXECUTE s USING @k").await?;
        assert_eq!(name, Some(format!("n{k}")), "EXECUTE s USING @k with @k = {k}");
    }
    // A scatter in between does not lose the name.
    let n: Option<i64> = p.query_first("SELECT COUNT(*) FROM customers").await?;
    assert_eq!(n, Some(40));
    p.query_drop(format!("SET @k = {}", s.k1[0])).await?;
    let name: Option<String> = p.query_first("EXECUTE s USING @k").await?;
    assert_eq!(name, Some(format!("n{}", s.k1[0])));
    assert_eq!(code(p.query_drop("EXECUTE s").await.unwrap_err()), 1210, "wrong argument count");
    p.query_drop("DEALLOCATE PREPARE s").await?;
    assert_eq!(code(p.query_drop("EXECUTE s USING @k").await.unwrap_err()), 1243, "unknown after DEALLOCATE");
    assert_eq!(code(p.query_drop("DEALLOCATE PREPARE s").await.unwrap_err()), 1243);
    assert_eq!(code(p.query_drop("PREPARE bad FROM 'SELEC 1'").await.unwrap_err()), 1064, "checked at PREPARE");
    // From a variable, writing by a key on the other shard.
    p.query_drop(format!("SET @q = 'UPDATE customers SET name = ? WHERE id = ?', @n = 'viaexec', @id = {}", s.k0[1])).await?;
    p.query_drop("PREPARE w FROM @q").await?;
    p.query_drop("EXECUTE w USING @n, @id").await?;
    assert_eq!(p.affected_rows(), 1);
    let name: Option<String> = p.query_first(format!("SELECT name FROM customers WHERE id = {}", s.k0[1])).await?;
    assert_eq!(name.as_deref(), Some("viaexec"));
    Ok(())
}

#[tokio::test]
async fn user_variables_reach_every_shard() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut p = s.proxy.conn(Some("shop")).await?;
    p.query_drop("SET @v = 'é'").await?;
    // latin1 column: the value converts as on one server.
    p.query_drop(format!("UPDATE customers SET name = @v WHERE id = {}", s.k1[0])).await?;
    p.query_drop(format!("UPDATE customers SET name = CONCAT(@v, 'x') WHERE id = {}", s.k0[0])).await?;
    let names: Vec<String> = p.query(format!("SELECT name FROM customers WHERE id IN ({}, {}) ORDER BY id = {} DESC", s.k1[0], s.k0[0], s.k1[0])).await?;
    assert_eq!(names, vec!["é".to_string(), "éx".to_string()]);
    // Assigned by a single-shard SELECT, read on the other shard.
    p.query_drop(format!("SELECT name INTO @got FROM customers WHERE id = {}", s.k0[2])).await?;
    let got: Option<i64> = p.query_first(format!("SELECT COUNT(*) FROM customers WHERE id = {} AND @got = 'n{}'", s.k1[2], s.k0[2])).await?;
    assert_eq!(got, Some(1));
    let typed: Option<(String, String)> = p.query_first("SELECT @v, COLLATION(@v)").await?;
    assert_eq!(typed, Some(("é".to_string(), "utf8mb4_general_ci".to_string())));
    // Assigning over several shards has no single answer: refused.
    assert_eq!(code(p.query_drop("SELECT @m := MAX(id) FROM customers").await.unwrap_err()), 1235);
    Ok(())
}

#[tokio::test]
async fn autocommit_and_savepoints_span_every_shard() -> anyhow::Result<()> {
    let s = setup().await?;
    let ids = s.spread();
    let mut p = s.proxy.conn(Some("shop")).await?;
    p.query_drop("SET autocommit = 0").await?;
    update_all(&mut p, &ids).await?;
    let ac: Option<i64> = p.query_first(format!("SELECT @@autocommit FROM customers WHERE id = {}", s.k1[0])).await?;
    assert_eq!(ac, Some(0), "autocommit off on the second shard too");
    p.query_drop("ROLLBACK").await?;
    assert_eq!(s.changed(&ids).await?, 0, "autocommit=0 + ROLLBACK undid every shard");
    update_all(&mut p, &ids[..2]).await?;
    p.query_drop("SAVEPOINT a").await?;
    update_all(&mut p, &ids[2..]).await?;
    p.query_drop("ROLLBACK TO SAVEPOINT a").await?;
    // Turning autocommit on commits the open transaction everywhere.
    p.query_drop("SET autocommit = 1").await?;
    assert_eq!(s.changed(&ids).await?, 2, "rolled back to the savepoint, then committed");
    let ac: Option<i64> = p.query_first(format!("SELECT @@autocommit FROM customers WHERE id = {}", s.k1[0])).await?;
    assert_eq!(ac, Some(1));
    Ok(())
}

/// Found by the differential tester: with autocommit off a failed INSERT opens a transaction
/// on its shard (MariaDB: `@@in_transaction` = 1), but an error packet carries no status.
#[tokio::test]
async fn a_failed_statement_with_autocommit_off_still_opens_the_transaction() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut p = s.proxy.conn(Some("shop")).await?;
    p.query_drop("SET autocommit = 0").await?;
    let dup = format!("INSERT INTO customers (id, name) VALUES ({}, 'dup')", s.k1[0]);
    assert_eq!(code(p.query_drop(dup).await.unwrap_err()), 1062);
    let in_tx: Option<i64> = p.query_first("SELECT @@in_transaction").await?;
    assert_eq!(in_tx, Some(1), "the failed INSERT opened a transaction on s1");
    p.query_drop("ROLLBACK").await?;
    let in_tx: Option<i64> = p.query_first("SELECT @@in_transaction").await?;
    assert_eq!(in_tx, Some(0));
    Ok(())
}

#[tokio::test]
async fn a_failed_multi_shard_insert_is_undone_as_one_statement() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut p = s.proxy.conn(Some("shop")).await?;
    p.query_drop("BEGIN").await?;
    // New rows on both shards, and one duplicate on s1.
    let on_s0: Vec<i64> = (1000..2000i64).filter(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) < 512).take(2).collect();
    let sql = format!("INSERT INTO customers (id, name) VALUES ({}, 'new'), ({}, 'new'), ({}, 'dup')", on_s0[0], on_s0[1], s.k1[0]);
    assert_eq!(code(p.query_drop(sql).await.unwrap_err()), 1062);
    p.query_drop("COMMIT").await?;
    let n: Option<i64> = p.query_first("SELECT COUNT(*) FROM customers WHERE name = 'new'").await?;
    assert_eq!(n, Some(0), "no shard kept a part of the failed statement");
    Ok(())
}

#[tokio::test]
async fn metadata_comes_from_the_home_shard() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut p = s.proxy.conn(Some("shop")).await?;
    for pin in ["", "CREATE TEMPORARY TABLE t1 (a INT)"] {
        if !pin.is_empty() {
            p.query_drop(pin).await?;
        }
        p.query_drop("BEGIN").await?;
        p.query_drop(format!("UPDATE customers SET name = name WHERE id = {}", s.k1[0])).await?;
        let tables: Vec<String> = p.query("SHOW TABLES").await?;
        assert_eq!(tables, vec!["customers".to_string(), "settings".to_string()], "after {pin:?}");
        let cols: Vec<mysql_async::Row> = p.query("DESCRIBE settings").await?;
        assert_eq!(cols.len(), 2);
        // Binary protocol, in the transaction: the unsharded table is found.
        let v: Option<i64> = p.exec_first("SELECT COUNT(*) FROM settings WHERE k = ?", ("a",)).await?;
        assert_eq!(v, Some(0));
        p.query_drop("COMMIT").await?;
    }
    Ok(())
}

/// Found by the differential tester: a pooled connection whose state matched the session's
/// (same SETs) was taken over without being marked as the session's; when the first
/// statement of a transaction on it failed, the next change of session state (a user
/// variable assigned on another shard) wanted a reset of the pinned connection: 2013.
/// The transaction must go on: the variable is replayed, ROLLBACK undoes the shard's work.
#[tokio::test]
async fn a_pinned_connection_taken_over_from_another_session_is_brought_forward() -> anyhow::Result<()> {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start())?;
    let opts = ProxyOptions { routing_extra: RULES.into(), backend_extra: "pool_max = 1\n".into(), ..Default::default() };
    let proxy = TestProxy::start_with(&[&s0, &s1], opts).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE shop").await?;
    p.query_drop("CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40))").await?;
    let on = |s: u32| (1..=40i64).filter(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) / 512 == s).collect::<Vec<_>>();
    let (k0, k1) = (on(0), on(1));
    p.query_drop(format!("INSERT INTO shop.customers (id, name) VALUES ({}, 'a'), ({}, 'a')", k0[0], k1[0])).await?;
    drop(p);

    // Another session leaves s1's only pooled connection with its SET applied.
    let mut other = proxy.conn(Some("shop")).await?;
    other.query_drop("SET NAMES latin1").await?;
    let n: Option<i64> = other.query_first(format!("SELECT COUNT(*) FROM customers WHERE id = {}", k1[0])).await?;
    assert_eq!(n, Some(1));
    other.disconnect().await?;

    let mut c = proxy.conn(Some("shop")).await?;
    c.query_drop("SET NAMES latin1").await?;
    c.query_drop("START TRANSACTION").await?;
    let dup = c.query_drop(format!("INSERT INTO customers (id, name) VALUES ({}, 'dup')", k1[0])).await.expect_err("duplicate key");
    assert_eq!(code(dup), 1062);
    // Assigned on s0: replayed on s1's connection before its next statement.
    let v: Option<i64> = c.query_first(format!("SELECT @v := 7 FROM customers WHERE id = {}", k0[0])).await?;
    assert_eq!(v, Some(7));
    c.query_drop(format!("INSERT INTO customers (id, name) VALUES ({}, 'b')", k1[1])).await?;
    let v: Option<i64> = c.query_first(format!("SELECT @v FROM customers WHERE id = {}", k1[0])).await?;
    assert_eq!(v, Some(7), "the variable reached the pinned connection");
    let in_tx: Option<i64> = c.query_first(format!("SELECT @@in_transaction FROM customers WHERE id = {}", k1[0])).await?;
    assert_eq!(in_tx, Some(1));
    c.query_drop("ROLLBACK").await?;
    let mut fresh = proxy.conn(Some("shop")).await?;
    let n: Option<i64> = fresh.query_first(format!("SELECT COUNT(*) FROM customers WHERE id = {}", k1[1])).await?;
    assert_eq!(n, Some(0), "ROLLBACK undid the insert");
    Ok(())
}

/// A transaction's connection to one shard dies while the client is idle; the next
/// statement there needs that connection readied first (a user variable to replay) and
/// cannot be. The transaction's part on that shard is gone, so the session must not go on
/// as if it were open: the client gets an error and its connection is closed, and nothing
/// it wrote afterwards can be committed.
#[tokio::test]
async fn a_transaction_that_lost_a_shard_connection_does_not_go_on() -> anyhow::Result<()> {
    let s = setup().await?;
    let (k0, k1) = (s.k0[0], s.k1[0]);
    let mut c = s.proxy.conn(Some("shop")).await?;
    c.query_drop("START TRANSACTION").await?;
    c.query_drop(format!("UPDATE customers SET name = 'changed' WHERE id = {k1}")).await?;
    // The backend thread of the transaction: the only one with an open transaction there
    // (CONNECTION_ID() answers slotgate's id).
    let thread: Option<u64> = s._s.1.query_first("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX").await?;
    let thread = thread.expect("a thread id");
    s._s.1.exec(&format!("KILL CONNECTION {thread}")).await?;
    let v: Option<i64> = c.query_first(format!("SELECT @v := 7 FROM customers WHERE id = {k0}")).await?;
    assert_eq!(v, Some(7));
    let lost = c.query_drop(format!("UPDATE customers SET name = 'changed' WHERE id = {}", s.k1[1])).await;
    assert!(lost.is_err(), "the statement cannot run in a transaction that lost its connection");
    assert!(c.query_drop("COMMIT").await.is_err(), "the client connection was closed");
    assert_eq!(s.changed(&[k1, s.k1[1]]).await?, 0, "nothing of the transaction was committed");
    Ok(())
}

async fn charset(c: &mut Conn) -> anyhow::Result<String> {
    Ok(c.query_first::<String, _>("SELECT @@character_set_client").await?.unwrap_or_default())
}

/// A shard restarts: the proxy notices (its boot time changed), forgets what its old
/// connections carried, and sessions afterwards get exactly the state they set, never one
/// recorded for an old connection whose thread id a new one reuses.
#[tokio::test]
async fn session_state_is_right_after_a_shard_restarts() -> anyhow::Result<()> {
    let mut s0 = MariaDb::start().await?;
    let proxy = TestProxy::start_with(&[&s0], ProxyOptions { backend_extra: "pool_max = 2\n".into(), ..Default::default() }).await?;
    let mut direct = mysql_async::Conn::from_url(format!("mysql://{}:{}@{}/", s0.user(), s0.password(), s0.addr())).await?;
    let default = charset(&mut direct).await?;
    drop(direct);
    assert_ne!(default, "latin1");
    for _ in 0..3 {
        let mut c = proxy.conn(None).await?;
        c.query_drop("SET NAMES latin1").await?;
        assert_eq!(charset(&mut c).await?, "latin1");
        c.disconnect().await?;
    }
    let restarts = |text: &str| -> f64 {
        text.lines().filter(|l| l.starts_with("slotgate_backend_restarts_total{")).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    assert_eq!(restarts(&proxy.metrics().await?), 0.0);
    // A server restarted within the second it booted looks the same from its boot time:
    // the restart comes once the server ran for a while, as in production.
    let mut direct = mysql_async::Conn::from_url(format!("mysql://{}:{}@{}/", s0.user(), s0.password(), s0.addr())).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let up: Option<u64> = direct.query_first("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'").await?;
        if up.unwrap_or(0) >= 4 {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "uptime did not reach 4 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(direct);
    s0.restart().await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while restarts(&proxy.metrics().await?) < 1.0 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the restart was not noticed within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for round in 0..4 {
        let mut c = proxy.conn(None).await?;
        // (A pooled connection that died with the server is replaced before the statement.)
        assert_eq!(charset(&mut c).await?, default, "round {round}: a new session starts with the server's defaults");
        c.query_drop("SET NAMES latin1").await?;
        assert_eq!(charset(&mut c).await?, "latin1");
    }
    Ok(())
}
