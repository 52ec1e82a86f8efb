//! Chaos: 3 slotgate nodes run as processes over 2 shards (each a primary with a semi-sync
//! replica), writers through every node (acknowledged inserts and counter increments), while
//! a seeded schedule injects faults: SIGKILL and restart of the meta leader and of a
//! follower, SIGSTOP of a node for longer than its lease, a partition of a node from both
//! peers (its Raft and forwarded traffic dropped, `POST /debug/faults`), SIGKILL of a shard
//! primary (a failover), planned switchovers and online slot migrations, all overlapping.
//!
//! Afterwards: the group converges to one version with nothing frozen or migrating; no node
//! crashed by itself; every acknowledged insert is present exactly once, on the shard that
//! owns its slot, and no row at all sits on a shard that does not own it; each row was
//! written on a shard that owned its slot at the version current when it was written (a
//! trigger on the shards records the server and time of each insert; the versions are
//! replayed from the group's history); every counter lies between its acknowledged
//! increments and those plus the in-doubt ones.
//!
//! `CHAOS_SECONDS` (default 40) and `CHAOS_SEED` (default 11) set the run;
//! `scripts/chaos.sh --minutes N --seed S` runs it longer and records the outcome. A failing
//! run prints its seed and its schedule, so that it can be replayed.

use anyhow::{bail, Context, Result};
use mysql_async::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use slotgate_shared::api::HistoryEntry;
use slotgate_shared::{KeyValue, Topology};
use slotgate_tests::cluster::{free_port, TestCluster, ADMIN_TOKEN};
use slotgate_tests::proxy::{ProxyOptions, PASSWORD, USER};
use slotgate_tests::MariaDb;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const COUNTERS: i64 = 8;
const LEASE_MS: u64 = 3000;

/// A slotgate node run as a process.
struct Proc {
    config: PathBuf,
    log: PathBuf,
    mysql_port: u16,
    admin_port: u16,
    child: Option<Child>,
    paused: bool,
}

impl Proc {
    async fn start(&mut self, bin: &PathBuf) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting slotgate")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://127.0.0.1:{}/healthz", self.admin_port);
        while reqwest::get(&url).await.map(|r| r.status() != 200).unwrap_or(true) {
            if Instant::now() > deadline {
                bail!("node on admin port {} did not come up", self.admin_port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    fn signal(&mut self, sig: &str) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).status();
            self.paused = sig == "-STOP";
        }
    }

    /// The exit status of a node that ended although nobody stopped it.
    fn crashed(&mut self) -> Option<String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            _ => None,
        }
    }
}

/// Heals a partition made with `POST /debug/faults`.
async fn heal(p: &Proc) -> Result<()> {
    let (s, v) = post(p.admin_port, "/debug/faults", &json!({ "block": [] })).await?;
    anyhow::ensure!(s == 200, "healing node on admin port {}: {s} {v}", p.admin_port);
    Ok(())
}

async fn get(port: u16, path: &str) -> Result<Value> {
    let r = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}")).bearer_auth(ADMIN_TOKEN).timeout(Duration::from_secs(5)).send().await?;
    Ok(r.json().await?)
}

async fn post(port: u16, path: &str, body: &Value) -> Result<(u16, Value)> {
    let r = reqwest::Client::new().post(format!("http://127.0.0.1:{port}{path}")).bearer_auth(ADMIN_TOKEN).json(body).timeout(Duration::from_secs(30)).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

fn client_opts(port: u16) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("chaos"))
        .prefer_socket(false)
        .into()
}

/// Whether an error leaves it open whether the statement ran.
fn in_doubt(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(s) => matches!(s.code, 2013 | 1969 | 1317),
        _ => true,
    }
}

#[derive(Default)]
struct Outcome {
    inserted: Vec<i64>,
    increments: BTreeMap<i64, u64>,
    doubtful: BTreeMap<i64, u64>,
    errors: usize,
}

