//! Follows the meta group: every applied state with a newer topology is published to the
//! node's router, after the backend pools it needs exist; a newly frozen shard is drained and
//! the freeze acknowledged to the leader.
//!
//! Contract: runs until cancelled; publishes versions in order and never an older one; a
//! topology whose pools cannot be built (a malformed address) is logged and skipped, the node
//! keeps routing with the version it has. Propagation is replication: this reacts to the
//! local state machine's apply, it never polls. When a version freezes a shard (the prepare
//! of a cutover), new work on it is already held back by `Backends`; a task waits until the
//! shard's connections are all back (in-flight statements and transactions finished) or the
//! drain timeout passed, then acknowledges that version to the leader.

use super::TopologyHandle;
use crate::backend::Backends;
use crate::metrics::Metrics;
use slotgate_meta::{MetaNode, MetaState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Follower {
    pub handle: TopologyHandle,
    pub backends: Backends,
    pub metrics: Metrics,
    pub meta: Option<MetaNode>,
    pub drain_timeout: Duration,
    pub cancel: CancellationToken,
}

pub async fn follow_meta(mut state: watch::Receiver<Arc<MetaState>>, f: Follower) {
    let mut frozen_since: HashMap<String, Instant> = HashMap::new();
    // A node (re)started while a shard is frozen drains and acknowledges it too.
    let start = f.handle.load();
    if !start.frozen.is_empty() {
        for shard in &start.frozen {
            frozen_since.insert(shard.clone(), Instant::now());
        }
        if let Some(meta) = f.meta.clone() {
            let (backends, metrics) = (f.backends.clone(), f.metrics.clone());
            tokio::spawn(drain_and_ack(meta, backends, metrics, start.frozen.clone(), start.version, f.drain_timeout));
        }
    }
    loop {
        let current = state.borrow_and_update().clone();
        if let Some(t) = &current.topology {
            if t.version > f.handle.version() {
                match f.backends.sync(t) {
                    Ok(()) => {
                        f.handle.store(t.clone());
                        f.metrics.meta().topology_version.set(t.version as f64);
                        if let Some(h) = current.history.back().filter(|h| h.version == t.version) {
                            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                            f.metrics.meta().swap_seconds.record(now.saturating_sub(h.at_ms) as f64 / 1000.0);
                        }
                        tracing::info!(version = t.version, frozen = ?t.frozen, "topology swapped");
                        frozen_since.retain(|shard, since| {
                            let still = t.is_frozen(shard);
                            if !still {
                                f.metrics.cutover().freeze_seconds.record(since.elapsed().as_secs_f64());
                            }
                            still
                        });
                        let newly: Vec<String> = t.frozen.iter().filter(|s| !frozen_since.contains_key(*s)).cloned().collect();
                        for shard in &newly {
                            frozen_since.insert(shard.clone(), Instant::now());
                        }
                        if !newly.is_empty() {
                            if let Some(meta) = f.meta.clone() {
                                let (backends, metrics, version, timeout) = (f.backends.clone(), f.metrics.clone(), t.version, f.drain_timeout);
                                tokio::spawn(drain_and_ack(meta, backends, metrics, newly, version, timeout));
                            }
                        }
                    }
                    Err(e) => tracing::error!(version = t.version, error = %e, "topology not applied: cannot open its backend pools"),
                }
            }
        }
        tokio::select! {
            r = state.changed() => if r.is_err() { return },
            _ = f.cancel.cancelled() => return,
        }
    }
}

async fn drain_and_ack(meta: MetaNode, backends: Backends, metrics: Metrics, shards: Vec<String>, version: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let busy: usize = shards.iter().filter_map(|s| backends.primary(s)).map(|p| p.in_use()).sum();
        if busy == 0 {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!(?shards, busy, version, "drain timeout: acknowledging the cutover with work still in flight");
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if meta.ack(version, meta.cutover_budget()).await {
        metrics.cutover().acked_version.set(version as f64);
        tracing::info!(?shards, version, "cutover prepare acknowledged");
    } else {
        tracing::warn!(?shards, version, "could not acknowledge the cutover prepare to the leader");
    }
}
