//! SHOW PROCESSLIST lists slotgate's client connections with the ids clients know (those of
//! the handshake and of KILL), a `connection_admin` account sees and kills every user's
//! connections, and a session's wait_timeout closes its idle client connection, as on
//! MariaDB (issue #13, item 4; found by PyMySQL's test_issue_36 and
//! test_connection_gone_away).

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder, Row};
use slotgate_proxy::config::users::native_password_hash;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{ProxyOptions, TestProxy};
use std::time::{Duration, Instant};

async fn login(p: &TestProxy, user: &str, pw: &str) -> anyhow::Result<Conn> {
    let opts = OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(p.mysql_port).user(Some(user)).pass(Some(pw));
    Ok(Conn::new(opts).await?)
}

fn extra_users() -> String {
    format!(
        "[[users]]\nname = \"admin\"\npassword_hash = \"{}\"\nconnection_admin = true\n\n[[users]]\nname = \"other\"\npassword_hash = \"{}\"\n",
        native_password_hash("apw"),
        native_password_hash("opw")
    )
}

/// (Id, User, Command, Info) of each row of SHOW [FULL] PROCESSLIST.
async fn processlist(c: &mut Conn, full: bool) -> anyhow::Result<Vec<(u64, String, String, Option<String>)>> {
    let rows: Vec<Row> = c.query(if full { "SHOW FULL PROCESSLIST" } else { "SHOW PROCESSLIST" }).await?;
    let mut out = Vec::new();
    for r in rows {
        assert_eq!(r.columns_ref().len(), 9, "MariaDB's nine columns");
        let names: Vec<String> = r.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
        assert_eq!(names, ["Id", "User", "Host", "db", "Command", "Time", "State", "Info", "Progress"]);
        out.push((r.get(0).unwrap_or(0), r.get(1).unwrap_or_default(), r.get(4).unwrap_or_default(), r.get::<Option<String>, _>(7).flatten()));
    }
    Ok(out)
}

#[tokio::test]
async fn processlist_shows_handshake_ids_and_admins_see_and_kill_everyone() -> anyhow::Result<()> {
    let m = MariaDb::start().await?;
    let p = TestProxy::start_with(&[&m], ProxyOptions { users_extra: extra_users(), ..Default::default() }).await?;
    let mut mine = p.conn(None).await?;
    let mut other = login(&p, "other", "opw").await?;
    let mut admin = login(&p, "admin", "apw").await?;
    let other_id = u64::from(other.id());

    // An account sees its own connections only; the running one shows its statement.
    let rows = processlist(&mut mine, false).await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, u64::from(mine.id()), "the handshake's id, not a backend thread's");
    assert_eq!((rows[0].2.as_str(), rows[0].3.as_deref()), ("Query", Some("SHOW PROCESSLIST")));

    // An idle connection sleeps; FULL keeps long statements whole.
    let long = format!("SELECT '{}' AS x", "y".repeat(300));
    let _: Vec<Row> = other.query(&long).await?;
    let all = processlist(&mut admin, true).await?;
    let ids: Vec<u64> = all.iter().map(|r| r.0).collect();
    assert!(ids.contains(&other_id) && ids.contains(&u64::from(mine.id())) && ids.contains(&u64::from(admin.id())), "{all:?}");
    let row = all.iter().find(|r| r.0 == other_id).expect("other's row");
    assert_eq!((row.1.as_str(), row.2.as_str(), row.3.as_deref()), ("other", "Sleep", None));
    other.query_drop("SET @mark = 1").await?;
    let cut = processlist(&mut admin, false).await?;
    assert!(cut.iter().all(|r| r.3.as_ref().is_none_or(|i| i.chars().count() <= 100)));

    // Without connection_admin another account's connection cannot be killed (1095); the
    // admin can.
    let code = |e: mysql_async::Error| match e {
        mysql_async::Error::Server(e) => e.code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code(mine.query_drop(format!("KILL {other_id}")).await.unwrap_err()), 1095);
    admin.query_drop(format!("KILL {other_id}")).await?;
    assert!(other.query_drop("SELECT 1").await.is_err(), "killed by the admin");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processlist(&mut admin, false).await?;
        if !left.iter().any(|r| r.0 == other_id) {
            break;
        }
        assert!(Instant::now() < deadline, "the killed connection is still listed: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // In a multi-statement query too, the node's connections (not the backend's threads).
    let mut multi = Conn::new(p.opts(None)?).await?;
    let multi_id = u64::from(multi.id());
    let mut r = multi.query_iter("SELECT 1; SHOW PROCESSLIST").await?;
    let first: Vec<Row> = r.collect().await?;
    assert_eq!(first.len(), 1);
    let listed: Vec<Row> = r.collect().await?;
    drop(r);
    let ids: Vec<u64> = listed.iter().map(|row| row.get(0).unwrap_or(0)).collect();
    assert_eq!(ids, vec![u64::from(mine.id()), multi_id], "its own account's connections, by slotgate's ids");
    Ok(())
}

#[tokio::test]
async fn a_session_wait_timeout_closes_its_idle_client_connection() -> anyhow::Result<()> {
    let m = MariaDb::start().await?;
    let p = TestProxy::start(&[&m]).await?;
    let mut idle = p.conn(None).await?;
    idle.query_drop("SET SESSION wait_timeout = 1").await?;
    let mut busy = p.conn(None).await?;
    busy.query_drop("SET @@wait_timeout = 1").await?;
    // A connection that keeps sending commands within its timeout stays open...
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        let one: Option<i64> = busy.query_first("SELECT 1").await?;
        assert_eq!(one, Some(1));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...the idle one was closed after about a second, as MariaDB does (2013 / 2006).
    assert!(idle.query_drop("SELECT 1").await.is_err(), "the idle connection was closed");
    // Others keep the node's default: no limit.
    let mut plain = p.conn(None).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let two: Option<i64> = plain.query_first("SELECT 2").await?;
    assert_eq!(two, Some(2));
    Ok(())
}

/// CONNECTION_ID() answers the handshake's id (the one SHOW PROCESSLIST and KILL use) on
/// whichever pooled backend connection runs the statement, text or prepared, for every
/// client at once.
#[tokio::test]
async fn connection_id_is_the_handshake_id() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let p = TestProxy::start(&[&s0]).await?;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(p.conn(None).await?);
    }
    for round in 0..3 {
        for c in clients.iter_mut() {
            let want = u64::from(c.id());
            let text: Option<u64> = c.query_first("SELECT CONNECTION_ID()").await?;
            assert_eq!(text, Some(want), "round {round}");
            let prepared: Option<u64> = c.exec_first("SELECT CONNECTION_ID() + ?", (0,)).await?;
            assert_eq!(prepared, Some(want), "round {round}, prepared");
        }
    }
    let mut c = clients.remove(0);
    let id = u64::from(c.id());
    let ids: Vec<u64> = processlist(&mut c, false).await?.into_iter().map(|r| r.0).collect();
    assert!(ids.contains(&id), "{ids:?}");
    // Inside a transaction too, and after COM_RESET_CONNECTION.
    c.query_drop("BEGIN").await?;
    assert_eq!(c.query_first::<u64, _>("SELECT CONNECTION_ID()").await?, Some(id));
    c.query_drop("COMMIT").await?;
    c.reset().await?;
    assert_eq!(c.query_first::<u64, _>("SELECT CONNECTION_ID()").await?, Some(id));
    Ok(())
}
