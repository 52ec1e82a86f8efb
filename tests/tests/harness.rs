//! Tests of the MariaDB test harness itself (`slotgate_tests::mariadb`): a started server is
//! usable and locked down, replication works, servers run in parallel, and kill/stop/restart
//! and Drop behave.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use slotgate_tests::{MariaDb, MariaDbOptions};
use std::path::PathBuf;

#[tokio::test]
async fn single_server_is_usable_and_locked_down() {
    let db = MariaDb::start().await.expect("start mariadb");
    assert_eq!(db.host(), "127.0.0.1");
    assert_eq!(db.addr(), format!("127.0.0.1:{}", db.port()));
    assert_eq!(db.user(), "app");
    assert!(db.password().len() >= 16);
    assert_ne!(db.password(), db.root_password());
    assert!(db.pid().is_some());

    let one: Option<i64> = db.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));

    // Through the URL form too, and the connection really is TCP to our port.
    let mut conn = Conn::from_url(db.url(None)).await.expect("connect via url");
    let port: Option<u16> = conn.query_first("SELECT @@port").await.unwrap();
    assert_eq!(port, Some(db.port()));
    conn.disconnect().await.unwrap();

    let anonymous: Option<i64> = db
        .query_first("SELECT COUNT(*) FROM mysql.user WHERE User = ''")
        .await
        .unwrap();
    assert_eq!(anonymous, Some(0));
    let empty_passwords: Option<i64> = db
        .query_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND authentication_string = ''",
        )
        .await
        .unwrap();
    assert_eq!(empty_passwords, Some(0), "root must have a password");

    // Server config the proxy relies on.
    let settings: Option<(String, String, i64)> = db
        .query_first("SELECT @@binlog_format, @@gtid_strict_mode, @@log_bin")
        .await
        .unwrap();
    assert_eq!(settings, Some(("ROW".into(), "1".into(), 1)));
    let binlog: Option<String> = db.query_first("SELECT @@gtid_binlog_pos").await.unwrap();
    assert_eq!(binlog.as_deref(), Some(""), "setup must not be binlogged");

    db.exec(
        "CREATE DATABASE t; CREATE TABLE t.x (id INT PRIMARY KEY, s VARCHAR(20)); \
             INSERT INTO t.x VALUES (1, 'héllo')",
    )
    .await
    .unwrap();
    let rows: Vec<(i32, String)> = db.query("SELECT id, s FROM t.x").await.unwrap();
    assert_eq!(rows, vec![(1, "héllo".to_string())]);
    let rows = db.query_rows("SELECT id FROM t.x").await.unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn wrong_password_and_anonymous_login_are_refused() {
    let db = MariaDb::start().await.expect("start mariadb");
    let base = OptsBuilder::default()
        .ip_or_hostname(db.host())
        .tcp_port(db.port())
        .prefer_socket(false);

    let wrong = base
        .clone()
        .user(Some(db.user()))
        .pass(Some("not-the-password"));
    let err = Conn::new(wrong)
        .await
        .expect_err("wrong password must be refused");
    assert!(
        matches!(&err, mysql_async::Error::Server(e) if e.code == 1045),
        "{err:?}"
    );

    let anonymous = base.clone().user(Some("")).pass(None::<String>);
    assert!(
        Conn::new(anonymous).await.is_err(),
        "anonymous login must be refused"
    );

    let root_no_password = base.clone().user(Some("root")).pass(None::<String>);
    assert!(
        Conn::new(root_no_password).await.is_err(),
        "root without password must be refused"
    );

    let root = base.user(Some("root")).pass(Some(db.root_password()));
    let conn = Conn::new(root).await.expect("root with its password");
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn primary_and_replica_replicate() {
    let primary = MariaDb::start().await.expect("start primary");
    // Work done before the replica attaches must replicate too.
    primary
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT); \
               CREATE USER 'early'@'%' IDENTIFIED BY 'pw'",
        )
        .await
        .unwrap();
    let replica = MariaDb::start_replica_of(&primary)
        .await
        .expect("start replica");
    assert_eq!(
        (replica.user(), replica.password()),
        (primary.user(), primary.password())
    );
    assert_ne!(replica.port(), primary.port());
    assert_ne!(replica.server_id(), primary.server_id());

    primary
        .exec("INSERT INTO shop.items VALUES (1, 'apple'), (2, 'pear')")
        .await
        .unwrap();
    replica.wait_caught_up(&primary).await.expect("catch up");
    let names: Vec<String> = replica
        .query("SELECT name FROM shop.items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(names, vec!["apple", "pear"]);

    let status = replica
        .replica_status()
        .await
        .unwrap()
        .expect("replica has slave status");
    assert_eq!(
        (status.io_running.as_str(), status.sql_running.as_str()),
        ("Yes", "Yes")
    );
    assert_eq!(status.last_sql_error, "");
    assert!(primary.replica_status().await.unwrap().is_none());
    let read_only: Option<i64> = replica.query_first("SELECT @@read_only").await.unwrap();
    assert_eq!(read_only, Some(1));
    let slave_pos: Option<String> = replica
        .query_first("SELECT @@gtid_slave_pos")
        .await
        .unwrap();
    assert_eq!(slave_pos, Some(primary.gtid_binlog_pos().await.unwrap()));
}

