//! The member side and the leader side of leases and cutovers (see [`crate::lease`]).
//!
//! Contract: `renew_leases` runs for the node's life; `ack` tells the leader this node drained
//! a prepare version; `wait_acks` (leader only) returns when every member with a live lease
//! acknowledged, or says who did not within the budget.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::error::WireError;
use crate::network::paths;
use crate::node::MetaNode;
use crate::typ::NodeId;

impl MetaNode {
    /// Whether this node may serve clients now (its lease is live).
    pub fn serving(&self) -> bool {
        self.inner.serving.valid()
    }

    pub fn lease_duration(&self) -> Duration {
        self.inner.options.lease
    }

    pub fn cutover_budget(&self) -> Duration {
        self.inner.options.cutover_budget
    }

    /// Leader side of a renewal: granted only while a quorum recently acknowledged this node.
    pub(crate) async fn grant_lease(&self, from: NodeId) -> Result<u64, WireError> {
        let m = self.inner.raft.metrics().borrow().clone();
        let fresh = m.millis_since_quorum_ack.is_some_and(|ms| ms < self.inner.options.election_timeout_min.as_millis() as u64);
        if m.state != ServerState::Leader || !fresh {
            return Err(WireError::NotLeader);
        }
        self.inner.leases.set_leader(true);
        self.inner.leases.renew(from);
        let committed = self.inner.raft.with_raft_state(|s| s.committed.map_or(0, |c| c.index)).await;
        committed.map_err(|e| WireError::Other(e.to_string()))
    }

    pub(crate) async fn renew_leases(self) {
        let lease = self.inner.options.lease;
        let every = (lease / 3).max(Duration::from_millis(50));
        let cancel = self.inner.cancel.clone();
        loop {
            let m = self.inner.raft.metrics().borrow().clone();
            let leading = m.state == ServerState::Leader;
            self.inner.leases.set_leader(leading);
            let sent = Instant::now();
            let granted = if leading {
                self.grant_lease(self.id()).await.ok()
            } else if let Some((leader, addr)) = self.leader_addr() {
                match self.inner.network.call::<_, Result<u64, WireError>>(leader, &addr, paths::LEASE, &self.id(), every).await {
                    Ok(Ok(c)) => Some(c),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(committed) = granted {
                // Serve only once everything committed at the grant is applied here.
                let mut rx = self.inner.raft.metrics();
                let caught_up = tokio::time::timeout(every, rx.wait_for(|m| m.last_applied.map_or(0, |l| l.index) >= committed)).await;
                if matches!(caught_up, Ok(Ok(_))) {
                    self.inner.serving.extend(sent, lease);
                }
            }
            // Until it serves, a node asks again soon (start-up, after a partition heals).
            let period = if self.inner.serving.valid() { every } else { Duration::from_millis(50) };
            let wait = period.saturating_sub(sent.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// The leader's id and address, as this node knows them.
    pub fn leader_addr(&self) -> Option<(NodeId, String)> {
        let m = self.inner.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node.addr))
    }

    pub(crate) fn take_ack(&self, from: NodeId, version: u64) -> Result<(), WireError> {
        if self.inner.raft.metrics().borrow().state != ServerState::Leader {
            return Err(WireError::NotLeader);
        }
        self.inner.leases.ack(from, version);
        Ok(())
    }

    /// Tells the leader that this node drained the shards frozen by `version` (retried until
    /// the leader takes it or `within` passes).
    pub async fn ack(&self, version: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let done = if self.inner.raft.metrics().borrow().state == ServerState::Leader {
                self.take_ack(self.id(), version).is_ok()
            } else if let Some((leader, addr)) = self.leader_addr() {
                let body = (self.id(), version);
                matches!(
                    self.inner.network.call::<_, Result<(), WireError>>(leader, &addr, paths::ACK, &body, self.inner.options.rpc_timeout).await,
                    Ok(Ok(()))
                )
            } else {
                false
            };
            if done {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leader only: waits out the lease grace of a new leader, then until every member with a
    /// live lease acknowledged `version`. `Err` names the members that did not, in time.
    pub async fn wait_acks(&self, version: u64, deadline: Instant) -> Result<(), String> {
        let lease = self.inner.options.lease;
        loop {
            // Leadership noticed here at the latest: the grace counts from no earlier than that.
            self.inner.leases.set_leader(self.is_leader());
            let grace = self.inner.leases.grace_left(lease).ok_or_else(|| {
                let m = self.inner.raft.metrics().borrow().clone();
                format!("node {} is no longer the meta leader (state {:?}, leader {:?})", self.id(), m.state, m.current_leader)
            })?;
            let live = self.inner.leases.live(lease);
            let acked = self.inner.leases.acked(version);
            let missing: BTreeSet<NodeId> = live.difference(&acked).copied().collect();
            if grace.is_zero() && missing.is_empty() && acked.contains(&self.id()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(if grace.is_zero() {
                    format!("nodes {missing:?} did not acknowledge the prepare (version {version}) in time")
                } else {
                    "this leader is new and must wait out earlier leases first".to_string()
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether this node is the meta leader now.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }
}
