//! This node's membership of the meta group: starts the [`MetaNode`], follows its applied
//! state into the topology handle, and exports the Raft gauges.
//!
//! Contract: returns once the meta node runs (it elects and catches up in the background);
//! the follower and the gauge task stop with `cancel` and are tracked by `tracker`.

use super::{follow_meta, TopologyHandle};
use crate::backend::Backends;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use slotgate_meta::{Faults, MetaHooks, MetaNode};
use slotgate_shared::TopologyCommand;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("meta group: {0}")]
    Meta(#[from] slotgate_meta::MetaError),
}

/// Everything the member needs from the node.
pub struct MemberParts {
    pub admin_addr: SocketAddr,
    pub backends: Backends,
    pub handle: TopologyHandle,
    pub metrics: Metrics,
    pub hooks: Arc<dyn MetaHooks>,
    pub faults: Faults,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

pub async fn start_member(config: &Config, parts: MemberParts) -> Result<Option<MetaNode>, MemberError> {
    let Some(meta) = &config.meta else { return Ok(None) };
    let mut options = meta.options(config.node.id, parts.admin_addr)?;
    if let Some(t) = &config.admin_tls {
        options.tls = Some(crate::admin::tls::peer_tls(t).map_err(|message| ConfigError::Invalid { key: "admin_tls".into(), message })?);
    }
    let initial = if meta.init_from_config && !config.shards.is_empty() {
        let t = config.topology().map_err(|e| ConfigError::Invalid { key: "routing".into(), message: e.to_string() })?;
        Some(TopologyCommand::Init { slot_count: t.slot_count, shards: t.shards, home: config.routing.home_shard.clone(), rules: t.rules })
    } else {
        None
    };
    let node = MetaNode::start(options, parts.hooks, parts.faults, initial).await?;
    // What this node had applied before a restart routes at once, before any election.
    if let Some(t) = node.current().topology.clone() {
        if let Err(e) = parts.backends.sync(&t) {
            tracing::error!(version = t.version, error = %e, "stored topology not applied: cannot open its backend pools");
        } else {
            parts.handle.store(t.clone());
            parts.metrics.meta().topology_version.set(t.version as f64);
        }
    }
    let follower = super::follow::Follower {
        handle: parts.handle,
        backends: parts.backends,
        metrics: parts.metrics.clone(),
        meta: Some(node.clone()),
        drain_timeout: Duration::from_millis(config.node.drain_timeout_ms),
        cancel: parts.cancel.clone(),
    };
    parts.tracker.spawn(follow_meta(node.state(), follower));
    parts.tracker.spawn(raft_gauges(node.clone(), parts.metrics, parts.cancel));
    Ok(Some(node))
}

/// Keeps the Raft gauges current: leader, term and applied index follow every openraft
/// metrics change (read from the published metrics, which costs nothing); the committed
/// index, the last contact and the lease are sampled every 250 ms. The committed index is
/// never read on a metrics change: asking the Raft core for its state is an event after
/// which openraft republishes its metrics, so following the changes kept an idle node busy
/// answering itself.
async fn raft_gauges(node: MetaNode, metrics: Metrics, cancel: CancellationToken) {
    let mut rx = node.raft().metrics();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_serving = false;
    let mut sample = true;
    loop {
        let m = rx.borrow_and_update().clone();
        let g = metrics.meta();
        g.is_leader.set(if m.current_leader == Some(node.id()) { 1.0 } else { 0.0 });
        g.term.set(m.current_term as f64);
        g.applied_index.set(m.last_applied.map_or(0, |l| l.index) as f64);
        // The lease is a local clock check: looked at on every wake-up, before anything that
        // waits on the Raft core, so that no expiry goes uncounted.
        let serving = node.serving();
        if was_serving && !serving {
            metrics.cutover().lease_expired.increment(1);
            tracing::warn!("lease with the meta group expired: not serving clients until it is renewed");
        }
        was_serving = serving;
        if sample {
            let committed = node.raft().with_raft_state(|s| s.committed.map(|c| c.index));
            if let Ok(Ok(Some(c))) = tokio::time::timeout(Duration::from_millis(200), committed).await {
                g.commit_index.set(c as f64);
            }
            if let Some(s) = node.last_contact_seconds() {
                g.last_contact_seconds.set(s);
            }
        }
        tokio::select! {
            _ = tick.tick() => sample = true,
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                sample = false;
            }
            _ = cancel.cancelled() => return,
        }
    }
}
