//! Cross-shard deadlock detection: each shard sees only a lock wait when two slotgate
//! transactions lock rows on two shards in opposite orders; this finds such cycles while
//! they form and breaks each by killing one victim's waiting statement.
//!
//! Contract: sessions announce each statement while it runs ([`Waiting::enter`]). While a
//! statement has run longer than the check interval, the detector reads every primary's
//! lock waits and transactions (`information_schema.INNODB_LOCK_WAITS` / `INNODB_TRX`,
//! through a connection of its own, outside the pools the waits may have exhausted), merges
//! the backend threads of each of this node's transactions (the pools know which client
//! connection each lent thread works for) and of the other members' (asked through
//! [`PeerThreads`]), and lets [`waits_for::victims`] pick the victims. It acts only on its
//! own node's victims: the victim's waiting thread is marked and its statement killed
//! (`KILL QUERY`), so its session answers ER_LOCK_DEADLOCK (1213) and rolls the transaction
//! back on every shard; the other members pick the same victims from the same graph and act
//! on theirs. Never kills anything that is not part of a cross-shard cycle.

use super::waits_for::{self, Age, Edge, Vertex};
use super::{Backends, NodePool};
use crate::metrics::Metrics;
use dashmap::DashMap;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One backend thread of a member's transaction: (shard, thread id, client connection id).
pub type TxThread = (String, u32, u32);

/// The other members' transactions' backend threads, by member id (empty without a meta
/// group).
pub trait PeerThreads: Send + Sync {
    fn threads(&self) -> Pin<Box<dyn Future<Output = Vec<(u64, Vec<TxThread>)>> + Send + '_>>;
}

/// The members of the meta group, asked over its transport.
impl PeerThreads for slotgate_meta::MetaNode {
    fn threads(&self) -> Pin<Box<dyn Future<Output = Vec<(u64, Vec<TxThread>)>> + Send + '_>> {
        Box::pin(self.members_transactions(Duration::from_millis(500)))
    }
}

/// The statements running now, by client connection id, with their start.
#[derive(Default)]
pub struct Waiting {
    running: DashMap<u32, Instant>,
    notify: Notify,
}

/// Takes its statement out of [`Waiting`] when dropped.
pub struct WaitGuard {
    waiting: Arc<Waiting>,
    owner: u32,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waiting.running.remove(&self.owner);
    }
}

impl Waiting {
    /// Client connection `owner` runs a statement until the guard drops.
    pub fn enter(self: &Arc<Self>, owner: u32) -> WaitGuard {
        self.running.insert(owner, Instant::now());
        self.notify.notify_one();
        WaitGuard { waiting: self.clone(), owner }
    }

    /// Since when the longest-running statement runs.
    fn oldest(&self) -> Option<Instant> {
        self.running.iter().map(|e| *e.value()).min()
    }

    fn since(&self, owner: u32) -> Option<Instant> {
        self.running.get(&owner).map(|e| *e.value())
    }
}

pub struct Detector {
    pub backends: Backends,
    pub node_id: u64,
    pub every: Duration,
    pub metrics: Metrics,
    pub peers: Option<Arc<dyn PeerThreads>>,
}

const LOCK_WAITS: &str = "SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id \
     FROM information_schema.INNODB_LOCK_WAITS w \
     JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
     JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id";
const TRANSACTIONS: &str = "SELECT trx_mysql_thread_id, UNIX_TIMESTAMP(trx_started), trx_weight FROM information_schema.INNODB_TRX";

