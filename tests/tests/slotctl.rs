//! `slotctl` (the real binary) against a 3-node cluster: status, shards, slots, rules,
//! members, history, and its error sentences for a bad token, an unreachable cluster and a
//! refused command.

use serde_json::Value;
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::cluster::{TestCluster, ADMIN_TOKEN};
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(15);

use slotgate_tests::slotctl_bin;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn slotctl(bin: &PathBuf, cluster: &str, token: &str, args: &[&str]) -> Out {
    let out = Command::new(bin)
        .args(["--cluster", cluster, "--token", token, "--timeout", "20"])
        .args(args)
        .output()
        .expect("run slotctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slotctl_drives_the_meta_group() -> anyhow::Result<()> {
    let bin = slotctl_bin();
    let (a, b) = (MariaDb::start().await?, MariaDb::start().await?);
    let opts = ProxyOptions {
        routing_extra: "slot_count = 64\n[[routing.rules]]\ndatabase = \"sc\"\ntable = \"t\"\ncolumn = \"id\"\n".into(),
        ..ProxyOptions::default()
    };
    let mut c = TestCluster::new(&[&a, &b], 4, 3, opts)?;
    for i in 0..3 {
        c.start_node(i).await?;
    }
    let leader = c.wait_leader(SECS).await?;
    for i in 0..3 {
        c.wait_version(i, 1, SECS).await?;
    }
    let urls = c.cluster_urls();
    let run = |args: &[&str]| slotctl(&bin, &urls, ADMIN_TOKEN, args);

    let st = run(&["status"]);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    assert!(st.stdout.contains(&format!("leader: node {}", leader + 1)) || st.stdout.contains(&format!("leader       {}", leader + 1)) || st.stdout.contains(&format!("{}", leader + 1)), "{}", st.stdout);
    for want in ["s0", "s1", "voter"] {
        assert!(st.stdout.contains(want), "status lacks {want}:\n{}", st.stdout);
    }
    let js = run(&["--json", "status"]);
    let v: Value = serde_json::from_str(&js.stdout)?;
    assert_eq!(v["cluster"]["leader"].as_u64(), Some(leader as u64 + 1), "{v}");
    assert_eq!(v["topology"]["version"], 1);

    // A new shard, then slots moved to it (empty slots: no --force needed).
    let extra = MariaDb::start().await?;
    let add = run(&["shard", "add", "s2", "--primary", &extra.addr()]);
    assert_eq!(add.code, 0, "{}{}", add.stdout, add.stderr);
    assert!(add.stdout.contains("version 2"), "{}", add.stdout);
    let mv = run(&["slots", "assign", "0-3,10", "--to", "s2"]);
    assert_eq!(mv.code, 0, "{}{}", mv.stdout, mv.stderr);
    // Prepared at version 3, committed at 4.
    assert!(mv.stdout.contains("version 4"), "{}", mv.stdout);
    for i in 0..3 {
        c.wait_version(i, 4, SECS).await?;
    }
    let topo = c.node(1)?.handle().map(|h| h.topology().load()).expect("running");
    for slot in [0u32, 1, 2, 3, 10] {
        assert_eq!(topo.shards[topo.shard_of_slot(slot)].id, "s2");
    }
    let list = run(&["slots", "list"]);
    assert!(list.stdout.contains("s2: 0-3, 10"), "{}", list.stdout);

    // Moving a slot that holds rows is refused with the reason, and allowed with --force.
    for s in [&a, &b, &extra] {
        s.exec("CREATE DATABASE sc").await?;
        s.exec("CREATE TABLE sc.t (id INT PRIMARY KEY)").await?;
    }
    let key = (1..).find(|k| slot_of(&KeyValue::Int(*k), 64) == 10).unwrap_or(0);
    extra.exec(&format!("INSERT INTO sc.t VALUES ({key})")).await?;
    let refused = run(&["slots", "assign", "10", "--to", "s0"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("rows of sc.t on shard \"s2\"") && refused.stderr.contains("--force"), "{}", refused.stderr);
    let forced = run(&["slots", "assign", "10", "--to", "s0", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);

    // Rules, shard states, replicas.
    assert_eq!(run(&["rule", "add", "sc.u", "uid"]).code, 0);
    let rules = run(&["rule", "list"]);
    assert!(rules.stdout.contains("sc") && rules.stdout.contains("uid"), "{}", rules.stdout);
    assert_eq!(run(&["rule", "remove", "sc.u"]).code, 0);
    // A rule over a table whose unique key lacks the shard column is refused, with the key
    // named, unless forced; keys that contain the column pass.
    for s in [&a, &b] {
        s.exec("CREATE TABLE sc.orders (order_id INT PRIMARY KEY, user_id INT, UNIQUE KEY by_user (user_id, order_id))").await?;
        s.exec("CREATE TABLE sc.items (order_id INT, user_id INT, PRIMARY KEY (user_id, order_id))").await?;
    }
    let refused = run(&["rule", "add", "sc.orders", "user_id"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains("PRIMARY KEY (order_id)") && refused.stderr.contains("1062") && refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("by_user"), "{}", refused.stderr);
    let unknown_column = run(&["rule", "add", "sc.orders", "uid"]);
    assert!(unknown_column.code == 1 && unknown_column.stderr.contains("no column \"uid\""), "{}", unknown_column.stderr);
    let forced = run(&["rule", "add", "sc.orders", "user_id", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let covered = run(&["rule", "add", "sc.items", "user_id"]);
    assert_eq!(covered.code, 0, "{}", covered.stderr);
    let rules = run(&["rule", "list"]);
    assert!(rules.stdout.contains("orders") && rules.stdout.contains("items"), "{}", rules.stdout);
    assert_eq!(run(&["rule", "remove", "sc.orders"]).code, 0);
    assert_eq!(run(&["rule", "remove", "sc.items"]).code, 0);
    assert_eq!(run(&["replica", "add", "s2", "127.0.0.1:1"]).code, 0);
    assert_eq!(run(&["replica", "remove", "s2", "127.0.0.1:1"]).code, 0);
    let busy = run(&["shard", "remove", "s2"]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.contains("still owns 4 slots"), "{}", busy.stderr);
    let unknown = run(&["shard", "state", "nope", "draining"]);
    assert!(unknown.stderr.contains("unknown shard \"nope\""), "{}", unknown.stderr);

    // History says who did what.
    let h = run(&["history"]);
    for kind in ["init", "add_shard", "assign_slots", "add_rule", "remove_rule", "add_replica"] {
        assert!(h.stdout.contains(kind), "history lacks {kind}:\n{}", h.stdout);
    }

    // Members: a fourth node joins as a learner; promote and remove it.
    c.start_node(3).await?;
    c.wait_version(3, 4, SECS).await?;
    let st = run(&["--json", "status"]);
    let v: Value = serde_json::from_str(&st.stdout)?;
    let kind = |v: &Value| v["cluster"]["members"].as_array().into_iter().flatten().find(|m| m["id"] == 4).map(|m| m["kind"].clone());
    assert_eq!(kind(&v), Some(Value::from("learner")), "{v}");
    let p = run(&["member", "promote", "4"]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let v: Value = serde_json::from_str(&run(&["--json", "status"]).stdout)?;
    assert_eq!(kind(&v), Some(Value::from("voter")), "{v}");
    let r = run(&["member", "remove", "4"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&run(&["--json", "status"]).stdout)?;
    assert_eq!(kind(&v), None, "{v}");

    // Errors: bad token, nothing reachable, already initialised.
    let bad = slotctl(&bin, &urls, "wrong-token", &["status"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("token"), "{}", bad.stderr);
    let gone = slotctl(&bin, "http://127.0.0.1:1", ADMIN_TOKEN, &["status"]);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("cannot reach"), "{}", gone.stderr);
    let again = run(&["init", "--shard", "z=127.0.0.1:2", "--home", "z"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already initialised"), "{}", again.stderr);
    Ok(())
}
