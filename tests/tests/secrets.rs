//! Secrets stay secret: through a 3-node cluster doing logins (right and wrong), routed
//! writes, a switchover, a slot move, refused admin requests and every read-only admin
//! endpoint, with every log line captured at debug level (trace for slotgate's own crates),
//! no configured secret appears in the logs, in `/topology`, in the history, in `/cluster`,
//! in `/metrics`, or in an error message a client or an operator got.

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use serde_json::json;
use slotgate_tests::cluster::{TestCluster, ADMIN_TOKEN, CLUSTER_SECRET};
use slotgate_tests::proxy::{ProxyOptions, PASSWORD};
use slotgate_tests::MariaDb;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(20);

/// Everything the test's subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_logs_admin_answers_or_error_messages() -> anyhow::Result<()> {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,slotgate_proxy=trace,slotgate_meta=trace"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let (p, r) = MariaDb::start_with_replica().await?;
    let b = MariaDb::start().await?;
    for s in [&p, &b] {
        s.exec("CREATE DATABASE co").await?;
        s.exec("CREATE TABLE co.t (id BIGINT PRIMARY KEY, w INT)").await?;
    }
    r.wait_caught_up(&p).await?;
    let opts = ProxyOptions {
        routing_extra: "slot_count = 64\n[[routing.rules]]\ndatabase = \"co\"\ntable = \"t\"\ncolumn = \"id\"\n".into(),
        ..ProxyOptions::default()
    };
    let c = TestCluster::start(&[&p, &b], 3, 3, opts).await?;
    let leader = c.wait_leader(SECS).await?;
    for i in 0..3 {
        c.wait_version(i, 1, SECS).await?;
    }
    let mut answers: Vec<String> = Vec::new();

    // Clients: right logins through every node, routed writes, and refused logins.
    for i in 0..3 {
        let mut conn = c.node(i)?.conn(Some("co")).await?;
        for id in 0..20 {
            conn.query_drop(format!("INSERT INTO t (id, w) VALUES ({}, 1)", i * 100 + id)).await?;
        }
        let wrong = OptsBuilder::from_opts(c.node(i)?.opts(None)?).pass(Some(format!("{PASSWORD}-typo")));
        answers.push(Conn::new(wrong).await.err().map(|e| e.to_string()).unwrap_or_default());
        let e = conn.query_drop("SELECT * FROM co.nope").await.err().map(|e| e.to_string()).unwrap_or_default();
        answers.push(e);
    }

    // Operators: a replica, a switchover, a slot move, refused and wrong-token requests.
    let (s, v) = c.command(leader, "add-r", json!({"kind": "add_replica", "shard": "s0", "addr": r.addr()})).await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post((leader + 1) % 3, "/switchover", &json!({"shard": "s0", "to": r.addr()})).await?;
    assert_eq!(s, 200, "switchover: {v}");
    answers.push(v.to_string());
    let (s, v) = c.post(leader, "/slots/move", &json!({"slots": "0-7", "to": "s1", "force": true})).await?;
    assert_eq!(s, 200, "slot move: {v}");
    answers.push(v.to_string());
    let (s, v) = c.post(leader, "/switchover", &json!({"shard": "s9", "to": "127.0.0.1:1"})).await?;
    assert_ne!(s, 200);
    answers.push(v.to_string());
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/topology", c.admin_port(leader));
    let refused = http.get(&url).bearer_auth(format!("{ADMIN_TOKEN}x")).send().await?;
    assert_eq!(refused.status(), 401, "a wrong token is refused");
    answers.push(refused.text().await?);
    for path in ["/topology", "/topology/history", "/cluster", "/migrations"] {
        for i in 0..3 {
            let (_, v) = c.get(i, path).await?;
            answers.push(v.to_string());
        }
    }
    for i in 0..3 {
        answers.push(c.metrics(i).await?);
    }
    let (_, history) = c.get(leader, "/topology/history").await?;
    assert!(history.to_string().contains("add_replica"), "the history was read: {history}");

    let text = String::from_utf8_lossy(&logs.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned();
    assert!(text.contains("login refused"), "the logs were captured (refused logins are logged)");
    assert!(text.lines().count() > 200, "debug logs were captured: {} lines", text.lines().count());
    let hash = slotgate_proxy::config::users::native_password_hash(PASSWORD);
    let secrets = [
        ("backend password", p.password().to_string()),
        ("root password of s0", p.root_password().to_string()),
        ("root password of s1", b.root_password().to_string()),
        ("cluster secret", CLUSTER_SECRET.to_string()),
        ("admin token", ADMIN_TOKEN.to_string()),
        ("client password", PASSWORD.to_string()),
        ("client password hash", hash.trim_start_matches('*').to_string()),
    ];
    for (what, secret) in &secrets {
        assert!(secret.len() >= 6, "{what} is long enough to search for");
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} appears in the logs: {line}");
        }
        for a in &answers {
            assert!(!a.contains(secret.as_str()), "the {what} appears in an answer: {a}");
        }
    }
    Ok(())
}
