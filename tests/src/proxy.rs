//! An in-process slotgate node in front of harness-started MariaDB servers, for tests.
//!
//! Contract: each `TestProxy` binds its own free ports and has its own metrics, so tests run
//! in parallel; it shuts down when dropped or through `shutdown()`.

use crate::mariadb::MariaDb;
use anyhow::Context;
use slotgate_proxy::config::users::native_password_hash;
use slotgate_proxy::{Config, Node, NodeHandle, Users};

/// The client account every test proxy has.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "t3st-pw";

pub struct TestProxy {
    handle: Option<NodeHandle>,
    pub mysql_port: u16,
    pub admin_port: u16,
}

/// Extra `[node]` / `[backend]` lines for a test.
#[derive(Default, Clone)]
pub struct ProxyOptions {
    /// `node.admin_listen` (default `127.0.0.1:0`).
    pub admin_listen: Option<String>,
    /// `node.listen` (default `127.0.0.1:0`).
    pub listen: Option<String>,
    pub node_extra: String,
    pub backend_extra: String,
    pub users_extra: String,
    /// Lines added to `[routing]` (slot_count, transaction_mode, `[[routing.rules]]` last).
    pub routing_extra: String,
    /// Whole sections appended to the config (e.g. `[tls]`).
    pub sections: String,
    /// Lines added to the `[meta]` section a `TestCluster` writes.
    pub meta_extra: String,
}

impl TestProxy {
    /// A node whose default shard is the first server; every server is a shard s0, s1, ...
    pub async fn start(shards: &[&MariaDb]) -> anyhow::Result<TestProxy> {
        Self::start_with(shards, ProxyOptions::default()).await
    }

    pub async fn start_with(shards: &[&MariaDb], opts: ProxyOptions) -> anyhow::Result<TestProxy> {
        let (config, users) = build_config(shards, &opts)?;
        let handle = Node::start(config, users).await?;
        Ok(TestProxy::from_handle(handle))
    }

    /// Wraps a started node.
    pub fn from_handle(handle: NodeHandle) -> TestProxy {
        TestProxy { mysql_port: handle.mysql_addr.port(), admin_port: handle.admin_addr.port(), handle: Some(handle) }
    }

    /// The running node.
    pub fn handle(&self) -> Option<&NodeHandle> {
        self.handle.as_ref()
    }

    /// Stops the node at once, as a crash would.
    pub async fn kill(mut self) {
        if let Some(h) = self.handle.take() {
            h.kill().await;
        }
    }

    /// mysql_async URL through the proxy.
    pub fn url(&self, db: Option<&str>) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{}?prefer_socket=false", self.mysql_port, db.unwrap_or(""))
    }

    pub fn opts(&self, db: Option<&str>) -> anyhow::Result<mysql_async::Opts> {
        Ok(mysql_async::Opts::from_url(&self.url(db))?)
    }

    pub async fn conn(&self, db: Option<&str>) -> anyhow::Result<mysql_async::Conn> {
        Ok(mysql_async::Conn::new(self.opts(db)?).await?)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    /// The node's Prometheus text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(self.admin_url("/metrics")).await?.text().await?)
    }

    /// Value of one sample line (`name{labels}`) in the metrics text, 0 if absent.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        Ok(sample(&text, series))
    }

    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// The config and users of a test node in front of `shards` (s0, s1, ... with s0 home).
pub fn build_config(shards: &[&MariaDb], opts: &ProxyOptions) -> anyhow::Result<(Config, Users)> {
    let (text, users) = config_text(shards, opts, "unused")?;
    let config = Config::parse(&text).map_err(anyhow::Error::msg)?;
    config.validate()?;
    Ok((config, Users::parse(&users)?))
}

/// The TOML texts of a test node's config (naming `users_file`) and of its users file.
pub fn config_text(shards: &[&MariaDb], opts: &ProxyOptions, users_file: &str) -> anyhow::Result<(String, String)> {
    let first = shards.first().context("at least one shard")?;
    let mut text = format!(
        "[node]\nlisten = \"{}\"\nadmin_listen = \"{}\"\nusers_file = \"{users_file}\"\nshutdown_timeout_ms = 2000\n{}\n\
         [backend]\nuser = \"{}\"\npassword = \"{}\"\n{}connect_timeout_ms = 2000\npool_wait_timeout_ms = 3000\n{}\n",
        opts.listen.as_deref().unwrap_or("127.0.0.1:0"),
        opts.admin_listen.as_deref().unwrap_or("127.0.0.1:0"),
        opts.node_extra,
        first.user(),
        first.password(),
        if opts.backend_extra.contains("pool_max") { "" } else { "pool_max = 16\n" },
        opts.backend_extra,
    );
    for (i, s) in shards.iter().enumerate() {
        text.push_str(&format!("[[shards]]\nid = \"s{i}\"\nprimary = \"{}\"\n", s.addr()));
    }
    text.push_str(&format!("[routing]\nhome_shard = \"s0\"\n{}\n", opts.routing_extra));
    text.push_str(&opts.sections);
    let users = format!("[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n{}", native_password_hash(PASSWORD), opts.users_extra);
    Ok((text, users))
}

/// Finds `series` (exact, labels included) in Prometheus text.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(h.shutdown());
            }
        }
    }
}
