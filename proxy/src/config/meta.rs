//! `[meta]`: membership of the embedded Raft meta group that owns the topology.
//!
//! Contract: a validated `MetaConfig` turns into the meta crate's options with
//! [`MetaConfig::options`]; the cluster secret comes from `cluster_secret` or the first line
//! of `cluster_secret_file` and is never logged.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Where the Raft log, state and snapshots live (one directory per node).
    pub data_dir: PathBuf,
    #[serde(default)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (first line), instead of `cluster_secret`.
    #[serde(default)]
    pub cluster_secret_file: Option<PathBuf>,
    /// host:port the other members reach this node's admin listener at (default: `node.admin_listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// `[[meta.voters]]`: the 3 (or 5, or for a lone node 1) voters; other nodes join as learners.
    pub voters: Vec<VoterConfig>,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    #[serde(default = "default_election_min_ms")]
    pub election_timeout_min_ms: u64,
    #[serde(default = "default_election_max_ms")]
    pub election_timeout_max_ms: u64,
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// Build a snapshot (and purge the log) after this many entries.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// A member that has not renewed its lease with the leader for this long stops serving
    /// clients. Must exceed `election_timeout_max_ms`.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// A cutover (switchover, failover) not committed within this budget rolls back.
    #[serde(default = "default_cutover_budget_ms")]
    pub cutover_budget_ms: u64,
    /// How often the meta leader pings every shard's primary (0: no automatic failover).
    #[serde(default = "default_failover_check_ms")]
    pub failover_check_ms: u64,
    /// Failed pings in a row after which the leader fails the primary over.
    #[serde(default = "default_failover_threshold")]
    pub failover_threshold: u32,
    /// Propose `[[shards]]` and `[routing]` as the first topology when the group has none.
    #[serde(default = "default_true")]
    pub init_from_config: bool,
    /// URLs the meta leader POSTs every committed topology change to (JSON), with retries.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterConfig {
    pub id: u64,
    pub addr: String,
}

fn default_heartbeat_ms() -> u64 {
    250
}
fn default_election_min_ms() -> u64 {
    1500
}
fn default_election_max_ms() -> u64 {
    3000
}
fn default_rpc_timeout_ms() -> u64 {
    2000
}
fn default_snapshot_every() -> u64 {
    500
}
fn default_lease_ms() -> u64 {
    6000
}
fn default_cutover_budget_ms() -> u64 {
    10_000
}
fn default_failover_check_ms() -> u64 {
    1000
}
fn default_failover_threshold() -> u32 {
    3
}
fn default_true() -> bool {
    true
}

impl MetaConfig {
    pub(super) fn validate(&self, node_id: u64) -> Result<(), ConfigError> {
        if self.cluster_secret.is_some() == self.cluster_secret_file.is_some() {
            return Err(invalid("meta.cluster_secret", "set exactly one of cluster_secret and cluster_secret_file"));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, v) in self.voters.iter().enumerate() {
            if !ids.insert(v.id) {
                return Err(invalid(format!("meta.voters[{i}].id"), format!("duplicate voter id {}", v.id)));
            }
            super::parse_host_port(&v.addr).map_err(|m| invalid(format!("meta.voters[{i}].addr"), m))?;
        }
        if ![1, 3, 5].contains(&self.voters.len()) {
            return Err(invalid("meta.voters", format!("a meta group has 1, 3 or 5 voters, not {}", self.voters.len())));
        }
        if node_id == 0 {
            return Err(invalid("node.id", "must be at least 1 in a meta group"));
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= 2 * self.heartbeat_ms {
            return Err(invalid("meta.election_timeout_min_ms", "must be more than twice meta.heartbeat_ms"));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(invalid("meta.election_timeout_max_ms", "must be more than meta.election_timeout_min_ms"));
        }
        if self.snapshot_every == 0 {
            return Err(invalid("meta.snapshot_every", "must be at least 1"));
        }
        Ok(())
    }

    /// The cluster secret, read from `cluster_secret_file` when that is set.
    pub fn secret(&self) -> Result<String, ConfigError> {
        match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Ok(text.lines().next().unwrap_or("").trim().to_string())
            }
            (None, None) => Err(invalid("meta.cluster_secret", "missing")),
        }
    }

    /// The meta crate's options for node `node_id` whose admin listener is `admin_listen`.
    pub fn options(&self, node_id: u64, admin_listen: std::net::SocketAddr) -> Result<slotgate_meta::MetaOptions, ConfigError> {
        let voters: BTreeMap<u64, String> = self.voters.iter().map(|v| (v.id, v.addr.clone())).collect();
        let options = slotgate_meta::MetaOptions {
            node_id,
            advertise: self.advertise.clone().unwrap_or_else(|| admin_listen.to_string()),
            voters,
            data_dir: self.data_dir.clone(),
            secret: self.secret()?,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            election_timeout_min: Duration::from_millis(self.election_timeout_min_ms),
            election_timeout_max: Duration::from_millis(self.election_timeout_max_ms),
            rpc_timeout: Duration::from_millis(self.rpc_timeout_ms),
            snapshot_every: self.snapshot_every,
            lease: Duration::from_millis(self.lease_ms),
            cutover_budget: Duration::from_millis(self.cutover_budget_ms),
            tls: None,
        };
        options.validate().map_err(|m| invalid("meta", m))?;
        Ok(options)
    }
}