impl Detector {
    pub async fn run(self, cancel: CancellationToken) {
        let waiting = self.backends.waiting();
        let mut conns: HashMap<String, Conn> = HashMap::new();
        loop {
            if waiting.oldest().is_none() {
                tokio::select! {
                    _ = waiting.notify.notified() => {}
                    _ = cancel.cancelled() => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = cancel.cancelled() => return,
            }
            if waiting.oldest().is_some_and(|t| t.elapsed() >= self.every) {
                self.check(&waiting, &mut conns).await;
            }
        }
    }

    /// One look at every primary's lock waits; breaks the cross-shard cycles found.
    async fn check(&self, waiting: &Waiting, conns: &mut HashMap<String, Conn>) {
        let primaries: Vec<NodePool> = self.backends.primaries();
        let mut owner_of: HashMap<(String, u32), Vertex> = HashMap::new();
        for p in &primaries {
            for (thread, owner) in p.lent_owners() {
                owner_of.insert((p.shard().to_string(), thread), Vertex::Tx(self.node_id, owner));
            }
        }
        if let Some(peers) = &self.peers {
            for (node, threads) in peers.threads().await {
                for (shard, thread, owner) in threads {
                    owner_of.insert((shard, thread), Vertex::Tx(node, owner));
                }
            }
        }
        let vertex = |shard: &str, thread: u32| owner_of.get(&(shard.to_string(), thread)).cloned().unwrap_or(Vertex::Thread(shard.to_string(), thread));
        let mut edges = Vec::new();
        let mut ages: HashMap<Vertex, Age> = HashMap::new();
        for p in &primaries {
            let shard = p.shard().to_string();
            let Some((waits, trx)) = self.read_shard(p, conns).await else { continue };
            for (thread, started, weight) in trx {
                let a = ages.entry(vertex(&shard, thread)).or_insert(Age { started, weight: 0 });
                a.started = a.started.min(started);
                a.weight += weight;
            }
            for (waiter, holder) in waits {
                edges.push(Edge { shard: shard.clone(), waiter: vertex(&shard, waiter), holder: vertex(&shard, holder) });
            }
        }
        for victim in waits_for::victims(&edges, &ages) {
            let Vertex::Tx(node, owner) = victim else { continue };
            if node != self.node_id {
                continue;
            }
            // Its statement waits on some shard: kill it there.
            for e in edges.iter().filter(|e| e.waiter == Vertex::Tx(node, owner)) {
                let Some(pool) = primaries.iter().find(|p| p.shard() == e.shard) else { continue };
                let Some(thread) = owner_of.iter().find(|(k, v)| k.0 == e.shard && **v == e.waiter).map(|(k, _)| k.1) else { continue };
                let Some(via) = conns.get_mut(&e.shard) else { continue };
                match pool.kill_as_victim(thread, via).await {
                    Ok(()) => {
                        let m = self.metrics.routing();
                        m.distributed_deadlocks.increment(1);
                        if let Some(since) = waiting.since(owner) {
                            m.deadlock_resolution.record(since.elapsed().as_secs_f64());
                        }
                        tracing::warn!(connection = owner, shard = %e.shard, thread, "cross-shard deadlock: rolling back this connection's transaction");
                    }
                    Err(err) => {
                        tracing::warn!(shard = %e.shard, error = %err, "cross-shard deadlock found but its victim could not be killed");
                        conns.remove(&e.shard);
                    }
                }
            }
        }
    }

    /// The shard's lock waits (waiter, holder thread) and transactions (thread, started,
    /// weight); `None` when the shard cannot be asked now.
    #[allow(clippy::type_complexity)]
    async fn read_shard(&self, pool: &NodePool, conns: &mut HashMap<String, Conn>) -> Option<(Vec<(u32, u32)>, Vec<(u32, i64, u64)>)> {
        let shard = pool.shard().to_string();
        if !conns.contains_key(&shard) {
            match pool.dedicated().await {
                Ok(c) => {
                    conns.insert(shard.clone(), c);
                }
                Err(e) => {
                    tracing::debug!(shard = %shard, error = %e, "deadlock detector cannot reach the shard");
                    return None;
                }
            }
        }
        let c = conns.get_mut(&shard)?;
        let read = async {
            let waits: Vec<(u32, u32)> = c.query(LOCK_WAITS).await?;
            let trx: Vec<(u32, Option<i64>, u64)> = c.query(TRANSACTIONS).await?;
            Ok::<_, mysql_async::Error>((waits, trx))
        };
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok(Ok((waits, trx))) => Some((waits, trx.into_iter().map(|(t, s, w)| (t, s.unwrap_or(0), w)).collect())),
            Ok(Err(e)) => {
                tracing::debug!(shard = %shard, error = %e, "deadlock detector could not read the shard's lock waits");
                conns.remove(&shard);
                None
            }
            Err(_) => {
                conns.remove(&shard);
                None
            }
        }
    }
}
