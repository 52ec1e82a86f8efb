//! Connections to the shards: one [`NodePool`] per backend node, following the topology.
//!
//! Contract: knows nothing of clients or SQL meaning; hands out pooled connections (RAII
//! guards) and reports pool metrics. [`Backends::sync`] is called with every new topology
//! *before* it is published: pools for every node the topology names — primaries and
//! replicas — are opened (lazily connecting) first, so no statement routed with that
//! topology finds its pool missing, and a replica promoted by a later version already has
//! its pool (warmed with [`Backends::warm_replicas`] when its shard is frozen for a cutover);
//! pools for nodes no longer named are dropped from the map and closed once their last
//! connection returns. [`Backends::probe_packet_limits`] asks each new node its
//! `max_allowed_packet` and keeps the smallest, which the frontend enforces;
//! [`Backends::upkeep_states`] keeps each pool's record of its connections' session state
//! bounded and forgets it when a node restarted. Must not import
//! `frontend` or `session`.

pub mod applied;
pub mod buffer;
pub mod deadlock;
pub mod error;
pub mod outage;
pub mod pool;
pub mod sync;
pub mod waits_for;

pub use error::BackendError;
pub use pool::{quote_ident, NodePool, PooledConn};
pub use sync::SessionSync;

use crate::config::BackendConfig;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use mysql_async::prelude::Queryable;
use slotgate_shared::Topology;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Every shard's primary pool, by shard id, for the latest topology.
#[derive(Clone)]
pub struct Backends {
    inner: Arc<Inner>,
}

struct Inner {
    /// Shard id → primary pool, swapped as a whole.
    primaries: ArcSwap<HashMap<String, NodePool>>,
    /// Node address → pool, for every node the topology names (primaries and replicas).
    nodes: ArcSwap<HashMap<String, NodePool>>,
    /// Shards frozen for a cutover by the latest topology.
    frozen: ArcSwap<Vec<String>>,
    /// Bumped on every sync; waiters for a frozen shard watch it.
    synced: tokio::sync::watch::Sender<u64>,
    /// Statements held for frozen shards and slots.
    buffer: buffer::Buffer,
    /// Serialises `sync` calls.
    sync_lock: Mutex<()>,
    cfg: BackendConfig,
    password: String,
    metrics: Metrics,
    /// `@@global.max_allowed_packet` by node address, for the nodes asked so far.
    packet_limits: Mutex<HashMap<String, usize>>,
    /// The smallest of them over the nodes of the latest topology (0 while none answered).
    packet_limit: Arc<AtomicUsize>,
    /// Statements running now, for the deadlock detector.
    waiting: Arc<deadlock::Waiting>,
    /// Hold new work for a shard whose primary does not answer (see `outage`).
    failover_hold: std::sync::atomic::AtomicBool,
    /// Shards with at least one replica in the latest topology (a failover can replace their primary).
    replicated: ArcSwap<std::collections::HashSet<String>>,
}

impl Backends {
    /// No pools yet; [`Backends::sync`] opens them.
    pub fn new(cfg: &BackendConfig, password: &str, metrics: &Metrics, buffer_window: std::time::Duration, buffer_max: usize) -> Backends {
        Backends {
            inner: Arc::new(Inner {
                primaries: ArcSwap::from_pointee(HashMap::new()),
                nodes: ArcSwap::from_pointee(HashMap::new()),
                frozen: ArcSwap::from_pointee(Vec::new()),
                synced: tokio::sync::watch::channel(0).0,
                buffer: buffer::Buffer::new(buffer_window, buffer_max, metrics.cutover().buffered.clone()),
                sync_lock: Mutex::new(()),
                cfg: cfg.clone(),
                password: password.to_string(),
                metrics: metrics.clone(),
                packet_limits: Mutex::new(HashMap::new()),
                packet_limit: Arc::new(AtomicUsize::new(0)),
                waiting: Arc::new(deadlock::Waiting::default()),
                failover_hold: std::sync::atomic::AtomicBool::new(false),
                replicated: ArcSwap::from_pointee(Default::default()),
            }),
        }
    }

