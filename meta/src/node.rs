//! A member of the meta group: the Raft node on durable storage, its bootstrap, and the
//! operations the admin API and the proxy use (write a command, read the state, change the
//! membership).
//!
//! Contract:
//! - [`MetaNode::start`] opens the storage in the data directory (coming back with everything
//!   acknowledged before), starts Raft and returns at once; voters initialise the group with
//!   the configured voters (safe on every voter: same membership), other nodes join as
//!   learners through the voters until they are members. An optional initial command (the
//!   topology from the configuration) is proposed once, under a fixed request id.
//! - Writes go to the leader: from a follower they are forwarded over the transport, and they
//!   are retried (with the same request id, so they apply once) while there is no leader, up
//!   to the write budget.
//! - [`MetaNode::state`] gives every applied state, in order, as soon as it is durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use slotgate_shared::api::{ClusterStatus, CommandReply, CommandRequest, MemberStatus};
use slotgate_shared::{Topology, TopologyCommand};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{MetaError, WireError};
use crate::hooks::MetaHooks;
use crate::network::{paths, Faults, HttpNetwork};
use crate::options::MetaOptions;
use crate::state::{MetaRequest, MetaResponse, MetaState};
use crate::store::MetaStore;
use crate::typ::{NodeId, Raft};

/// Request id of the topology proposed from the configuration at first start.
pub const BOOTSTRAP_REQUEST_ID: &str = "bootstrap-init-from-config";

/// How long a write keeps retrying while there is no leader.
const WRITE_BUDGET: Duration = Duration::from_secs(10);

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    AddLearner { id: NodeId, addr: String },
    Promote { id: NodeId },
    Remove { id: NodeId },
}

