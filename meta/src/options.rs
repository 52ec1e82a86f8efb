//! How one node takes part in the meta group: its identity, peers, storage and timings.
//!
//! Contract: plain data, filled by the node's configuration; `validate()` names the field at
//! fault. Addresses are `host:port` of the members' admin listeners (the Raft transport and
//! the admin API share that port).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::typ::NodeId;

/// Settings of a meta group member.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    pub node_id: NodeId,
    /// Address (host:port) the other members use to reach this node.
    pub advertise: String,
    /// The voters of the group (3 or 5), by id. A node not listed joins as a learner.
    pub voters: BTreeMap<NodeId, String>,
    /// Where the log, the state and the snapshots live.
    pub data_dir: PathBuf,
    /// Shared secret every member presents on Raft RPCs and forwarded requests.
    pub secret: String,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Timeout of one Raft RPC or forwarded request.
    pub rpc_timeout: Duration,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_every: u64,
    /// How long a lease lets a member serve without hearing from the leader. Longer than an
    /// election, so that an election never stops traffic.
    pub lease: Duration,
    /// How long a cutover may take from its prepare to its commit before it rolls back.
    pub cutover_budget: Duration,
    /// TLS towards the other members (`https://`); `None`: plain HTTP.
    pub tls: Option<PeerTls>,
}

/// How a member reaches the others over TLS: the CA their certificates are checked against,
/// and the certificate (with its key) it shows them when they require one (mutual TLS).
#[derive(Clone)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    /// Certificate chain then private key, PEM.
    pub identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").field("ca_pem", &format_args!("{} bytes", self.ca_pem.len())).field("identity", &self.identity_pem.is_some()).finish()
    }
}

impl MetaOptions {
    /// Whether this node is one of the configured voters.
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.voters.len() == 1 || self.voters.len() == 3 || self.voters.len() == 5) {
            return Err(format!("meta.voters: a meta group has 1, 3 or 5 voters, not {}", self.voters.len()));
        }
        if let Some(addr) = self.voters.get(&self.node_id) {
            if *addr != self.advertise {
                return Err(format!(
                    "meta.voters: node {} is listed at {addr} but advertises {}; make them equal",
                    self.node_id, self.advertise
                ));
            }
        }
        if self.advertise.starts_with("0.0.0.0:") || self.advertise.starts_with("[::]:") {
            return Err("meta.advertise: set the address other members reach this node at (the admin listener is a wildcard)".into());
        }
        if self.secret.len() < 16 {
            return Err("meta.cluster_secret: use at least 16 characters".into());
        }
        if self.heartbeat.is_zero() || self.election_timeout_min <= self.heartbeat * 2 {
            return Err("meta.election_timeout_min_ms must be more than twice meta.heartbeat_ms".into());
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err("meta.election_timeout_max_ms must be more than meta.election_timeout_min_ms".into());
        }
        if self.lease <= self.election_timeout_max {
            return Err("meta.lease_ms must be longer than meta.election_timeout_max_ms (an election must not stop traffic)".into());
        }
        Ok(())
    }
}
