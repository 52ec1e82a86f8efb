//! Follows the meta group: every applied state with a newer topology is published to the
//! node's router, after the backend pools it needs exist; a newly frozen shard is drained and
//! the freeze acknowledged to the leader; so is a newly prepared slot move (on its source
//! shards).
//!
//! Contract: runs until cancelled; publishes versions in order and never an older one; a
//! topology whose pools cannot be built (a malformed address) is logged and skipped, the node
//! keeps routing with the version it has. Propagation is replication: this reacts to the
//! local state machine's apply, it never polls. When a version freezes a shard or prepares a
//! slot move (the prepare of a cutover), new work on it is already held back (by `Backends`
//! for a shard, by the session for moving slots); a task waits until no connection of the
//! affected shards carries work routed with an older version (in-flight statements and
//! transactions finished) or the drain timeout passed — then that work is aborted (its
//! statement killed, its transaction answered a retryable error) — and acknowledges that
//! version to the leader, unless the freeze ended meanwhile.

use super::TopologyHandle;
use crate::backend::Backends;
use crate::metrics::Metrics;
use slotgate_meta::{MetaNode, MetaState};
use slotgate_shared::Topology;
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
    // Frozen shards and prepared moves (by key), since when.
    let mut frozen_since: HashMap<String, Instant> = HashMap::new();
    // A node (re)started while a shard is frozen drains and acknowledges it too.
    let start = f.handle.load();
    let held = held_now(&start);
    if !held.is_empty() {
        for key in &held {
            frozen_since.insert(key.clone(), Instant::now());
        }
        if let Some(meta) = f.meta.clone() {
            tokio::spawn(f.drain(meta, held, drained_shards(&start), start.version).run());
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
                        let held = held_now(t);
                        frozen_since.retain(|key, since| {
                            let still = held.contains(key);
                            if !still {
                                f.metrics.cutover().freeze_seconds.record(since.elapsed().as_secs_f64());
                            }
                            still
                        });
                        let newly: Vec<String> = held.into_iter().filter(|k| !frozen_since.contains_key(k)).collect();
                        for key in &newly {
                            frozen_since.insert(key.clone(), Instant::now());
                        }
                        // The replica a cutover promotes takes held work first: connect now.
                        for shard in t.frozen.iter().filter(|s| newly.contains(&format!("shard {s}"))) {
                            let (backends, topo, shard) = (f.backends.clone(), t.clone(), shard.clone());
                            tokio::spawn(async move { backends.warm_replicas(&topo, &shard).await });
                        }
                        if !newly.is_empty() {
                            if let Some(meta) = f.meta.clone() {
                                tokio::spawn(f.drain(meta, newly, drained_shards(t), t.version).run());
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

/// What a topology holds back (frozen shards, prepared moves), by key.
fn held_now(t: &Topology) -> Vec<String> {
    t.held_back().into_iter().map(|(key, _)| key).collect()
}

/// The shards whose in-flight work a prepare waits for: frozen shards and moves' sources.
fn drained_shards(t: &Topology) -> Vec<String> {
    let sources = t.moving_sources().into_iter().filter_map(|i| t.shards.get(i).map(|s| s.id.clone()));
    let mut v: Vec<String> = t.frozen.iter().cloned().chain(sources).collect();
    v.sort();
    v.dedup();
    v
}

impl Follower {
    fn drain(&self, meta: MetaNode, keys: Vec<String>, shards: Vec<String>, version: u64) -> Drain {
        Drain { meta, handle: self.handle.clone(), backends: self.backends.clone(), metrics: self.metrics.clone(), keys, shards, version, timeout: self.drain_timeout }
    }
}

/// The drain of one prepare `version`: `keys` are what it holds back, `shards` those whose
/// in-flight work it waits for.
struct Drain {
    meta: MetaNode,
    handle: TopologyHandle,
    backends: Backends,
    metrics: Metrics,
    keys: Vec<String>,
    shards: Vec<String>,
    version: u64,
    timeout: Duration,
}

impl Drain {
    async fn run(self) {
        let deadline = Instant::now() + self.timeout;
        let (shards, version) = (&self.shards, self.version);
        let pools: Vec<_> = shards.iter().filter_map(|s| self.backends.primary(s)).collect();
        loop {
            let now = held_now(&self.handle.load());
            if !self.keys.iter().all(|k| now.contains(k)) {
                // Committed or rolled back meanwhile: nothing to abort, nothing to acknowledge.
                return;
            }
            let busy: usize = pools.iter().map(|p| p.lent_before(version).len()).sum();
            if busy == 0 {
                break;
            }
            if Instant::now() > deadline {
                tracing::warn!(?shards, busy, version, "drain timeout: aborting the work still in flight, then acknowledging the cutover");
                for p in &pools {
                    let ids = p.lent_before(version);
                    if !ids.is_empty() {
                        p.abort(&ids).await;
                    }
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if self.meta.ack(version, self.meta.cutover_budget()).await {
            self.metrics.cutover().acked_version.set(version as f64);
            tracing::info!(?shards, version, "cutover prepare acknowledged");
        } else {
            tracing::warn!(?shards, version, "could not acknowledge the cutover prepare to the leader");
        }
    }
}