#[tokio::test]
async fn start_with_replica_and_catch_up_after_replica_restart() {
    let (primary, mut replica) = MariaDb::start_with_replica().await.expect("pair");
    primary
        .exec("CREATE DATABASE d; CREATE TABLE d.t (n INT)")
        .await
        .unwrap();
    replica.stop().await.unwrap();
    assert!(replica.pid().is_none());
    primary
        .exec("INSERT INTO d.t VALUES (1), (2), (3)")
        .await
        .unwrap();
    replica.restart().await.unwrap();
    replica
        .wait_caught_up(&primary)
        .await
        .expect("catch up after restart");
    let count: Option<i64> = replica
        .query_first("SELECT COUNT(*) FROM d.t")
        .await
        .unwrap();
    assert_eq!(count, Some(3));
}

#[tokio::test]
async fn wait_caught_up_reports_a_broken_replica() {
    let (primary, replica) = MariaDb::start_with_replica().await.expect("pair");
    primary
        .exec("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    replica.wait_caught_up(&primary).await.unwrap();
    // A row only the replica has makes the primary's insert of the same key fail there.
    replica
        .root_exec("SET SESSION sql_log_bin = 0; INSERT INTO d.t VALUES (1)")
        .await
        .unwrap();
    primary.exec("INSERT INTO d.t VALUES (1)").await.unwrap();
    let err = replica
        .wait_caught_up_within(&primary, std::time::Duration::from_secs(20))
        .await
        .expect_err("replication must be reported broken");
    assert!(format!("{err:#}").contains("Duplicate entry"), "{err:#}");
}

#[tokio::test]
async fn parallel_servers_get_distinct_ports_and_ids() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let ports = [a.port(), b.port(), c.port()];
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    let ids = [a.server_id(), b.server_id(), c.server_id()];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_ne!(a.dir(), b.dir());
    for db in [&a, &b, &c] {
        let id: Option<u32> = db.query_first("SELECT @@server_id").await.unwrap();
        assert_eq!(id, Some(db.server_id()));
    }
}

#[tokio::test]
async fn kill_restart_and_drop() {
    let mut db = MariaDb::start_with(MariaDbOptions {
        app_password: Some("fixed-pw".into()),
        extra_args: vec!["--max-connections=33".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(db.password(), "fixed-pw");
    let max: Option<i64> = db.query_first("SELECT @@max_connections").await.unwrap();
    assert_eq!(max, Some(33));
    db.exec("CREATE DATABASE keep; CREATE TABLE keep.t (n INT); INSERT INTO keep.t VALUES (7)")
        .await
        .unwrap();

    let pid = db.pid().unwrap();
    db.kill().unwrap();
    assert!(db.pid().is_none());
    assert!(!process_alive(pid), "killed process must be gone");
    assert!(
        db.conn().await.is_err(),
        "a killed server refuses connections"
    );

    let port = db.port();
    db.restart().await.unwrap();
    assert_eq!(db.port(), port);
    let n: Option<i64> = db.query_first("SELECT n FROM keep.t").await.unwrap();
    assert_eq!(n, Some(7), "data survives kill + restart");

    let pid = db.pid().unwrap();
    let dir: PathBuf = db.dir().to_path_buf();
    drop(db);
    assert!(!process_alive(pid), "drop kills the server");
    assert!(!dir.exists(), "drop removes the datadir");
}

#[tokio::test]
async fn drop_cleans_up_on_panic() {
    let (tx, rx) = std::sync::mpsc::channel();
    let task = tokio::spawn(async move {
        let db = MariaDb::start().await.unwrap();
        tx.send((db.pid().unwrap(), db.dir().to_path_buf()))
            .unwrap();
        panic!("test failure while a server runs");
    });
    assert!(task.await.is_err(), "the task panicked");
    let (pid, dir) = rx.recv().unwrap();
    assert!(!process_alive(pid));
    assert!(!dir.exists());
}

/// True if `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn startup_failures_report_the_error_log() {
    // Later arguments win, so this forces every attempt onto a port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = MariaDb::start_with(MariaDbOptions {
        extra_args: vec![format!("--port={port}")],
        ..Default::default()
    })
    .await
    .expect_err("a taken port must fail the start");
    let text = format!("{err:#}");
    assert!(
        text.contains("Address already in use") || text.contains("Bind on TCP/IP port"),
        "{text}"
    );

    let err = MariaDb::start_with(MariaDbOptions {
        extra_args: vec!["--no-such-option=1".into()],
        ..Default::default()
    })
    .await
    .expect_err("an unknown option must fail the start");
    assert!(format!("{err:#}").contains("no-such-option"), "{err:#}");
}