    /// Opens pools for every node `topology` names and forgets those it no longer names.
    pub fn sync(&self, topology: &Topology) -> Result<(), String> {
        let _guard = self.inner.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.inner.nodes.load_full();
        let old_primaries = self.inner.primaries.load_full();
        let mut nodes = HashMap::new();
        let mut next = HashMap::new();
        for shard in &topology.shards {
            for addr in std::iter::once(&shard.primary).chain(&shard.replicas) {
                // A demoted primary was fenced (its sessions killed): it gets a fresh pool.
                let demoted = *addr != shard.primary && old_primaries.get(&shard.id).is_some_and(|p| p.addr() == addr);
                let reuse = old.get(addr).filter(|p| p.shard() == shard.id && !demoted).cloned();
                let pool = match reuse {
                    Some(p) => p,
                    None => NodePool::new(&shard.id, addr, &self.inner.cfg, &self.inner.password, self.inner.metrics.pool(&shard.id, addr))
                        .map_err(|e| format!("shard {}: {e}", shard.id))?,
                };
                nodes.insert(addr.clone(), pool);
            }
            if let Some(p) = nodes.get(&shard.primary) {
                next.insert(shard.id.clone(), p.clone());
            }
        }
        let retired: Vec<NodePool> = old.iter().filter(|(addr, p)| nodes.get(*addr).is_none_or(|n| !n.same(p))).map(|(_, p)| p.clone()).collect();
        self.inner.nodes.store(Arc::new(nodes));
        self.inner.primaries.store(Arc::new(next));
        self.inner.frozen.store(Arc::new(topology.frozen.clone()));
        self.inner.replicated.store(Arc::new(topology.shards.iter().filter(|s| !s.replicas.is_empty()).map(|s| s.id.clone()).collect()));
        self.inner.synced.send_modify(|v| *v += 1);
        for pool in retired {
            tracing::info!(shard = pool.shard(), node = pool.addr(), "backend pool retired by the topology");
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { pool.disconnect().await });
            }
        }
        Ok(())
    }

    /// The smallest `max_allowed_packet` of the nodes (0 while unknown), shared with the
    /// frontend.
    pub fn packet_limit(&self) -> Arc<AtomicUsize> {
        self.inner.packet_limit.clone()
    }

    /// Asks every node of the latest topology not asked yet for its `max_allowed_packet`
    /// (a node that does not answer is asked again next time), then publishes the smallest.
    pub async fn probe_packet_limits(&self) {
        let nodes = self.inner.nodes.load_full();
        for (addr, pool) in nodes.iter() {
            let known = self.inner.packet_limits.lock().unwrap_or_else(|p| p.into_inner()).contains_key(addr);
            if known {
                continue;
            }
            let ask = async {
                let mut c = pool.acquire(false).await.ok()?;
                c.conn().query_first::<u64, _>("SELECT @@global.max_allowed_packet").await.ok().flatten()
            };
            if let Ok(Some(v)) = tokio::time::timeout(std::time::Duration::from_secs(5), ask).await {
                tracing::debug!(node = %addr, max_allowed_packet = v, "backend packet limit");
                self.inner.packet_limits.lock().unwrap_or_else(|p| p.into_inner()).insert(addr.clone(), v as usize);
            }
        }
        let limits = self.inner.packet_limits.lock().unwrap_or_else(|p| p.into_inner());
        let smallest = nodes.keys().filter_map(|a| limits.get(a).copied()).min().unwrap_or(0);
        self.inner.packet_limit.store(smallest, Ordering::Relaxed);
    }

    /// Every node's per-connection state records: pruned, and forgotten when the node
    /// restarted (see [`applied`]).
    pub async fn upkeep_states(&self) {
        let nodes = self.inner.nodes.load_full();
        for pool in nodes.values() {
            pool.upkeep_states().await;
        }
    }

    /// Statements running now (sessions announce theirs; the deadlock detector looks).
    pub fn waiting(&self) -> Arc<deadlock::Waiting> {
        self.inner.waiting.clone()
    }

    /// (shard, backend thread id, client connection id) of every primary connection lent
    /// out now.
    pub fn lent_threads(&self) -> Vec<(String, u32, u32)> {
        self.primaries().iter().flat_map(|p| p.lent_owners().into_iter().map(move |(t, o)| (p.shard().to_string(), t, o))).collect()
    }

    /// Every shard's primary pool.
    pub fn primaries(&self) -> Vec<NodePool> {
        let mut v: Vec<NodePool> = self.inner.primaries.load().values().cloned().collect();
        v.sort_by(|a, b| a.shard().cmp(b.shard()));
        v
    }

    pub fn primary(&self, shard: &str) -> Option<NodePool> {
        self.inner.primaries.load().get(shard).cloned()
    }

    /// Opens a connection to each replica of `shard` (returned to its pool at once), so that
    /// the one a cutover promotes takes its first statements without connecting first.
    pub async fn warm_replicas(&self, topology: &Topology, shard: &str) {
        let Some(s) = topology.shards.iter().find(|s| s.id == shard) else { return };
        let pools: Vec<NodePool> = s.replicas.iter().filter_map(|a| self.inner.nodes.load().get(a).cloned()).collect();
        for p in pools {
            if let Err(e) = p.acquire(false).await {
                tracing::debug!(shard, node = p.addr(), error = %e, "could not warm a replica's pool");
            }
        }
    }

    pub fn is_frozen(&self, shard: &str) -> bool {
        self.inner.frozen.load().iter().any(|f| f == shard)
    }

    /// The shard's primary pool once the shard is not frozen for a cutover: new work on a
    /// frozen shard waits here (buffered) up to the buffer window, then goes to whatever
    /// primary the topology names by then. `Err` when the window passed.
    pub async fn primary_when_unfrozen(&self, shard: &str) -> Result<Option<NodePool>, BackendError> {
        if !self.is_frozen(shard) {
            return Ok(self.primary(shard));
        }
        let what = format!("shard {shard}");
        let held = self.inner.buffer.enter(&what)?;
        let mut rx = self.inner.synced.subscribe();
        let waited = tokio::time::timeout(self.inner.buffer.window(), async {
            while self.is_frozen(shard) {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        drop(held);
        match waited {
            Ok(()) => Ok(self.primary(shard)),
            Err(_) => Err(self.inner.buffer.expired(&what)),
        }
    }

    /// The cutover buffer (statements held for frozen shards or slots).
    pub fn buffer(&self) -> &buffer::Buffer {
        &self.inner.buffer
    }

    pub fn report_metrics(&self) {
        for p in self.inner.nodes.load().values() {
            p.report();
        }
    }

    /// Kills the running statements of client connection `owner` on every node; how many
    /// backend threads were asked.
    pub async fn kill_queries_of(&self, owner: u32) -> usize {
        let pools = self.inner.nodes.load_full();
        let mut n = 0;
        for p in pools.values() {
            n += p.kill_queries_of(owner).await;
        }
        n
    }

    pub async fn disconnect(&self) {
        let pools = self.inner.nodes.load_full();
        for p in pools.values() {
            p.disconnect().await;
        }
    }
}
