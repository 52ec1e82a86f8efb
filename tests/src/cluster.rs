//! A slotgate cluster for tests: several in-process nodes on real sockets forming one meta
//! group, in front of harness-started MariaDB shards.
//!
//! Contract: every node has its own admin port (picked free up front, since the voters must
//! know each other's addresses), its own data directory under one temporary directory, and its
//! own fault-injection handle; a node can be killed and restarted on the same data directory.
//! The first `voters` nodes are voters, the others join as learners.

use crate::mariadb::MariaDb;
use crate::proxy::{build_config, ProxyOptions, TestProxy};
use anyhow::{bail, Context};
use serde_json::Value;
use slotgate_proxy::server::NodeOptions;
use slotgate_proxy::Node;
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-1234";
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";

pub struct TestCluster<'a> {
    pub nodes: Vec<Option<TestProxy>>,
    pub faults: Vec<slotgate_meta::Faults>,
    admin_ports: Vec<u16>,
    voters: usize,
    shards: Vec<&'a MariaDb>,
    opts: ProxyOptions,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    scheme: &'static str,
}

/// A free TCP port on 127.0.0.1 (bound then released), below Linux's ephemeral range
/// (32768-60999): a node's admin port is chosen before the node starts (the voters' addresses
/// name it), and a port from the ephemeral range could meanwhile become the local end of some
/// outgoing connection.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Start at a spot that depends on the process, so parallel test binaries spread out.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 20000 + (std::process::id() % 600) as u16 * 20, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..2000 {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20000 + port.wrapping_sub(20000) % 12000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl<'a> TestCluster<'a> {
    /// `nodes` nodes of which the first `voters` vote, over clones of `shards` (s0 is home).
    /// `opts.routing_extra` / `opts.sections` add rules and settings to every node.
    pub async fn start(shards: &[&'a MariaDb], nodes: usize, voters: usize, opts: ProxyOptions) -> anyhow::Result<TestCluster<'a>> {
        let mut c = TestCluster::new(shards, nodes, voters, opts)?;
        for i in 0..nodes {
            c.start_node(i).await?;
        }
        Ok(c)
    }

    /// Like [`TestCluster::start`] but starts no node yet ([`TestCluster::start_node`]).
    pub fn new(shards: &[&'a MariaDb], nodes: usize, voters: usize, opts: ProxyOptions) -> anyhow::Result<TestCluster<'a>> {
        let mut admin_ports = Vec::new();
        for _ in 0..nodes {
            admin_ports.push(free_port()?);
        }
        Ok(TestCluster {
            nodes: (0..nodes).map(|_| None).collect(),
            faults: (0..nodes).map(|_| slotgate_meta::Faults::default()).collect(),
            admin_ports,
            voters,
            shards: shards.to_vec(),
            opts,
            dir: tempfile::tempdir()?,
            http: reqwest::Client::new(),
            scheme: "http",
        })
    }

    /// Talks https to the admin ports with `client` (nodes configured with `[admin_tls]`).
    pub fn use_tls(&mut self, client: reqwest::Client) {
        self.http = client;
        self.scheme = "https";
    }

    /// Writes node `i`'s config and users files into `dir` (for a node run as a process,
    /// its MySQL port `mysql_port`); returns the config's path.
    pub fn write_config(&self, i: usize, dir: &std::path::Path, mysql_port: u16) -> anyhow::Result<std::path::PathBuf> {
        let mut o = self.node_options(i);
        o.listen = Some(format!("127.0.0.1:{mysql_port}"));
        let users_path = dir.join(format!("users{}.toml", i + 1));
        let (config, users) = crate::proxy::config_text(&self.shards, &o, &users_path.display().to_string())?;
        let config_path = dir.join(format!("node{}.toml", i + 1));
        std::fs::write(&users_path, users)?;
        std::fs::write(&config_path, config)?;
        Ok(config_path)
    }

    fn node_options(&self, i: usize) -> ProxyOptions {
        let mut o = self.opts.clone();
        o.admin_listen = Some(format!("127.0.0.1:{}", self.admin_ports[i]));
        o.node_extra = format!("id = {}\nadmin_token = \"{ADMIN_TOKEN}\"\n{}", i + 1, o.node_extra);
        let mut meta = format!(
            "[meta]\ndata_dir = \"{}\"\ncluster_secret = \"{CLUSTER_SECRET}\"\nheartbeat_ms = 100\n\
             election_timeout_min_ms = 800\nelection_timeout_max_ms = 1600\nrpc_timeout_ms = 1000\nsnapshot_every = 5\n\
             lease_ms = 3000\ncutover_budget_ms = 6000\n{}\n",
            self.dir.path().join(format!("node{}", i + 1)).display(),
            self.opts.meta_extra
        );
        for v in 0..self.voters {
            meta.push_str(&format!("[[meta.voters]]\nid = {}\naddr = \"127.0.0.1:{}\"\n", v + 1, self.admin_ports[v]));
        }
        o.sections = format!("{}\n{meta}", o.sections);
        o
    }

    /// Starts (or restarts, on the same data directory) node `i`.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let (config, users) = build_config(&self.shards, &self.node_options(i))?;
        let handle = Node::start_with(config, users, NodeOptions { faults: self.faults[i].clone() }).await?;
        self.nodes[i] = Some(TestProxy::from_handle(handle));
        Ok(())
    }

    /// Stops node `i` at once, as a crash would.
    pub async fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.kill().await;
        }
    }

    pub fn node(&self, i: usize) -> anyhow::Result<&TestProxy> {
        self.nodes[i].as_ref().with_context(|| format!("node {} is not running", i + 1))
    }

    pub fn admin_port(&self, i: usize) -> u16 {
        self.admin_ports[i]
    }

    /// `--cluster` value naming every node.
    pub fn cluster_urls(&self) -> String {
        self.admin_ports.iter().map(|p| format!("{}://127.0.0.1:{p}", self.scheme)).collect::<Vec<_>>().join(",")
    }

    /// Cuts every link between node `i` and the others (both directions).
    pub fn isolate(&self, i: usize) {
        for j in 0..self.faults.len() {
            if j != i {
                self.faults[i].block(j as u64 + 1);
                self.faults[j].block(i as u64 + 1);
            }
        }
    }

    pub fn heal(&self) {
        for f in &self.faults {
            f.unblock_all();
        }
    }

    /// GET an admin path of node `i` as JSON (with the admin token).
    pub async fn get(&self, i: usize, path: &str) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}://127.0.0.1:{}{path}", self.scheme, self.admin_ports[i]);
        let r = self.http.get(url).bearer_auth(ADMIN_TOKEN).timeout(Duration::from_secs(10)).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// POST JSON to an admin path of node `i` (with the admin token).
    pub async fn post(&self, i: usize, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}://127.0.0.1:{}{path}", self.scheme, self.admin_ports[i]);
        let r = self.http.post(url).bearer_auth(ADMIN_TOKEN).json(body).timeout(Duration::from_secs(20)).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Node `i`'s Prometheus text (with the admin token).
    pub async fn metrics(&self, i: usize) -> anyhow::Result<String> {
        let url = format!("{}://127.0.0.1:{}/metrics", self.scheme, self.admin_ports[i]);
        Ok(self.http.get(url).bearer_auth(ADMIN_TOKEN).send().await?.text().await?)
    }

    /// Submits a topology command through node `i`.
    pub async fn command(&self, i: usize, request_id: &str, command: Value) -> anyhow::Result<(u16, Value)> {
        let body = serde_json::json!({ "request_id": request_id, "actor": "test", "command": command });
        self.post(i, "/commands", &body).await
    }

    /// Waits until the running nodes agree on one leader; returns its index.
    pub async fn wait_leader(&self, within: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let mut leaders = Vec::new();
            for i in 0..self.nodes.len() {
                if self.nodes[i].is_none() {
                    continue;
                }
                if let Ok((200, v)) = self.get(i, "/cluster").await {
                    leaders.push(v["leader"].as_u64());
                }
            }
            if let Some(Some(l)) = leaders.first() {
                let running = self.nodes[*l as usize - 1].is_some();
                if running && leaders.iter().all(|x| *x == Some(*l)) {
                    return Ok(*l as usize - 1);
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader within {within:?}: {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `i` routes with topology version `version` or later.
    pub async fn wait_version(&self, i: usize, version: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let h = self.node(i)?.handle();
            let have = h.map_or(0, |h| h.topology().version());
            let serving = h.and_then(|h| h.meta()).is_none_or(|m| m.serving());
            if have >= version && serving {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {} still at topology version {have} (serving: {serving}), wanted {version}", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Topology version node `i` routes with.
    pub fn version(&self, i: usize) -> u64 {
        self.nodes[i].as_ref().and_then(|n| n.handle()).map_or(0, |h| h.topology().version())
    }
}