/// A running meta group member. Cheap to clone.
#[derive(Clone)]
pub struct MetaNode {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) options: MetaOptions,
    pub(crate) raft: Raft,
    state: watch::Receiver<Arc<MetaState>>,
    pub(crate) network: HttpNetwork,
    hooks: Arc<dyn MetaHooks>,
    /// Unix ms of the last Raft RPC received from a leader (0 = never).
    last_contact_ms: AtomicU64,
    pub(crate) cancel: CancellationToken,
    /// Leases granted and cutover acknowledgements received, while this node leads.
    pub(crate) leases: crate::lease::LeaseTable,
    /// This node's own lease.
    pub(crate) serving: crate::lease::Serving,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A fresh random request id.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl MetaNode {
    /// Opens the storage, starts Raft and the bootstrap; see the module contract.
    pub async fn start(
        options: MetaOptions,
        hooks: Arc<dyn MetaHooks>,
        faults: Faults,
        initial: Option<TopologyCommand>,
    ) -> Result<MetaNode, MetaError> {
        options.validate().map_err(MetaError::BadRequest)?;
        // The storage of a stopped instance in this process may take a moment to be released
        // (its tasks wind down); another process holding the directory is refused after 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (log, sm) = loop {
            let dir = options.data_dir.clone();
            let opened = tokio::task::spawn_blocking(move || MetaStore::open(dir)).await.map_err(|e| MetaError::Fatal(e.to_string()))?;
            match opened {
                Ok(stores) => break stores,
                Err(e) if e.to_string().contains("already open") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(MetaError::Fatal(format!(
                        "cannot open the meta data directory {}: {e}",
                        options.data_dir.display()
                    )))
                }
            }
        };
        let state = sm.subscribe();
        let config = openraft::Config {
            cluster_name: "slotgate".into(),
            heartbeat_interval: options.heartbeat.as_millis() as u64,
            election_timeout_min: options.election_timeout_min.as_millis() as u64,
            election_timeout_max: options.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: options.rpc_timeout.as_millis().max(200) as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(options.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: options.snapshot_every.max(1),
            snapshot_max_chunk_size: 256 * 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::BadRequest(format!("meta timings: {e}")))?;
        let network = HttpNetwork::new(options.node_id, &options.secret, faults, options.tls.as_ref()).map_err(|e| MetaError::Fatal(e.to_string()))?;
        let raft = Raft::new(options.node_id, Arc::new(config), network.clone(), log, sm)
            .await
            .map_err(|e| MetaError::Fatal(e.to_string()))?;
        let node = MetaNode {
            inner: Arc::new(Inner {
                id: options.node_id,
                options,
                raft,
                state,
                network,
                hooks,
                last_contact_ms: AtomicU64::new(0),
                cancel: CancellationToken::new(),
                leases: Default::default(),
                serving: Default::default(),
            }),
        };
        let boot = node.clone();
        tokio::spawn(async move { boot.bootstrap(initial).await });
        let renew = node.clone();
        tokio::spawn(async move { renew.renew_leases().await });
        Ok(node)
    }

    pub(crate) fn hooks(&self) -> &dyn MetaHooks {
        self.inner.hooks.as_ref()
    }

    /// Every other member's transactions' backend threads (see
    /// [`MetaHooks::transactions`]), asked concurrently; a member that does not answer
    /// within `within` is left out.
    pub async fn members_transactions(&self, within: std::time::Duration) -> Vec<(NodeId, Vec<(String, u32, u32)>)> {
        self.ask_members(crate::network::paths::TRANSACTIONS, within).await
    }

    /// Every other member's per-slot load counters (see [`MetaHooks::slot_load`]), asked
    /// concurrently; a member that does not answer within `within` is left out.
    pub async fn members_slot_load(&self, within: std::time::Duration) -> Vec<(NodeId, Vec<slotgate_shared::api::SlotCount>)> {
        self.ask_members(crate::network::paths::SLOT_LOAD, within).await
    }

    /// Asks every other member for `path` (no body) at once; those that do not answer
    /// within `within`, or answer something else, are left out.
    async fn ask_members<R: serde::de::DeserializeOwned + Send + 'static>(&self, path: &'static str, within: std::time::Duration) -> Vec<(NodeId, R)> {
        let members: Vec<(NodeId, String)> = {
            let m = self.inner.raft.metrics().borrow().clone();
            m.membership_config.membership().nodes().filter(|(id, _)| **id != self.inner.id).map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        let mut asks = tokio::task::JoinSet::new();
        for (id, addr) in members {
            let node = self.clone();
            asks.spawn(async move {
                let r: Result<R, _> = node.inner.network.call(id, &addr, path, &(), within).await;
                r.ok().map(|t| (id, t))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = asks.join_next().await {
            if let Ok(Some(t)) = r {
                out.push(t);
            }
        }
        out
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub fn network(&self) -> &HttpNetwork {
        &self.inner.network
    }

    pub(crate) fn secret(&self) -> &str {
        &self.inner.options.secret
    }

    /// Every applied state, starting with the current one.
    pub fn state(&self) -> watch::Receiver<Arc<MetaState>> {
        self.inner.state.clone()
    }

    /// The applied state on this node now.
    pub fn current(&self) -> Arc<MetaState> {
        self.inner.state.borrow().clone()
    }

    pub(crate) fn touch_contact(&self) {
        self.inner.last_contact_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Seconds since this node last heard from a leader (0 on the leader itself while a quorum
    /// acknowledges it); `None` if it never did.
    pub fn last_contact_seconds(&self) -> Option<f64> {
        let m = self.inner.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return m.millis_since_quorum_ack.map(|ms| ms as f64 / 1000.0);
        }
        match self.inner.last_contact_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms().saturating_sub(t) as f64 / 1000.0),
        }
    }

    async fn bootstrap(self, initial: Option<TopologyCommand>) {
        let cancel = self.inner.cancel.clone();
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.bootstrap_inner(initial) => {}
        }
    }

    async fn bootstrap_inner(&self, initial: Option<TopologyCommand>) {
        let opts = &self.inner.options;
        if opts.is_voter() {
            match self.inner.raft.is_initialized().await {
                Ok(false) => {
                    let members: BTreeMap<NodeId, BasicNode> =
                        opts.voters.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
                    if let Err(e) = self.inner.raft.initialize(members).await {
                        tracing::debug!(error = %e, "meta group already initialised");
                    }
                }
                Ok(true) => {}
                Err(e) => {
                    tracing::error!(error = %e, "meta group stopped");
                    return;
                }
            }
        } else {
            self.join().await;
        }
        if let Some(cmd) = initial {
            if self.current().topology.is_some() || !opts.is_voter() {
                return;
            }
            let req = MetaRequest {
                request_id: BOOTSTRAP_REQUEST_ID.into(),
                actor: format!("node {} (configuration)", self.id()),
                at_ms: now_ms(),
                if_version: None,
                command: cmd,
            };
            loop {
                match self.write(req.clone()).await {
                    Ok(r) => {
                        tracing::info!(version = r.version, refused = ?r.refused, "topology from the configuration proposed");
                        return;
                    }
                    Err(e) if self.current().topology.is_some() => {
                        tracing::debug!(error = %e, "topology already initialised");
                        return;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "waiting for the meta group to propose the configured topology");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    /// A learner asks the voters to add it until it is a member.
    async fn join(&self) {
        let opts = &self.inner.options;
        let change = MembershipChange::AddLearner { id: opts.node_id, addr: opts.advertise.clone() };
        let mut backoff = Duration::from_millis(100);
        loop {
            let member = self.inner.raft.metrics().borrow().membership_config.membership().get_node(&opts.node_id).is_some();
            if member {
                return;
            }
            for (id, addr) in &opts.voters {
                let r: Result<Result<(), WireError>, _> =
                    self.inner.network.call(*id, addr, paths::MEMBERSHIP, &change, opts.rpc_timeout).await;
                match r {
                    Ok(Ok(())) => {
                        tracing::info!(via = id, "joined the meta group as a learner");
                        return;
                    }
                    Ok(Err(e)) => tracing::debug!(via = id, error = ?e, "join refused"),
                    Err(e) => tracing::debug!(via = id, error = %e, "join failed"),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Proposes `req` through the leader (forwarding if needed), retrying while there is no
    /// leader; see the module contract.
    pub async fn write(&self, req: MetaRequest) -> Result<MetaResponse, MetaError> {
        let deadline = Instant::now() + WRITE_BUDGET;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = match tokio::time::timeout(left, self.write_once(&req)).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) => e,
                Err(_) => return Err(MetaError::NotCommitted(WRITE_BUDGET.as_secs())),
            };
            if !e.retryable() || Instant::now() + pause > deadline {
                return Err(e);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn write_once(&self, req: &MetaRequest) -> Result<MetaResponse, MetaError> {
        match self.inner.raft.client_write(req.clone()).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match (f.leader_id, f.leader_node) {
                (Some(id), Some(node)) if id != self.id() => {
                    let answer: Result<MetaResponse, WireError> = self
                        .inner
                        .network
                        .call(id, &node.addr, paths::WRITE, req, self.inner.options.rpc_timeout)
                        .await
                        .map_err(|e| MetaError::LeaderUnreachable(id, e.to_string()))?;
                    answer.map_err(MetaError::from)
                }
                _ => Err(MetaError::NoLeader),
            },
            Err(RaftError::APIError(e)) => Err(MetaError::Refused(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(MetaError::Fatal(f.to_string())),
        }
    }

    /// Proposes `req` on this node only (it must be the leader): the forwarded side.
    pub(crate) async fn write_local(&self, req: MetaRequest) -> Result<MetaResponse, WireError> {
        match self.inner.raft.client_write(req).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(WireError::NotLeader),
            Err(e) => Err(WireError::Other(e.to_string())),
        }
    }

    /// The admin API's `POST /commands`: checks, stamps and proposes a command.
    pub async fn submit(&self, req: CommandRequest) -> Result<CommandReply, MetaError> {
        let kind = req.command.kind();
        let result = self.submit_inner(req).await;
        let label = match &result {
            Ok(r) if r.retried => "retried",
            Ok(_) => "applied",
            Err(MetaError::Refused(_)) | Err(MetaError::BadRequest(_)) | Err(MetaError::NoTopology) => "refused",
            Err(_) => "error",
        };
        self.inner.hooks.command_done(kind, label);
        result
    }

    async fn submit_inner(&self, req: CommandRequest) -> Result<CommandReply, MetaError> {
        if !req.force {
            if let Some(t) = self.current().topology.clone() {
                self.inner.hooks.precheck(&t, &req.command).await.map_err(MetaError::Refused)?;
            }
        }
        let request_id = match req.request_id {
            Some(id) if id.is_empty() || id.len() > 128 => {
                return Err(MetaError::BadRequest("request_id must be 1-128 characters".into()))
            }
            Some(id) => id,
            None => new_request_id(),
        };
        let meta = MetaRequest {
            request_id: request_id.clone(),
            actor: req.actor.unwrap_or_else(|| "unknown".into()),
            at_ms: now_ms(),
            if_version: req.if_version,
            command: req.command,
        };
        let resp = self.write(meta).await?;
        if let Some(reason) = resp.refused {
            return Err(MetaError::Refused(reason));
        }
        Ok(CommandReply { request_id, version: resp.version, retried: resp.retried })
    }

    /// The topology after a read-index round through the leader (linearizable).
    pub async fn linearizable_topology(&self) -> Result<Topology, MetaError> {
        match self.inner.raft.ensure_linearizable().await {
            Ok(_) => self.current().topology.clone().ok_or(MetaError::NoTopology),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                match (f.leader_id, f.leader_node) {
                    (Some(id), Some(node)) if id != self.id() => {
                        let answer: Result<Topology, WireError> = self
                            .inner
                            .network
                            .call(id, &node.addr, paths::READ, &(), self.inner.options.rpc_timeout)
                            .await
                            .map_err(|e| MetaError::LeaderUnreachable(id, e.to_string()))?;
                        answer.map_err(|e| match e {
                            WireError::BadRequest(_) => MetaError::NoTopology,
                            other => MetaError::from(other),
                        })
                    }
                    _ => Err(MetaError::NoLeader),
                }
            }
            Err(RaftError::APIError(e)) => Err(MetaError::NoLeader).inspect_err(|_| tracing::debug!(error = %e, "read index")),
            Err(RaftError::Fatal(f)) => Err(MetaError::Fatal(f.to_string())),
        }
    }

    /// The read-index read on the leader: the forwarded side.
    pub(crate) async fn read_local(&self) -> Result<Topology, WireError> {
        match self.inner.raft.ensure_linearizable().await {
            Ok(_) => self.current().topology.clone().ok_or_else(|| WireError::BadRequest("no topology".into())),
            Err(RaftError::APIError(_)) => Err(WireError::NotLeader),
            Err(e) => Err(WireError::Other(e.to_string())),
        }
    }

    /// Applies a membership change through the leader.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MetaError> {
        let deadline = Instant::now() + WRITE_BUDGET;
        loop {
            let r = match self.change_local(change.clone()).await {
                Err(WireError::NotLeader) => self.forward_membership(&change).await,
                other => other.map_err(MetaError::from),
            };
            match r {
                Err(e) if e.retryable() && Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => return other,
            }
        }
    }

    async fn forward_membership(&self, change: &MembershipChange) -> Result<(), MetaError> {
        let m = self.inner.raft.metrics().borrow().clone();
        let Some(leader) = m.current_leader.filter(|l| *l != self.id()) else {
            return Err(MetaError::NoLeader);
        };
        let Some(node) = m.membership_config.membership().get_node(&leader).cloned() else {
            return Err(MetaError::NoLeader);
        };
        let answer: Result<(), WireError> = self
            .inner
            .network
            .call(leader, &node.addr, paths::MEMBERSHIP, change, self.inner.options.rpc_timeout)
            .await
            .map_err(|e| MetaError::LeaderUnreachable(leader, e.to_string()))?;
        answer.map_err(MetaError::from)
    }

    /// Applies a membership change on this node (it must be the leader).
    pub(crate) async fn change_local(&self, change: MembershipChange) -> Result<(), WireError> {
        let raft = &self.inner.raft;
        let membership = raft.metrics().borrow().membership_config.membership().clone();
        let result = match change {
            MembershipChange::AddLearner { id, addr } => {
                if let Some(n) = membership.get_node(&id) {
                    if n.addr == addr {
                        return Ok(());
                    }
                    return Err(WireError::Refused(format!("node {id} is already a member at {}; remove it first", n.addr)));
                }
                raft.add_learner(id, BasicNode::new(addr), false).await.map(|_| ())
            }
            MembershipChange::Promote { id } => {
                if membership.get_node(&id).is_none() {
                    return Err(WireError::Refused(format!("node {id} is not a member; add it as a learner first")));
                }
                if membership.voter_ids().any(|v| v == id) {
                    return Err(WireError::Refused(format!("node {id} is already a voter")));
                }
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await.map(|_| ())
            }
            MembershipChange::Remove { id } => {
                if membership.get_node(&id).is_none() {
                    return Err(WireError::Refused(format!("node {id} is not a member")));
                }
                if membership.voter_ids().any(|v| v == id) {
                    if membership.voter_ids().count() <= 1 {
                        return Err(WireError::Refused("the last voter cannot be removed".into()));
                    }
                    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await.map(|_| ())
                } else {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await.map(|_| ())
                }
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(WireError::NotLeader),
            Err(RaftError::APIError(e)) => Err(WireError::Refused(e.to_string())),
            Err(e) => Err(WireError::Other(e.to_string())),
        }
    }

    /// `GET /cluster`.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let commit_index = self.inner.raft.with_raft_state(|s| s.committed.map(|c| c.index)).await.ok().flatten();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let last = m.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = m.replication.as_ref().and_then(|r| r.get(id)).map(|l| l.map_or(0, |l| l.index));
                MemberStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    kind: if voters.contains(id) { "voter" } else { "learner" }.into(),
                    matched_index: matched,
                    lag: matched.map(|x| last.unwrap_or(0).saturating_sub(x)),
                }
            })
            .collect();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        ClusterStatus {
            node: self.id(),
            role: role.into(),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: last,
            commit_index,
            applied_index: m.last_applied.map(|l| l.index),
            topology_version: self.current().version(),
            members,
        }
    }

    /// Stops Raft and the bootstrap; the storage is released when the last handle drops.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "meta group shutdown");
        }
    }
}
