//! The README's quick start: `scripts/demo.sh --detach` brings up 4 shards and 3 nodes that
//! stock clients log in to, forming one meta group that `slotctl` reports on, writes
//! `.demo/cluster.json`, and `scripts/demo.sh stop` ends it.

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::process::Command;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct StopDemo;

impl Drop for StopDemo {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg("scripts/demo.sh").arg("stop").current_dir(repo()).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_starts_a_cluster_clients_can_use() {
    let _stop = StopDemo;
    let out = tokio::process::Command::new("bash").args(["scripts/demo.sh", "--detach"]).current_dir(repo()).output().await.unwrap();
    assert!(out.status.success(), "demo failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let cluster: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join(".demo/cluster.json")).unwrap()).unwrap();
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(cluster["shards"].as_array().unwrap().len(), 4);
    for (i, port) in [6033, 6034, 6035].into_iter().enumerate() {
        let url = format!("mysql://demo:demo@127.0.0.1:{port}/demo?prefer_socket=false");
        let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        let id = 100 + i as i64;
        c.query_drop(format!("INSERT INTO users (id, name, country) VALUES ({id}, 'u{id}', 'de')")).await.unwrap();
        let name: Option<String> = c.query_first(format!("SELECT name FROM users WHERE id = {id}")).await.unwrap();
        assert_eq!(name.as_deref(), Some(format!("u{id}").as_str()));
    }
    let mut c = Conn::new(Opts::from_url("mysql://demo:demo@127.0.0.1:6034/demo?prefer_socket=false").unwrap()).await.unwrap();
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM users WHERE id BETWEEN 100 AND 102").await.unwrap();
    assert_eq!(n, Some(3), "every node sees the rows written through the others");
    // The three nodes form one meta group; slotctl (built by the demo) shows it.
    let out = Command::new(repo().join("target/debug/slotctl")).args(["--json", "status"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["cluster"]["leader"].as_u64().is_some(), "{status}");
    assert_eq!(status["cluster"]["members"].as_array().map(Vec::len), Some(3), "{status}");
    assert_eq!(status["topology"]["version"], 1, "{status}");
    assert_eq!(status["topology"]["shards"].as_array().map(Vec::len), Some(4), "{status}");
    // Every shard has a replica: a planned switchover through slotctl works from the README.
    assert!(cluster["shards"].as_array().unwrap().iter().all(|s| s["replica"].is_string()), "{cluster}");
    let out = Command::new(repo().join("target/debug/slotctl")).args(["--timeout", "60", "switchover", "s1"]).output().unwrap();
    assert!(out.status.success(), "switchover: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("switched over shard s1"), "{}", String::from_utf8_lossy(&out.stdout));
    for (i, port) in [6033, 6034, 6035].into_iter().enumerate() {
        let url = format!("mysql://demo:demo@127.0.0.1:{port}/demo?prefer_socket=false");
        let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        for k in 0..20i64 {
            let id = 1000 + 100 * i as i64 + k;
            c.query_drop(format!("INSERT INTO users (id, name, country) VALUES ({id}, 'v{id}', 'fr')")).await.unwrap();
        }
    }
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM users WHERE id >= 1000").await.unwrap();
    assert_eq!(n, Some(60), "writes after the switchover reach every shard");
    // README "Add a shard and move data to it": the spare server becomes s4 and slots 0-63,
    // with their rows, move onto it while the data stays readable.
    let spare = cluster["spare"]["addr"].as_str().unwrap().to_string();
    let slotctl = |args: &[&str]| {
        let out = Command::new(repo().join("target/debug/slotctl")).args(args).output().unwrap();
        assert!(out.status.success(), "slotctl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    slotctl(&["shard", "add", "s4", "--primary", &spare]);
    let before: Option<i64> = c.query_first("SELECT COUNT(*) FROM users").await.unwrap();
    let moving: Vec<i64> = (1..10_000).filter(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) < 64).take(50).collect();
    let values: Vec<String> = moving.iter().map(|k| format!("({}, 'm', 'nl')", 100_000 + k)).collect();
    c.query_drop(format!("INSERT INTO users (id, name, country) VALUES {}", values.join(","))).await.unwrap();
    let out = slotctl(&["--timeout", "60", "slots", "migrate", "0-63", "--to", "s4", "--wait"]);
    assert!(out.contains("migration 1 started") && out.contains("done"), "{out}");
    let after: Option<i64> = c.query_first("SELECT COUNT(*) FROM users").await.unwrap();
    assert_eq!(after, before.map(|n| n + 50), "every row once after the migration");
    let list = slotctl(&["migration", "list"]);
    assert!(list.contains("done") && list.contains("s4"), "{list}");
    let bad = Conn::new(Opts::from_url("mysql://demo:wrong@127.0.0.1:6033/demo?prefer_socket=false").unwrap()).await.unwrap_err();
    assert!(matches!(bad, mysql_async::Error::Server(ref e) if e.code == 1045), "{bad:?}");
}
