//! Node configuration: the TOML file an operator writes, parsed with unknown keys refused,
//! defaults filled in and `validate()` run before anything starts.
//!
//! Contract: a `Config` that left `Config::load` is valid; every error names the key at fault.
//! Secrets (client users' password hashes) live in a separate users file, see [`users`].

mod meta;
pub mod users;
pub mod users_sync;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use slotgate_shared::{Shard, ShardState, ShardingRule, Topology, TopologyError};

pub use meta::{MetaConfig, VoterConfig};
pub use users::{UserEntry, Users};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The whole node configuration (`slotgate.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `[admin_tls]`: TLS on the admin port (admin API, metrics, Raft between members).
    #[serde(default)]
    pub admin_tls: Option<AdminTlsConfig>,
    pub backend: BackendConfig,
    /// The initial shards. Without `[meta]` they are the topology; with it, they are proposed
    /// to the meta group once, when it has no topology yet (`meta.init_from_config`).
    #[serde(default)]
    pub shards: Vec<ShardConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[meta]`: this node is a member of the embedded Raft meta group that owns the topology.
    #[serde(default)]
    pub meta: Option<MetaConfig>,
    /// `[migration]`: how online slot migrations copy, catch up and cut over.
    #[serde(default)]
    pub migration: crate::jobs::migration::MigrationSettings,
    /// `[autosplit]`: the leader splits a shard that stays hot (off by default).
    #[serde(default)]
    pub autosplit: crate::jobs::autosplit::AutosplitSettings,
}

/// `[node]`: this process's identity, listeners and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(default = "default_node_id")]
    pub id: u64,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Bearer token required by the admin endpoints that change or reveal state.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Serve `/metrics` without the admin token (for a Prometheus that holds no secret).
    #[serde(default)]
    pub metrics_open: bool,
    /// Test clusters only: serve `POST /debug/faults`, which makes this node drop its Raft and
    /// forwarded traffic with chosen peers (a network partition without root rights).
    #[serde(default)]
    pub fault_injection: bool,
    /// Path of the users file; relative paths are taken from the config file's directory.
    pub users_file: PathBuf,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Version string sent in the handshake. It must look like MariaDB's so that drivers pick
    /// the MariaDB dialect the backends speak.
    #[serde(default = "default_server_version")]
    pub server_version: String,
    /// Largest packet a client may send (bytes), like MariaDB's `max_allowed_packet`.
    #[serde(default = "default_max_allowed_packet")]
    pub max_allowed_packet: usize,
    /// Parsed statements kept, by statement text.
    #[serde(default = "default_parse_cache_size")]
    pub parse_cache_size: usize,
    /// How long a statement on a shard frozen for a cutover waits before ERROR 1205.
    #[serde(default = "default_buffer_window_ms")]
    pub buffer_window_ms: u64,
    /// How many statements this node holds at most while shards or slots are frozen; more
    /// are refused at once with ERROR 1205.
    #[serde(default = "default_buffer_max_statements")]
    pub buffer_max_statements: usize,
    /// How long in-flight work on a frozen shard may take before this node acknowledges the
    /// cutover anyway (later writes on the demoted primary fail, read-only).
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// How long a statement may run before this node looks for a deadlock across shards
    /// (and how often it looks again while statements keep running); 0 turns it off.
    #[serde(default = "default_deadlock_check_ms")]
    pub deadlock_check_ms: u64,
    /// Failed logins from one address before its logins are slowed (0: never slowed).
    #[serde(default = "default_login_failures_before_delay")]
    pub login_failures_before_delay: u32,
    /// The longest a throttled login is held (the delay doubles per failure up to this).
    #[serde(default = "default_login_delay_max_ms")]
    pub login_delay_max_ms: u64,
}

fn default_login_failures_before_delay() -> u32 {
    5
}

fn default_login_delay_max_ms() -> u64 {
    10_000
}

fn default_deadlock_check_ms() -> u64 {
    200
}

