//! Stock clients through the proxy: the mariadb command-line client and PyMySQL.

use mysql_async::prelude::*;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{TestProxy, PASSWORD, USER};
use tokio::process::Command;

/// Runs the mariadb client. The proxy runs on this test's runtime, so the child is awaited,
/// never waited for with a blocking call.
async fn cli(port: u16, password: &str, args: &[&str]) -> std::process::Output {
    let bin = ["mariadb", "mysql"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok())
        .expect("the mariadb client is missing: apt-get install -y mariadb-client");
    Command::new(bin)
        .args(["-h127.0.0.1", &format!("-P{port}"), &format!("-u{USER}"), &format!("-p{password}"), "--batch", "--skip-ssl"])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn mariadb_cli_logs_in_queries_and_is_refused_with_a_wrong_password() {
    let m = MariaDb::start().await.unwrap();
    let p = TestProxy::start(&[&m]).await.unwrap();
    let out = cli(p.mysql_port, PASSWORD, &["-e", "CREATE DATABASE cli; USE cli; CREATE TABLE t (a INT, b VARCHAR(10)); INSERT INTO t VALUES (1,'x'),(2,NULL); SELECT a, b FROM t ORDER BY a; SELECT @@version_comment LIMIT 1;"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("a\tb\n1\tx\n2\tNULL\n"), "{stdout}");
    // Default database on the command line, compression, and an auth switch from ed25519.
    let out = cli(p.mysql_port, PASSWORD, &["--compress", "--default-auth=client_ed25519", "cli", "-e", "SELECT COUNT(*) AS n FROM t"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\n");
    // A client whose default plugin is MySQL 8's caching_sha2_password is switched over.
    let out = cli(p.mysql_port, PASSWORD, &["--default-auth=caching_sha2_password", "-e", "SELECT 'sha2 client ok' AS s"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s\nsha2 client ok\n");
    let out = cli(p.mysql_port, "wrong", &["-e", "SELECT 1"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR 1045 (28000)"), "{stderr}");
    // Backend errors arrive with their own code.
    let out = cli(p.mysql_port, PASSWORD, &["cli", "-e", "SELECT * FROM missing"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR 1146 (42S02)"));
}

#[tokio::test]
async fn pymysql_works_through_the_proxy() {
    let m = MariaDb::start().await.unwrap();
    let p = TestProxy::start(&[&m]).await.unwrap();
    p.conn(None).await.unwrap().query_drop("CREATE DATABASE py").await.unwrap();
    run_python("pymysql_check.py", p.mysql_port, "py", "pymysql checks passed").await;
}

/// PyMySQL's default is autocommit=0: idle such clients hold no backend connection, so
/// 2000 of them and then 50 transacting at once fit through a pool of 16 (issue #12 item 3).
#[tokio::test]
async fn idle_autocommit_off_clients_hold_no_backend_connection() {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start()).unwrap();
    let opts = slotgate_tests::proxy::ProxyOptions {
        routing_extra: ["acc", "log_c", "log_r"].iter().map(|t| format!("[[routing.rules]]\ndatabase = \"idle\"\ntable = \"{t}\"\ncolumn = \"id\"\n")).collect(),
        ..Default::default()
    };
    let p = TestProxy::start_with(&[&s0, &s1], opts).await.unwrap();
    p.conn(None).await.unwrap().query_drop("CREATE DATABASE idle").await.unwrap();
    let metrics = p.admin_url("/metrics");
    run_python_args("idle_autocommit_check.py", p.mysql_port, "idle", &[&metrics, "2000", "50"], "idle autocommit checks passed").await;
}

/// Runs one of tests/python/*.py against the proxy and checks it reported success.
async fn run_python(script: &str, port: u16, db: &str, success: &str) {
    run_python_args(script, port, db, &[], success).await
}

async fn run_python_args(script: &str, port: u16, db: &str, extra: &[&str], success: &str) {
    let script = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let port = port.to_string();
    let mut args = vec![script.as_str(), "127.0.0.1", &port, USER, PASSWORD, db];
    args.extend_from_slice(extra);
    let out = Command::new("python3")
        .args(&args)
        .output()
        .await
        .expect("python3 is missing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(success), "{stdout}");
}

#[tokio::test]
async fn load_data_local_infile_streams_the_clients_file() {
    let m = MariaDb::start().await.unwrap();
    let p = TestProxy::start(&[&m]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    let body: String = (1..=5000).map(|i| format!("{i},name{i}\n")).collect();
    std::fs::write(&file, body).unwrap();
    let sql = format!(
        "CREATE DATABASE ld; CREATE TABLE ld.t (id INT PRIMARY KEY, name VARCHAR(20)); \
         LOAD DATA LOCAL INFILE '{}' INTO TABLE ld.t FIELDS TERMINATED BY ','; SELECT COUNT(*), MAX(name) FROM ld.t;",
        file.display()
    );
    let out = cli(p.mysql_port, PASSWORD, &["--local-infile=1", "-e", &sql]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5000\tname999"), "{}", String::from_utf8_lossy(&out.stdout));
    // Into a missing table: the backend's error, and the connection stays usable.
    let sql = format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE ld.nope; SELECT 'after'", file.display());
    let out = cli(p.mysql_port, PASSWORD, &["--local-infile=1", "-e", &sql]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR 1146"), "{}", String::from_utf8_lossy(&out.stderr));
    let mut c = p.conn(Some("ld")).await.unwrap();
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(5000));
}

#[tokio::test]
async fn tls_from_config_and_require_tls_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .await
        .expect("openssl is missing: apt-get install -y openssl");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let m = MariaDb::start().await.unwrap();
    let opts = slotgate_tests::proxy::ProxyOptions {
        sections: format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display()),
        users_extra: format!(
            "[[users]]\nname = \"secure\"\npassword_hash = \"{}\"\nrequire_tls = true\n",
            slotgate_proxy::config::users::native_password_hash("pw")
        ),
        ..Default::default()
    };
    let p = TestProxy::start_with(&[&m], opts).await.unwrap();
    let run = |user: &'static str, pw: &'static str, tls: bool| {
        let port = p.mysql_port;
        async move {
            Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{port}"), &format!("-u{user}"), &format!("-p{pw}")])
                .arg(if tls { "--ssl" } else { "--skip-ssl" })
                .args(["-e", "status"])
                .output()
                .await
                .unwrap()
        }
    };
    let out = run("secure", "pw", true).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Cipher in use"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run("secure", "pw", false).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR 1045"), "require_tls refuses plain TCP");
    // Other users may still connect without TLS.
    let out = run(USER, PASSWORD, false).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn sqlalchemy_core_over_pymysql_with_a_sharded_table() {
    let (s0, s1, s2) = tokio::try_join!(MariaDb::start(), MariaDb::start(), MariaDb::start()).unwrap();
    let opts = slotgate_tests::proxy::ProxyOptions {
        routing_extra: "[[routing.rules]]\ndatabase = \"sa\"\ntable = \"users\"\ncolumn = \"id\"\n".into(),
        ..Default::default()
    };
    let p = TestProxy::start_with(&[&s0, &s1, &s2], opts).await.unwrap();
    p.conn(None).await.unwrap().query_drop("CREATE DATABASE sa").await.unwrap();
    run_python("sqlalchemy_routing_check.py", p.mysql_port, "sa", "sqlalchemy routing checks passed").await;
    // The mariadb CLI sees the same merged answers.
    let out = cli(p.mysql_port, PASSWORD, &["sa", "-e", "SELECT country, COUNT(*) AS n FROM users GROUP BY country; SELECT name FROM users WHERE id = 7"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "country\tn\nde\t96\nfr\t97\njp\t97\nname\nn7\n");
    // The rows really are spread: every shard holds some.
    for s in [&s0, &s1, &s2] {
        let n: Option<i64> = s.conn_db("sa").await.unwrap().query_first("SELECT COUNT(*) FROM users").await.unwrap();
        assert!(n.unwrap_or(0) > 50, "{n:?}");
    }
}

/// A multi-statement query with statements slotgate answers itself (LOAD DATA LOCAL, KILL,
/// SHOW PROCESSLIST, PREPARE/EXECUTE) runs statement by statement: PyMySQL sees the same
/// results, more-results flags and errors as from a direct MariaDB (issue #13 items 4, 5).
#[tokio::test]
async fn multi_statements_with_statements_slotgate_answers_match_mariadb() {
    let m = MariaDb::start().await.unwrap();
    let p = TestProxy::start(&[&m]).await.unwrap();
    p.conn(None).await.unwrap().query_drop("CREATE DATABASE direct").await.unwrap();
    p.conn(None).await.unwrap().query_drop("CREATE DATABASE through").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.tsv");
    std::fs::write(&file, "1\tx\n2\ty\n").unwrap();
    let script = format!("{}/python/multi_own_check.py", env!("CARGO_MANIFEST_DIR"));
    let run = |port: u16, user: &str, pw: &str, db: &str| {
        let args: Vec<String> = vec![script.clone(), "127.0.0.1".into(), port.to_string(), user.into(), pw.into(), db.into(), file.display().to_string()];
        async move {
            let out = Command::new("python3").args(&args).output().await.expect("python3 is missing");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let direct = run(m.port(), m.user(), m.password(), "direct").await;
    let through = run(p.mysql_port, USER, PASSWORD, "through").await;
    assert!(direct.contains("rows=[(1, 'x'), (2, 'y')]") && direct.contains("alive"), "{direct}");
    assert_eq!(through, direct);
}
