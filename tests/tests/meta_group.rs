//! The embedded Raft meta group with 3 real nodes (in-process, real sockets, real MariaDB
//! shards): election, init from the configuration, leader kill, restart from disk, a late
//! learner fed by a snapshot, a network partition, duplicate and invalid commands, and a slot
//! reassignment committed through one node that changes where another node routes; the
//! topology watch streams every version and resumes from one.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(15);

fn rule_opts() -> ProxyOptions {
    ProxyOptions {
        routing_extra: "slot_count = 64\n[[routing.rules]]\ndatabase = \"mg\"\ntable = \"t\"\ncolumn = \"id\"\n".into(),
        ..ProxyOptions::default()
    }
}

fn add_rule(table: &str) -> Value {
    json!({"kind": "add_rule", "rule": {"database": "x", "table": table, "column": "id"}})
}

async fn versions(c: &TestCluster<'_>, nodes: &[usize], v: u64) -> anyhow::Result<()> {
    for i in nodes {
        c.wait_version(*i, v, SECS).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_elect_a_leader_and_share_the_configured_topology() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    let c = TestCluster::start(&[&a, &b], 3, 3, rule_opts()).await?;
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    let (status, cluster) = c.get(leader, "/cluster").await?;
    assert_eq!(status, 200);
    assert_eq!(cluster["role"], "leader");
    let members = cluster["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{cluster}");
    assert!(members.iter().all(|m| m["kind"] == "voter"), "{cluster}");
    let (status, topo) = c.get((leader + 1) % 3, "/topology?linearizable=true").await?;
    assert_eq!(status, 200, "{topo}");
    assert_eq!(topo["version"], 1);
    assert_eq!(topo["shards"].as_array().map(Vec::len), Some(2));
    let (_, history) = c.get(2, "/topology/history").await?;
    assert_eq!(history[0]["command"]["kind"], "init", "{history}");

    // Clients work through every node.
    a.exec("CREATE DATABASE mg").await?;
    b.exec("CREATE DATABASE mg").await?;
    let mut conn = c.node(0)?.conn(Some("mg")).await?;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await?;
    conn.query_drop("INSERT INTO t (id, v) VALUES (1, 10), (2, 20), (3, 30), (4, 40)").await?;
    for i in 0..3 {
        let mut conn = c.node(i)?.conn(Some("mg")).await?;
        let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").await?;
        assert_eq!(n, Some(4));
    }

    // Metrics say who leads and which version each node routes with.
    let text = c.metrics(leader).await?;
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_raft_is_leader"), 1.0, "{text}");
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_topology_version"), 1.0);
    assert!(slotgate_tests::proxy::sample(&text, "slotgate_raft_term") >= 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_kill_reelects_and_a_restarted_node_comes_back_from_disk() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let mut c = TestCluster::start(&[&a], 3, 3, ProxyOptions::default()).await?;
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    let (s, r) = c.command(leader, "before-kill", add_rule("t1")).await?;
    assert_eq!((s, r["version"].as_u64()), (200, Some(2)), "{r}");

    c.kill(leader).await;
    let new_leader = c.wait_leader(SECS).await?;
    assert_ne!(new_leader, leader);
    let survivor = (0..3).find(|i| *i != leader && *i != new_leader).expect("a third node");
    // Commands work again through any surviving node (a follower forwards to the leader).
    let (s, r) = c.command(survivor, "after-kill", add_rule("t2")).await?;
    assert_eq!((s, r["version"].as_u64()), (200, Some(3)), "{r}");
    versions(&c, &[new_leader, survivor], 3).await?;

    // The killed node restarts from its data directory and catches up.
    c.start_node(leader).await?;
    assert!(c.version(leader) >= 2, "restarted with its acknowledged state (version {})", c.version(leader));
    versions(&c, &[leader], 3).await?;

    // A whole-cluster restart keeps the version and the history.
    for i in 0..3 {
        c.kill(i).await;
    }
    for i in 0..3 {
        c.start_node(i).await?;
        assert_eq!(c.version(i), 3, "node {} restarted with version {}", i + 1, c.version(i));
    }
    let leader = c.wait_leader(SECS).await?;
    let (_, history) = c.get(leader, "/topology/history").await?;
    let kinds: Vec<_> = history.as_array().into_iter().flatten().map(|h| h["command"]["kind"].clone()).collect();
    assert_eq!(kinds, vec![json!("init"), json!("add_rule"), json!("add_rule")]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_learner_catches_up_through_a_snapshot() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let mut c = TestCluster::new(&[&a], 4, 3, ProxyOptions::default())?;
    for i in 0..3 {
        c.start_node(i).await?;
    }
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    // snapshot_every = 5 in the test cluster: 12 commands purge the early log entries.
    for n in 0..12 {
        let (s, r) = c.command(leader, &format!("r{n}"), add_rule(&format!("t{n}"))).await?;
        assert_eq!(s, 200, "{r}");
    }
    versions(&c, &[0, 1, 2], 13).await?;
    // The leader purged its first entries, so a new node can only catch up from a snapshot.
    let lead = c.node(leader)?.handle().and_then(|h| h.meta()).cloned().expect("meta member");
    let purged = lead.raft().metrics().borrow().purged;
    assert!(purged.is_some_and(|p| p.index >= 1), "log purged on the leader: {purged:?}");
    c.start_node(3).await?;
    versions(&c, &[3], 13).await?;
    let node = c.node(3)?.handle().and_then(|h| h.meta()).cloned().expect("meta member");
    let snapshot = node.raft().metrics().borrow().snapshot;
    assert!(snapshot.is_some(), "the learner was fed a snapshot");
    let (_, cluster) = c.get(leader, "/cluster").await?;
    let learner = cluster["members"].as_array().into_iter().flatten().find(|m| m["id"] == 4).cloned();
    assert_eq!(learner.map(|m| m["kind"].clone()), Some(json!("learner")), "{cluster}");
    // It also receives what comes next.
    let (s, _) = c.command(3, "via-learner", add_rule("late")).await?;
    assert_eq!(s, 200);
    versions(&c, &[0, 1, 2, 3], 14).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_minority_cannot_commit_and_the_majority_can() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let c = TestCluster::start(&[&a], 3, 3, ProxyOptions::default()).await?;
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    // Cut the leader off: it is the minority.
    c.isolate(leader);
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (s, r) = c.command(leader, "minority", add_rule("lost")).await?;
    assert_eq!(s, 503, "the minority must not commit: {r}");
    assert_eq!(c.version(leader), 1);
    let (s, r) = c.command(majority[0], "majority", add_rule("kept")).await?;
    assert_eq!((s, r["version"].as_u64()), (200, Some(2)), "{r}");
    versions(&c, &majority, 2).await?;
    assert_eq!(c.version(leader), 1, "the cut-off node still routes with what it had");

    c.heal();
    versions(&c, &[leader], 2).await?;
    let (_, history) = c.get(leader, "/topology/history").await?;
    let ids: Vec<_> = history.as_array().into_iter().flatten().map(|h| h["request_id"].clone()).collect();
    assert!(ids.contains(&json!("majority")) && !ids.contains(&json!("minority")), "{history}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_commands_apply_once_and_invalid_ones_are_refused() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let mut c = TestCluster::start(&[&a], 3, 3, ProxyOptions::default()).await?;
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    let follower = (leader + 1) % 3;
    let (s, first) = c.command(follower, "dup", add_rule("d1")).await?;
    assert_eq!((s, first["retried"].clone()), (200, json!(false)), "{first}");
    // Sent again after a leader change: applied once.
    c.kill(leader).await;
    c.wait_leader(SECS).await?;
    let (s, again) = c.command(follower, "dup", add_rule("d1")).await?;
    assert_eq!((s, again["retried"].clone(), again["version"].clone()), (200, json!(true), first["version"].clone()), "{again}");
    let (_, topo) = c.get(follower, "/topology").await?;
    assert_eq!(topo["rules"].as_array().map(Vec::len), Some(1), "{topo}");
    assert_eq!(topo["version"], 2);

    // Invalid commands: a clear reason, nothing changes.
    let (s, r) = c.command(follower, "bad1", json!({"kind": "remove_shard", "shard": "nope"})).await?;
    assert_eq!(s, 409);
    assert!(r["error"].as_str().is_some_and(|e| e.contains("unknown shard \"nope\"")), "{r}");
    let (s, r) = c.command(follower, "bad2", json!({"kind": "assign_slots", "slots": [{"first": 0, "last": 5000}], "to": "s0"})).await?;
    assert_eq!(s, 409, "{r}");
    let (s, r) = c.post(follower, "/commands", &json!({"command": {"kind": "no_such_thing"}})).await?;
    assert_eq!(s, 400, "{r}");
    let (_, topo) = c.get(follower, "/topology").await?;
    assert_eq!(topo["version"], 2);

    // Without the admin token, or without the cluster secret, nothing gets in.
    let url = format!("http://127.0.0.1:{}/commands", c.admin_port(follower));
    let r = reqwest::Client::new().post(&url).json(&json!({"command": add_rule("x")})).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let url = format!("http://127.0.0.1:{}/raft/write", c.admin_port(follower));
    let r = reqwest::Client::new().post(&url).json(&json!({})).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let r = reqwest::Client::new().post(&url).header("x-slotgate-cluster-secret", "wrong-secret-0123456789").json(&json!({})).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    Ok(())
}

/// A key whose slot (of 64) is owned by shard index `want` under the uniform split of 2 shards.
fn key_owned_by(want: u32, skip: i64) -> i64 {
    (skip..).find(|k| slot_of(&KeyValue::Int(*k), 64) / 32 == want).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_moved_through_one_node_changes_where_another_node_routes() -> anyhow::Result<()> {
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    let c = TestCluster::start(&[&a, &b], 3, 3, rule_opts()).await?;
    let leader = c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    for s in [&a, &b] {
        s.exec("CREATE DATABASE mg").await?;
        s.exec("CREATE TABLE mg.t (id INT PRIMARY KEY, v INT)").await?;
    }
    // A key on s0 whose slot is empty: move that slot to s1 through node 1.
    let k = key_owned_by(0, 1000);
    let slot = slot_of(&KeyValue::Int(k), 64);
    // Slots move only through the cutover protocol: a bare assign_slots is refused.
    let (s, r) = c.command(0, "bare", json!({"kind": "assign_slots", "slots": [{"first": slot, "last": slot}], "to": "s1"})).await?;
    assert_eq!(s, 409, "{r}");
    assert!(r["error"].as_str().is_some_and(|e| e.contains("slotctl slots assign")), "{r}");
    let (s, r) = c.post(0, "/slots/move", &json!({"slots": slot.to_string(), "to": "s1"})).await?;
    assert_eq!((s, r["version"].as_u64()), (200, Some(3)), "prepare at 2, commit at 3: {r}");
    versions(&c, &[1], 3).await?;
    // Node 2 now routes the key to s1.
    let mut conn = c.node(1)?.conn(Some("mg")).await?;
    conn.query_drop(format!("INSERT INTO t (id, v) VALUES ({k}, 7)")).await?;
    let on_a: Option<i64> = a.conn().await?.query_first(format!("SELECT COUNT(*) FROM mg.t WHERE id = {k}")).await?;
    let on_b: Option<i64> = b.conn().await?.query_first(format!("SELECT COUNT(*) FROM mg.t WHERE id = {k}")).await?;
    assert_eq!((on_a, on_b), (Some(0), Some(1)));
    let v: Option<i64> = conn.query_first(format!("SELECT v FROM t WHERE id = {k}")).await?;
    assert_eq!(v, Some(7));

    // A slot that holds rows does not move without --force.
    let (s, r) = c.post(2, "/slots/move", &json!({"slots": slot.to_string(), "to": "s0"})).await?;
    assert_eq!(s, 409, "{r}");
    assert!(r["error"].as_str().is_some_and(|e| e.contains("1 rows of mg.t on shard \"s1\"")), "{r}");
    let (s, r) = c.post(2, "/slots/move", &json!({"slots": slot.to_string(), "to": "s0", "force": true})).await?;
    assert_eq!((s, r["version"].as_u64()), (200, Some(5)), "{r}");
    versions(&c, &[0, 1, 2], 5).await?;
    // The leader ran the moves: it counted their steps.
    let text = c.metrics(leader).await?;
    let count = |kind: &str, result: &str| slotgate_tests::proxy::sample(&text, &format!("slotgate_topology_commands_total{{kind=\"{kind}\",result=\"{result}\"}}"));
    assert_eq!(count("freeze_slots", "refused"), 1.0, "{text}");
    assert_eq!((count("freeze_slots", "applied"), count("assign_slots", "applied")), (2.0, 2.0), "{text}");
    assert_eq!(slotgate_tests::proxy::sample(&text, "slotgate_cutover_total{kind=\"slot_move\",result=\"committed\"}"), 2.0, "{text}");
    Ok(())
}

/// Reads `GET /topology/watch` lines until one has topology version `v` (or fails at `SECS`).
async fn watch_until(resp: &mut reqwest::Response, buf: &mut String, v: u64) -> anyhow::Result<Vec<Value>> {
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + SECS;
    loop {
        while let Some(at) = buf.find('\n') {
            let line: Value = serde_json::from_str(&buf[..at])?;
            buf.drain(..=at);
            let done = line["topology"]["version"] == json!(v);
            lines.push(line);
            if done {
                return Ok(lines);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.map_err(|_| anyhow::anyhow!("no version {v} on the watch: {lines:?}"))??;
        let chunk = chunk.ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        buf.push_str(std::str::from_utf8(&chunk)?);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_watch_streams_every_version_and_resumes_from_one() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let c = TestCluster::start(&[&a], 3, 3, ProxyOptions::default()).await?;
    c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    let url = format!("http://127.0.0.1:{}/topology/watch", c.admin_port(2));
    let http = reqwest::Client::new();
    let denied = http.get(&url).send().await?;
    assert_eq!(denied.status().as_u16(), 401, "the watch needs the admin token");
    let mut resp = http.get(&url).bearer_auth(slotgate_tests::cluster::ADMIN_TOKEN).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let first = watch_until(&mut resp, &mut buf, 1).await?;
    assert_eq!(first.first().map(|l| l["change"]["command"]["kind"].clone()), Some(json!("init")), "{first:?}");
    // Changes committed through another node reach the watcher, each with its command.
    for (i, t) in ["w1", "w2"].into_iter().enumerate() {
        let (s, v) = c.command(i, &format!("watch-{t}"), add_rule(t)).await?;
        assert_eq!(s, 200, "{v}");
    }
    let next = watch_until(&mut resp, &mut buf, 3).await?;
    let changes: Vec<u64> = next.iter().filter(|l| l.get("change").is_some()).filter_map(|l| l["version"].as_u64()).collect();
    assert_eq!(changes, vec![2, 3], "every version once, in order: {next:?}");
    // A consumer that saw version 2 resumes from it.
    let mut again = http.get(format!("{url}?from=2")).bearer_auth(slotgate_tests::cluster::ADMIN_TOKEN).send().await?;
    let mut buf = String::new();
    let resumed = watch_until(&mut again, &mut buf, 3).await?;
    let changes: Vec<u64> = resumed.iter().filter(|l| l.get("change").is_some()).filter_map(|l| l["version"].as_u64()).collect();
    assert_eq!(changes, vec![3], "{resumed:?}");
    Ok(())
}

/// A tiny HTTP endpoint for webhooks: answers 500 to the first `fail_first` requests, then 200;
/// sends each accepted body's `version` on the channel.
async fn webhook_receiver(fail_first: usize) -> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<u64>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0usize;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = s.read(&mut chunk).await else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end].lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                }
            };
            seen += 1;
            let ok = seen > fail_first;
            let status = if ok { "200 OK" } else { "500 Internal Server Error" };
            let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await;
            if ok {
                if let Some(v) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok()).and_then(|v| v["version"].as_u64()) {
                    let _ = tx.send(v);
                }
            }
        }
    });
    Ok((url, rx))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_posts_every_change_to_the_webhooks_and_retries_a_failing_one() -> anyhow::Result<()> {
    let a = MariaDb::start().await?;
    let (url, mut got) = webhook_receiver(2).await?;
    let opts = ProxyOptions { meta_extra: format!("webhooks = [\"{url}\"]"), ..ProxyOptions::default() };
    let c = TestCluster::start(&[&a], 3, 3, opts).await?;
    c.wait_leader(SECS).await?;
    versions(&c, &[0, 1, 2], 1).await?;
    for (i, t) in ["h1", "h2", "h3"].into_iter().enumerate() {
        let (s, v) = c.command(i, &format!("hook-{t}"), add_rule(t)).await?;
        assert_eq!(s, 200, "{v}");
    }
    let mut versions_seen = Vec::new();
    while versions_seen.last() != Some(&4) {
        let v = tokio::time::timeout(SECS, got.recv()).await.map_err(|_| anyhow::anyhow!("webhook deliveries so far: {versions_seen:?}"))?;
        versions_seen.push(v.ok_or_else(|| anyhow::anyhow!("receiver closed"))?);
    }
    // The first two attempts were refused (500) and retried: every version arrives, in order.
    let after_init: Vec<u64> = versions_seen.iter().copied().filter(|v| *v >= 2).collect();
    assert_eq!(after_init, vec![2, 3, 4], "{versions_seen:?}");
    Ok(())
}