fn default_buffer_window_ms() -> u64 {
    5000
}
fn default_buffer_max_statements() -> usize {
    10_000
}
fn default_drain_timeout_ms() -> u64 {
    2000
}

/// `[tls]`: certificate and key for clients that ask for TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[admin_tls]`: the admin port's certificate, and the CA of the members' certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signed every member's certificate: members check each other against it (needed
    /// with `[meta]`), and with `require_client_cert` it checks clients too.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Mutual TLS: only clients (members, slotctl, Prometheus) with a certificate `ca` signed.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// `[backend]`: how the proxy logs in to the shards and sizes its pools.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub user: String,
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the backend password (first line), instead of `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub pool_min: usize,
    #[serde(default = "default_pool_max")]
    pub pool_max: usize,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for a backend's answer (first packet or next row); 0 waits for ever.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// Longest wait for a free pooled connection when the pool is at `pool_max`.
    #[serde(default = "default_pool_wait_timeout_ms")]
    pub pool_wait_timeout_ms: u64,
    /// Pooled connections idle longer than this are closed (keep it below the shards' wait_timeout).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

/// `[[shards]]`: one shard and its nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub id: String,
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
}

/// `[routing]`: slots, sharding rules and where unsharded tables live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Shard holding unsharded tables and statements that touch no table.
    #[serde(alias = "default_shard", default)]
    pub home_shard: String,
    /// Fixed when the cluster is created; slots are split evenly over `[[shards]]` in order.
    #[serde(default = "default_slot_count")]
    pub slot_count: u32,
    /// What a transaction that reaches a second shard does.
    #[serde(default)]
    pub transaction_mode: TransactionMode,
    /// `[[routing.rules]]`: `database.table` is sharded by `column`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig { home_shard: String::new(), slot_count: default_slot_count(), transaction_mode: TransactionMode::default(), rules: vec![] }
    }
}

/// `multi` opens further shards and commits them one by one; `single` refuses the statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionMode {
    #[default]
    Multi,
    Single,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub database: String,
    pub table: String,
    pub column: String,
}

fn default_parse_cache_size() -> usize {
    10_000
}
fn default_slot_count() -> u32 {
    1024
}
fn default_node_id() -> u64 {
    1
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6033))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9033))
}
fn default_max_connections() -> usize {
    4096
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
fn default_server_version() -> String {
    format!("5.5.5-10.11.0-MariaDB-slotgate-{}", env!("CARGO_PKG_VERSION"))
}
fn default_max_allowed_packet() -> usize {
    64 * 1024 * 1024
}
fn default_pool_max() -> usize {
    64
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_query_timeout_ms() -> u64 {
    60_000
}
fn default_pool_wait_timeout_ms() -> u64 {
    5_000
}
fn default_idle_timeout_ms() -> u64 {
    300_000
}

impl Config {
    /// Reads, parses and validates a config file; relative paths inside it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config = Config::parse(&text)
            .map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no validation).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.node.users_file);
        if let Some(f) = self.backend.password_file.as_mut() {
            join(f);
        }
        if let Some(tls) = self.tls.as_mut() {
            join(&mut tls.cert);
            join(&mut tls.key);
        }
        if let Some(tls) = self.admin_tls.as_mut() {
            join(&mut tls.cert);
            join(&mut tls.key);
            if let Some(ca) = tls.ca.as_mut() {
                join(ca);
            }
        }
        if let Some(meta) = self.meta.as_mut() {
            join(&mut meta.data_dir);
            if let Some(f) = meta.cluster_secret_file.as_mut() {
                join(f);
            }
        }
    }

    /// What `check-config` checks beyond [`Config::validate`]: the meta group's options as
    /// this node would start with them (cluster secret read, timings, this node's voter
    /// address against what it advertises). Not part of `load`: with `admin_listen` on
    /// port 0 the advertised address is only known once the listener is bound, so then
    /// the address check is left to the start.
    pub fn check_meta(&self) -> Result<(), ConfigError> {
        let Some(meta) = &self.meta else {
            return Ok(());
        };
        if self.node.admin_listen.port() == 0 && meta.advertise.is_none() {
            meta.secret()?;
            return Ok(());
        }
        meta.options(self.node.id, self.node.admin_listen).map(|_| ())
    }

    /// Checks what serde cannot: references between sections, ranges, non-empty names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = &self.admin_tls {
            if t.ca.is_none() && (t.require_client_cert || self.meta.is_some()) {
                return Err(invalid("admin_tls.ca", "needed with require_client_cert or [meta] (members check each other's certificates against it)"));
            }
        }
        self.autosplit.validate().map_err(|(key, message)| invalid(key, message))?;
        if self.autosplit.enabled && self.meta.is_none() {
            return Err(invalid("autosplit.enabled", "needs [meta]: the meta leader runs the controller"));
        }
        if self.node.max_connections == 0 {
            return Err(invalid("node.max_connections", "must be at least 1"));
        }
        if self.node.max_allowed_packet < 1024 || self.node.max_allowed_packet > 1 << 30 {
            return Err(invalid("node.max_allowed_packet", "must be between 1024 and 1073741824"));
        }
        if self.node.server_version.is_empty() || self.node.server_version.contains('\0') {
            return Err(invalid("node.server_version", "must be a non-empty string without NUL"));
        }
        if self.node.admin_token.as_deref() == Some("") {
            return Err(invalid("node.admin_token", "must not be empty; remove the key to disable"));
        }
        if self.backend.user.is_empty() {
            return Err(invalid("backend.user", "must not be empty"));
        }
        if self.backend.password.is_some() && self.backend.password_file.is_some() {
            return Err(invalid("backend.password_file", "set either password or password_file, not both"));
        }
        if self.backend.pool_max == 0 {
            return Err(invalid("backend.pool_max", "must be at least 1"));
        }
        if self.backend.pool_min > self.backend.pool_max {
            return Err(invalid("backend.pool_min", "must not exceed backend.pool_max"));
        }
        if self.backend.connect_timeout_ms == 0 {
            return Err(invalid("backend.connect_timeout_ms", "must be at least 1"));
        }
        if let Some(meta) = &self.meta {
            meta.validate(self.node.id)?;
            if self.shards.is_empty() {
                return Ok(());
            }
        } else if self.shards.is_empty() {
            return Err(invalid("shards", "at least one [[shards]] entry is required (or a [meta] section, whose group owns the topology)"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.id.is_empty() {
                return Err(invalid(format!("shards[{i}].id"), "must not be empty"));
            }
            if !seen.insert(shard.id.as_str()) {
                return Err(invalid(format!("shards[{i}].id"), format!("duplicate shard id {:?}", shard.id)));
            }
            for (key, addr) in std::iter::once(("primary".to_string(), &shard.primary))
                .chain(shard.replicas.iter().enumerate().map(|(j, r)| (format!("replicas[{j}]"), r)))
            {
                parse_host_port(addr)
                    .map_err(|m| invalid(format!("shards[{i}].{key}"), m))?;
            }
        }
        if !seen.contains(self.routing.home_shard.as_str()) {
            return Err(invalid(
                "routing.home_shard",
                format!("no shard with id {:?} in [[shards]]", self.routing.home_shard),
            ));
        }
        self.topology().map_err(|e| invalid("routing", e.to_string()))?;
        Ok(())
    }

    /// The topology this config describes (version 1): slots split evenly over the shards.
    pub fn topology(&self) -> Result<Topology, TopologyError> {
        let shards = self
            .shards
            .iter()
            .map(|s| Shard { id: s.id.clone(), state: ShardState::Active, primary: s.primary.clone(), replicas: s.replicas.clone() })
            .collect();
        let rules = self
            .routing
            .rules
            .iter()
            .map(|r| ShardingRule { database: r.database.clone(), table: r.table.clone(), column: r.column.clone() })
            .collect();
        Topology::uniform(self.routing.slot_count, shards, &self.routing.home_shard, rules)
    }

    /// The backend password, read from `password_file` when that is set.
    pub fn backend_password(&self) -> Result<String, ConfigError> {
        match (&self.backend.password, &self.backend.password_file) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Ok(text.lines().next().unwrap_or("").to_string())
            }
            (None, None) => Ok(String::new()),
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.node.shutdown_timeout_ms)
    }
}

/// Splits `host:port`; the port is required.
pub fn parse_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{addr:?} has no valid port"))?;
    if host.is_empty() {
        return Err(format!("{addr:?} has no host"));
    }
    Ok((host.trim_matches(|c| c == '[' || c == ']').to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
users_file = "users.toml"
[backend]
user = "app"
password = "pw"
[[shards]]
id = "s0"
primary = "127.0.0.1:3306"
[routing]
default_shard = "s0"
"#;

    #[test]
    fn good_config_gets_defaults() {
        let c = Config::parse(GOOD).unwrap();
        c.validate().unwrap();
        assert_eq!(c.node.listen.port(), 6033);
        assert_eq!(c.node.admin_listen.port(), 9033);
        assert_eq!(c.backend.pool_max, 64);
    }

    #[test]
    fn check_config_checks_the_meta_options_too() {
        let meta = "[node]\nid = 1\nadmin_listen = \"127.0.0.1:9033\"\nusers_file = \"u\"\n[backend]\nuser = \"app\"\npassword = \"pw\"\n\
                    [meta]\ndata_dir = \"d\"\ncluster_secret = \"0123456789abcdef\"\nvoters = [{ id = 1, addr = \"127.0.0.1:9033\" }]\n";
        let c = Config::parse(meta).unwrap();
        c.validate().unwrap();
        c.check_meta().unwrap();
        // The lease must outlast an election: only the meta crate's check knows.
        let c = Config::parse(&format!("{meta}lease_ms = 100\n")).unwrap();
        c.validate().unwrap();
        let err = c.check_meta().unwrap_err().to_string();
        assert!(err.contains("lease_ms"), "{err}");
        // This node listed at another address than it advertises.
        let c = Config::parse(&meta.replace("addr = \"127.0.0.1:9033\"", "addr = \"127.0.0.1:9034\"")).unwrap();
        let err = c.check_meta().unwrap_err().to_string();
        assert!(err.contains("advertises"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = GOOD.replace("user = \"app\"", "user = \"app\"\npool_size = 3");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("pool_size"), "{err}");
    }

    #[test]
    fn unknown_home_shard_names_the_key() {
        let c = Config::parse(&GOOD.replace("default_shard = \"s0\"", "default_shard = \"s9\"")).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("routing.home_shard"), "{err}");
    }

    #[test]
    fn rules_and_slots_make_a_topology() {
        let text = GOOD.replace(
            "default_shard = \"s0\"",
            "home_shard = \"s0\"\nslot_count = 16\ntransaction_mode = \"single\"\n[[routing.rules]]\ndatabase = \"shop\"\ntable = \"orders\"\ncolumn = \"customer_id\"",
        );
        let c = Config::parse(&text).unwrap();
        c.validate().unwrap();
        let t = c.topology().unwrap();
        assert_eq!(t.slot_count, 16);
        assert_eq!(t.rule("shop", "orders").map(|r| r.column.as_str()), Some("customer_id"));
        assert_eq!(c.routing.transaction_mode, TransactionMode::Single);
        let bad = Config::parse(&GOOD.replace("default_shard = \"s0\"", "home_shard = \"s0\"\nslot_count = 0")).unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("slot_count"));
    }

    #[test]
    fn bad_address_names_the_key() {
        let c = Config::parse(&GOOD.replace("127.0.0.1:3306", "localhost")).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("shards[0].primary"), "{err}");
    }
}