/// Inserts unique ids and increments counters through the node at `port` until `stop`.
async fn writer(port: u16, w: i64, seed: u64, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut conn: Option<mysql_async::Conn> = None;
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match tokio::time::timeout(Duration::from_secs(3), mysql_async::Conn::new(client_opts(port))).await {
                Ok(Ok(c)) => conn = Some(c),
                _ => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        n += 1;
        let counter = rng.random_range(1..=COUNTERS);
        let insert = rng.random_bool(0.6);
        let id = w * 1_000_000_000 + n;
        let run = async {
            if insert {
                c.exec_drop("INSERT INTO t (id, w) VALUES (?, ?)", (id, w)).await
            } else {
                c.exec_drop("UPDATE c SET v = v + 1 WHERE id = ?", (counter,)).await
            }
        };
        let result = match tokio::time::timeout(Duration::from_secs(15), run).await {
            Ok(r) => r.map_err(Some),
            Err(_) => Err(None),
        };
        match result {
            Ok(()) if insert => out.inserted.push(id),
            Ok(()) => *out.increments.entry(counter).or_default() += 1,
            Err(e) => {
                out.errors += 1;
                let doubt = e.as_ref().is_none_or(in_doubt);
                if doubt && !insert {
                    *out.doubtful.entry(counter).or_default() += 1;
                }
                if doubt {
                    conn = None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    out
}

/// The meta leader's index, as the running, unpaused nodes agree.
async fn leader(procs: &[Proc]) -> Option<usize> {
    let mut votes = HashMap::new();
    for p in procs.iter().filter(|p| p.child.is_some() && !p.paused) {
        if let Ok(v) = get(p.admin_port, "/cluster").await {
            if let Some(l) = v["leader"].as_u64() {
                *votes.entry(l as usize - 1).or_insert(0) += 1;
            }
        }
    }
    votes.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l)
}

async fn topology(procs: &[Proc]) -> Option<Topology> {
    for p in procs.iter().filter(|p| p.child.is_some() && !p.paused) {
        if let Ok(v) = get(p.admin_port, "/topology").await {
            if let Ok(t) = serde_json::from_value::<Topology>(v) {
                return Some(t);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_under_writers_lose_nothing_and_misroute_nothing() -> Result<()> {
    let seconds: u64 = std::env::var("CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    // The test suite replays one schedule; scripts/chaos.sh picks a new seed each run.
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    println!("chaos: seed {seed}, {seconds} s of faults (replay: CHAOS_SEED={seed} CHAOS_SECONDS={seconds})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (p0, r0) = MariaDb::start_with_replica().await?;
    let (p1, r1) = MariaDb::start_with_replica().await?;
    for (p, r) in [(&p0, &r0), (&p1, &r1)] {
        p.enable_semi_sync(r).await?;
        p.exec("CREATE DATABASE chaos").await?;
        // Each row records the server that took the insert and when (a trigger that only
        // fills what the insert left empty, so that copies made by a migration keep them).
        p.exec("CREATE TABLE chaos.t (id BIGINT PRIMARY KEY, w INT, origin INT UNSIGNED NULL, at_us BIGINT NULL)").await?;
        p.exec(
            "CREATE TRIGGER chaos.t_origin BEFORE INSERT ON chaos.t FOR EACH ROW \
             SET NEW.origin = IFNULL(NEW.origin, @@server_id), \
                 NEW.at_us = IFNULL(NEW.at_us, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED))",
        )
        .await?;
        p.exec("CREATE TABLE chaos.c (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)").await?;
        r.wait_caught_up(p).await?;
    }
    let servers = [&p0, &r0, &p1, &r1];
    let mut server_ids: HashMap<u64, String> = HashMap::new();
    for server in servers {
        let id: Option<u64> = server.query_first("SELECT @@server_id").await?;
        server_ids.insert(id.context("no server id")?, server.addr());
    }
    let opts = ProxyOptions {
        routing_extra: "slot_count = 64\n[[routing.rules]]\ndatabase = \"chaos\"\ntable = \"t\"\ncolumn = \"id\"\n\
                        [[routing.rules]]\ndatabase = \"chaos\"\ntable = \"c\"\ncolumn = \"id\"\n"
            .into(),
        meta_extra: "failover_check_ms = 500\nfailover_threshold = 2\n".into(),
        node_extra: "fault_injection = true\n".into(),
        ..ProxyOptions::default()
    };
    let cluster = TestCluster::new(&[&p0, &p1], 3, 3, opts)?;
    let dir = tempfile::tempdir()?;
    let bin = slotgate_tests::slotgate_bin();
    let mut procs = Vec::new();
    for i in 0..3 {
        let mysql_port = free_port()?;
        let config = cluster.write_config(i, dir.path(), mysql_port)?;
        procs.push(Proc { config, log: dir.path().join(format!("node{}.log", i + 1)), mysql_port, admin_port: cluster.admin_port(i), child: None, paused: false });
    }
    for p in procs.iter_mut() {
        p.start(&bin).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while topology(&procs).await.is_none() || leader(&procs).await.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let l = leader(&procs).await.unwrap_or(0);
    for (shard, r) in [("s0", &r0), ("s1", &r1)] {
        let body = json!({"request_id": format!("replica-{shard}"), "actor": "chaos", "command": {"kind": "add_replica", "shard": shard, "addr": r.addr()}});
        let (s, v) = post(procs[l].admin_port, "/commands", &body).await?;
        anyhow::ensure!(s == 200, "add_replica: {v}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut setup = loop {
        match mysql_async::Conn::new(client_opts(procs[0].mysql_port)).await {
            Ok(c) => break c,
            Err(e) => anyhow::ensure!(Instant::now() < deadline, "no client connection: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for k in 1..=COUNTERS {
        setup.exec_drop("INSERT INTO c (id, v) VALUES (?, 0)", (k,)).await?;
    }
    drop(setup);

    // Writers: two per node.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6).map(|w| tokio::spawn(writer(procs[w % 3].mysql_port, w as i64 + 1, seed ^ (w as u64 + 1), stop.clone()))).collect();

    // The fault schedule.
    let mut schedule: Vec<String> = Vec::new();
    let mut killed_servers: Vec<String> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4000))).await;
        let at = start.elapsed().as_secs_f32();
        let Some(topo) = topology(&procs).await else {
            schedule.push(format!("{at:.1}s no topology readable; waiting"));
            continue;
        };
        let lead = leader(&procs).await;
        match rng.random_range(0..7) {
            0 | 1 => {
                let victim = match (rng.random_range(0..2), lead) {
                    (0, Some(l)) => l,
                    (_, l) => (l.unwrap_or(0) + rng.random_range(1..3)) % 3,
                };
                if procs[victim].paused {
                    continue;
                }
                schedule.push(format!("{at:.1}s SIGKILL node {} ({})", victim + 1, if Some(victim) == lead { "leader" } else { "follower" }));
                procs[victim].kill().await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
                procs[victim].start(&bin).await?;
            }
            2 => {
                let victim = rng.random_range(0..3);
                if procs.iter().any(|p| p.paused) || procs[victim].child.is_none() {
                    continue;
                }
                schedule.push(format!("{at:.1}s SIGSTOP node {} for {} ms", victim + 1, LEASE_MS + 1000));
                procs[victim].signal("-STOP");
                tokio::time::sleep(Duration::from_millis(LEASE_MS + 1000)).await;
                procs[victim].signal("-CONT");
            }
            3 => {
                let shard = &topo.shards[rng.random_range(0..topo.shards.len())];
                if shard.replicas.is_empty() || killed_servers.iter().any(|k| *k == shard.primary || shard.replicas.contains(k)) {
                    continue;
                }
                let Some(server) = servers.iter().find(|s| s.addr() == shard.primary) else { continue };
                let Some(pid) = server.pid() else { continue };
                schedule.push(format!("{at:.1}s SIGKILL primary {} of {}", shard.primary, shard.id));
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed_servers.push(shard.primary.clone());
            }
            4 => {
                let shard = &topo.shards[rng.random_range(0..topo.shards.len())];
                let via = rng.random_range(0..3);
                if shard.replicas.is_empty() || procs[via].paused || procs[via].child.is_none() {
                    continue;
                }
                let (s, v) = post(procs[via].admin_port, "/switchover", &json!({"shard": shard.id, "request_id": format!("sw-{seed}-{at}")})).await.unwrap_or((0, Value::Null));
                schedule.push(format!("{at:.1}s switchover of {} via node {}: {s} {}", shard.id, via + 1, v.get("error").or(v.get("version")).unwrap_or(&Value::Null)));
            }
            5 => {
                // A partition: the node drops its Raft and forwarded traffic with both peers
                // for longer than its lease, then heals.
                let victim = rng.random_range(0..3);
                if procs[victim].paused || procs[victim].child.is_none() {
                    continue;
                }
                let peers: Vec<u64> = (1..=3).filter(|id| *id != victim as u64 + 1).collect();
                let (s, v) = post(procs[victim].admin_port, "/debug/faults", &json!({ "block": peers })).await.unwrap_or((0, Value::Null));
                schedule.push(format!("{at:.1}s partition node {} ({}) for {} ms: {s}", victim + 1, if Some(victim) == lead { "leader" } else { "follower" }, LEASE_MS + 1500));
                anyhow::ensure!(s == 200, "POST /debug/faults: {s} {v}");
                tokio::time::sleep(Duration::from_millis(LEASE_MS + 1500)).await;
                heal(&procs[victim]).await?;
            }
            _ => {
                let first = rng.random_range(0..topo.slot_count - 4);
                let from = topo.shard_of_slot(first);
                let to = &topo.shards[(from + 1) % topo.shards.len()].id;
                let slots = format!("{first}-{}", first + rng.random_range(0..4));
                let via = rng.random_range(0..3);
                if procs[via].paused || procs[via].child.is_none() {
                    continue;
                }
                let (s, v) = post(procs[via].admin_port, "/migrations", &json!({"slots": slots, "to": to})).await.unwrap_or((0, Value::Null));
                schedule.push(format!("{at:.1}s migrate slots {slots} to {to} via node {}: {s} {}", via + 1, v.get("error").or(v.get("id")).unwrap_or(&Value::Null)));
            }
        }
    }
    let report = |what: &str| format!("{what}\nseed {seed}; schedule:\n  {}", schedule.join("\n  "));

    // Heal, then stop the writers.
    for p in procs.iter_mut() {
        if p.paused {
            p.signal("-CONT");
        }
    }
    for p in procs.iter().filter(|p| p.child.is_some()) {
        heal(p).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for w in writers {
        outcomes.push(w.await?);
    }

    // The group converges: one version everywhere, nothing frozen or moving or migrating.
    let deadline = Instant::now() + Duration::from_secs(120);
    let topo = loop {
        let mut versions = Vec::new();
        let mut last = None;
        for p in &procs {
            if let Ok(v) = get(p.admin_port, "/topology").await {
                versions.push(v["version"].as_u64());
                last = serde_json::from_value::<Topology>(v).ok();
            }
        }
        let migrating = match leader(&procs).await {
            Some(l) => get(procs[l].admin_port, "/migrations").await.ok().and_then(|v| v.as_array().cloned()).unwrap_or_default(),
            None => vec![json!("no leader")],
        };
        let active = migrating.iter().any(|m| !matches!(m["phase"].as_str(), Some("done" | "failed" | "cancelled")));
        if let Some(t) = last.filter(|t| versions.len() == 3 && versions.iter().all(|v| *v == Some(t.version)) && t.frozen.is_empty() && t.moving.is_empty() && !active) {
            break t;
        }
        if Instant::now() > deadline {
            bail!("{}", report(&format!("no convergence: versions {versions:?}, migrations {migrating:?}")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (i, p) in procs.iter_mut().enumerate() {
        if let Some(status) = p.crashed() {
            bail!("{}", report(&format!("node {} exited by itself ({status}); log {}", i + 1, p.log.display())));
        }
    }

    // Ownership through time, replayed from the group's history of commands.
    let l = leader(&procs).await.context("no leader after convergence")?;
    let history: Vec<HistoryEntry> = serde_json::from_value(get(procs[l].admin_port, "/topology/history").await?)?;
    anyhow::ensure!(history.first().map(|e| e.version) == Some(1), "{}", report("the history no longer starts at version 1: run shorter"));
    let mut versions: Vec<(u64, Topology)> = Vec::new();
    for e in &history {
        let next = e.command.apply(versions.last().map(|(_, t)| t)).map_err(|err| anyhow::anyhow!("replaying version {}: {err}", e.version))?;
        versions.push((e.at_ms * 1000, next));
    }
    anyhow::ensure!(versions.last().map(|(_, t)| t.version) == Some(topo.version), "{}", report("the replayed history does not end at the final version"));
    let shard_of_server = |server_id: u64| -> Option<String> {
        let addr = server_ids.get(&server_id)?;
        versions.iter().flat_map(|(_, t)| t.shards.iter()).find(|s| s.primary == *addr || s.replicas.contains(addr)).map(|s| s.id.clone())
    };
    let owner_at = |id: i64, at_us: u64| -> Option<String> {
        let (_, t) = versions.iter().rev().find(|(from, _)| *from <= at_us)?;
        Some(t.shards[t.shard_for_key(&KeyValue::Int(id))].id.clone())
    };

    // Every row on its owner, written on a shard that owned its slot at the time, every
    // acknowledged insert exactly once.
    let mut placed: HashMap<i64, Vec<String>> = HashMap::new();
    let mut checked_origins = 0usize;
    for (idx, shard) in topo.shards.iter().enumerate() {
        let server = servers.iter().find(|s| s.addr() == shard.primary).context("a primary the test did not start")?;
        let rows: Vec<(i64, Option<u64>, Option<u64>)> = server.query("SELECT id, origin, at_us FROM chaos.t").await?;
        for (id, origin, at_us) in rows {
            let (Some(origin), Some(at_us)) = (origin, at_us) else {
                bail!("{}", report(&format!("row {id} on {} does not say where it was written", shard.id)));
            };
            let written_on = shard_of_server(origin);
            // The version that was current when the insert ran (or 2 ms earlier, for the
            // millisecond the history's times are rounded to).
            let owners = [owner_at(id, at_us), owner_at(id, at_us.saturating_sub(2000))];
            if written_on.is_none() || !owners.contains(&written_on) {
                bail!(
                    "{}",
                    report(&format!("row {id} was written on {written_on:?} (server {origin}) at {at_us} µs, when its slot belonged to {:?}", owners[0]))
                );
            }
            checked_origins += 1;
            let owner = topo.shard_for_key(&KeyValue::Int(id));
            if owner != idx {
                bail!("{}", report(&format!("row {id} sits on {} but its slot belongs to {}", shard.id, topo.shards[owner].id)));
            }
            placed.entry(id).or_default().push(shard.id.clone());
        }
    }
    let acked: Vec<i64> = outcomes.iter().flat_map(|o| o.inserted.iter().copied()).collect();
    let lost: Vec<&i64> = acked.iter().filter(|id| !placed.contains_key(id)).collect();
    let doubled: Vec<(&i64, &Vec<String>)> = placed.iter().filter(|(_, s)| s.len() > 1).collect();
    if !lost.is_empty() || !doubled.is_empty() {
        bail!("{}", report(&format!("{} acknowledged inserts lost ({:?}…), {} rows on two shards", lost.len(), &lost[..lost.len().min(5)], doubled.len())));
    }
    // Counters, read through a node: between the acknowledged and the possible increments.
    let mut c = mysql_async::Conn::new(client_opts(procs[0].mysql_port)).await?;
    let values: Vec<(i64, i64)> = c.query("SELECT id, v FROM c ORDER BY id").await?;
    anyhow::ensure!(values.len() == COUNTERS as usize, "{}", report(&format!("counter rows: {values:?}")));
    for (k, v) in &values {
        let ok: u64 = outcomes.iter().map(|o| o.increments.get(k).copied().unwrap_or(0)).sum();
        let doubt: u64 = outcomes.iter().map(|o| o.doubtful.get(k).copied().unwrap_or(0)).sum();
        if (*v as u64) < ok || (*v as u64) > ok + doubt {
            bail!("{}", report(&format!("counter {k} is {v}: {ok} increments acknowledged, {doubt} in doubt")));
        }
    }
    let count: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await?;
    anyhow::ensure!(count == Some(placed.len() as i64), "{}", report(&format!("COUNT(*) through a node {count:?}, rows on the shards {}", placed.len())));
    let increments: u64 = outcomes.iter().flat_map(|o| o.increments.values()).sum();
    let errors: usize = outcomes.iter().map(|o| o.errors).sum();
    anyhow::ensure!(acked.len() > 100 && increments > 50, "{}", report(&format!("too little got through: {} inserts, {increments} increments", acked.len())));
    println!(
        "chaos: seed {seed}, {seconds} s, {} faults, {} acknowledged inserts and {increments} increments checked, {checked_origins} rows' writer shard checked against {} versions, {errors} client errors, 0 lost, final version {}",
        schedule.len(),
        acked.len(),
        versions.len(),
        topo.version
    );
    println!("schedule:\n  {}", schedule.join("\n  "));
    Ok(())
}
