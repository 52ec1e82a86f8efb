//! A pool of connections to one backend node (mysql_async), with session-state sync and an
//! RAII guard.
//!
//! Contract: connections are not reset when returned (that would cost a round trip per
//! statement); instead the pool remembers what session state each connection carries and
//! [`PooledConn::sync`] brings a connection to the state a client session expects before the
//! session uses it. Waits are bounded by the pool wait timeout: a dead node answers with an
//! error in time, never a hang.
//!
//! Cutover drains: a lent connection carries the topology version its work was routed
//! with ([`PooledConn::tag`]), so a drain can wait for exactly the work routed before a
//! prepare ([`NodePool::lent_before`]) and abort what outlives the drain timeout
//! ([`NodePool::abort`]): its running statement is killed and the session's next use of the
//! connection answers a retryable error.

use super::error::{bounded, BackendError};
use super::applied::AppliedStates;
use super::sync::{plan, Applied, SessionSync};
use crate::config::BackendConfig;
use crate::metrics::PoolMetrics;
use dashmap::DashMap;
use futures_util::FutureExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::sync::Arc;
use std::time::Duration;

/// The node's boot time (unix seconds).
const BOOT_SQL: &str =
    "SELECT CAST(UNIX_TIMESTAMP() AS SIGNED) - CAST(VARIABLE_VALUE AS SIGNED) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'";

/// How often mysql_async closes connections idle past `idle_timeout_ms`.
const TTL_CHECK: Duration = Duration::from_secs(30);

pub(super) struct NodeInner {
    pub shard: String,
    pub addr: String,
    pools: [Pool; 2],
    applied: AppliedStates,
    /// Backend thread id → (version its work was routed with, client connection id).
    lent: DashMap<u32, (u64, u32)>,
    /// Connections whose work a cutover aborted (until they are dropped).
    aborted: DashMap<u32, ()>,
    /// Connections whose statement was killed to break a cross-shard deadlock (until the
    /// session reads the mark, see [`PooledConn::victim_probe`]).
    victims: Arc<DashMap<u32, ()>>,
    /// How to open a connection outside the pools (the deadlock detector's own).
    opts: Opts,
    metrics: PoolMetrics,
    wait_timeout: Duration,
    pub query_timeout: Option<Duration>,
    /// How long mysql_async keeps an idle connection (above the pool minimum).
    idle_ttl: Duration,
    /// Whether the backend account may set `pseudo_thread_id` (SUPER or BINLOG REPLAY):
    /// `PSEUDO_UNKNOWN` until the first try.
    pseudo_ids: std::sync::atomic::AtomicU8,
}

const PSEUDO_UNKNOWN: u8 = 0;
const PSEUDO_YES: u8 = 1;
const PSEUDO_NO: u8 = 2;
/// ER_SPECIFIC_ACCESS_DENIED_ERROR: the account lacks the privilege.
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

/// Pools to one node: one for clients that want CLIENT_FOUND_ROWS, one for those that don't.
#[derive(Clone)]
pub struct NodePool {
    inner: Arc<NodeInner>,
}

impl NodePool {
    pub fn new(shard: &str, addr: &str, cfg: &BackendConfig, password: &str, metrics: PoolMetrics) -> Result<NodePool, String> {
        let (host, port) = crate::config::parse_host_port(addr)?;
        let constraints = PoolConstraints::new(cfg.pool_min, cfg.pool_max)
            .ok_or_else(|| "backend.pool_min must not exceed backend.pool_max".to_string())?;
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_reset_connection(false)
            .with_inactive_connection_ttl(Duration::from_millis(cfg.idle_timeout_ms))
            .with_ttl_check_interval(TTL_CHECK);
        let make = |found_rows: bool| {
            let opts: Opts = OptsBuilder::default()
                .ip_or_hostname(host.clone())
                .tcp_port(port)
                .user(Some(cfg.user.clone()))
                .pass(Some(password.to_string()))
                .tcp_nodelay(true)
                .prefer_socket(false)
                .client_found_rows(found_rows)
                .stmt_cache_size(256)
                .pool_opts(pool_opts.clone())
                .into();
            opts
        };
        let opts = make(false);
        let wait_ms = cfg.pool_wait_timeout_ms.max(cfg.connect_timeout_ms);
        Ok(NodePool {
            inner: Arc::new(NodeInner {
                shard: shard.to_string(),
                addr: addr.to_string(),
                pools: [Pool::new(opts.clone()), Pool::new(make(true))],
                applied: AppliedStates::default(),
                lent: DashMap::new(),
                aborted: DashMap::new(),
                victims: Arc::new(DashMap::new()),
                pseudo_ids: std::sync::atomic::AtomicU8::new(PSEUDO_UNKNOWN),
                opts,
                metrics,
                wait_timeout: Duration::from_millis(wait_ms),
                query_timeout: (cfg.query_timeout_ms > 0).then(|| Duration::from_millis(cfg.query_timeout_ms)),
                idle_ttl: Duration::from_millis(cfg.idle_timeout_ms) + TTL_CHECK,
            }),
        })
    }

    pub fn shard(&self) -> &str {
        &self.inner.shard
    }

    /// Whether both are the same pool (not just pools to the same node).
    pub fn same(&self, other: &NodePool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub fn query_timeout(&self) -> Option<Duration> {
        self.inner.query_timeout
    }

    /// Takes a connection, waiting at most the pool wait timeout.
    pub async fn acquire(&self, found_rows: bool) -> Result<PooledConn, BackendError> {
        let pool = &self.inner.pools[usize::from(found_rows)];
        let fut = pool.get_conn();
        tokio::pin!(fut);
        let result = match (&mut fut).now_or_never() {
            Some(r) => r,
            None => {
                self.inner.metrics.waits.increment(1);
                match tokio::time::timeout(self.inner.wait_timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => {
                        let m = pool.metrics();
                        let busy = m.connections_in_use.load(std::sync::atomic::Ordering::Relaxed);
                        let waited_ms = self.inner.wait_timeout.as_millis() as u64;
                        return Err(if busy > 0 {
                            BackendError::PoolExhausted { shard: self.inner.shard.clone(), addr: self.inner.addr.clone(), waited_ms }
                        } else {
                            BackendError::Unavailable {
                                shard: self.inner.shard.clone(),
                                addr: self.inner.addr.clone(),
                                reason: format!("no answer within {waited_ms} ms"),
                            }
                        });
                    }
                }
            }
        };
        let conn = result.map_err(|e| BackendError::Unavailable {
            shard: self.inner.shard.clone(),
            addr: self.inner.addr.clone(),
            reason: e.to_string(),
        })?;
        self.inner.metrics.in_use.increment(1.0);
        self.inner.applied.lent(conn.id());
        Ok(PooledConn { conn: Some(conn), node: self.inner.clone(), tag: None })
    }

    /// Upkeep of the per-connection state records: forgets connections idle longer than
    /// the pool keeps idle ones, and all of them when the node restarted (its boot time,
    /// asked over a pooled connection, moved).
    pub async fn upkeep_states(&self) {
        let horizon = self.inner.idle_ttl + Duration::from_secs(60);
        self.inner.applied.prune(horizon);
        let ask = async {
            let mut c = self.acquire(false).await.ok()?;
            c.conn().query_first::<i64, _>(BOOT_SQL).await.ok().flatten()
        };
        if let Ok(Some(boot)) = tokio::time::timeout(Duration::from_secs(2), ask).await {
            if self.inner.applied.booted(boot) {
                self.inner.metrics.restarts.increment(1);
                tracing::info!(node = %self.inner.addr, "backend node restarted: its connections' session state is forgotten");
            }
        }
    }

    /// Refreshes the pool-size gauges from mysql_async's counters.
    pub fn report(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let size: usize = self.inner.pools.iter().map(|p| p.metrics().connection_count.load(Relaxed)).sum();
        self.inner.metrics.size.set(size as f64);
    }

    /// Connections of this node lent out now.
    pub fn in_use(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        self.inner.pools.iter().map(|p| p.metrics().connections_in_use.load(Relaxed)).sum()
    }

    /// Ids of the connections whose work was routed with a version older than `version`.
    pub fn lent_before(&self, version: u64) -> Vec<u32> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.inner.lent.iter().filter(|e| e.value().0 < version).map(|e| *e.key()).collect()
    }

    /// Aborts the work on connections `ids` (a drain timed out): each is marked, so that
    /// its session answers a retryable error and rolls back, and its running statement is
    /// killed on the node.
    pub async fn abort(&self, ids: &[u32]) {
        for id in ids {
            self.inner.aborted.insert(*id, ());
        }
        self.kill_queries(ids).await;
    }

    /// Backend thread id → client connection id, for every connection lent out now.
    pub fn lent_owners(&self) -> Vec<(u32, u32)> {
        self.inner.lent.iter().map(|e| (*e.key(), e.value().1)).collect()
    }

    /// A connection of its own to this node, outside the pools (which may all be busy in
    /// the very lock waits the caller wants to look at).
    pub async fn dedicated(&self) -> Result<Conn, BackendError> {
        let who = (self.inner.shard.as_str(), self.inner.addr.as_str());
        bounded(Some(self.inner.wait_timeout), who, Conn::new(self.inner.opts.clone())).await.map_err(|(e, _)| e)
    }

    /// Breaks a deadlock: marks backend thread `id` as its victim, so that its session
    /// answers ER_LOCK_DEADLOCK, then kills its running statement through `via`.
    pub async fn kill_as_victim(&self, id: u32, via: &mut Conn) -> Result<(), BackendError> {
        self.inner.victims.insert(id, ());
        let who = (self.inner.shard.as_str(), self.inner.addr.as_str());
        let r = bounded(Some(Duration::from_secs(2)), who, via.query_drop(format!("KILL QUERY {id}"))).await.map_err(|(e, _)| e);
        if r.is_err() {
            self.inner.victims.remove(&id);
        }
        r
    }

    /// `KILL QUERY` of each backend thread in `ids`, through one connection of this node.
    async fn kill_queries(&self, ids: &[u32]) {
        let Ok(mut c) = self.acquire(false).await else { return };
        for id in ids {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.conn().query_drop(format!("KILL QUERY {id}"))).await;
        }
    }

    /// Kills the running statements of client connection `owner` on this node (`KILL QUERY`
    /// of each backend thread carrying its work); how many were asked.
    pub async fn kill_queries_of(&self, owner: u32) -> usize {
        let ids: Vec<u32> = self.inner.lent.iter().filter(|e| e.value().1 == owner).map(|e| *e.key()).collect();
        if !ids.is_empty() {
            self.kill_queries(&ids).await;
        }
        ids.len()
    }

    pub fn retried(&self) {
        self.inner.metrics.retries.increment(1);
    }

    /// Closes every pooled connection (shutdown).
    pub async fn disconnect(&self) {
        for p in &self.inner.pools {
            let _ = tokio::time::timeout(Duration::from_secs(2), p.clone().disconnect()).await;
        }
    }
}

/// A connection lent out by a [`NodePool`]; returns to the pool when dropped.
pub struct PooledConn {
    conn: Option<Conn>,
    node: Arc<NodeInner>,
    /// The topology version this connection's work was routed with (see the module doc).
    tag: Option<(u32, u64)>,
}

impl PooledConn {
    pub fn conn(&mut self) -> &mut Conn {
        // Invariant: `conn` is Some until drop or `discard`, which consume self.
        self.conn.as_mut().expect("PooledConn used after discard")
    }

    /// The backend holds an open transaction: as its last OK packet says (when
    /// `trust_flag`), or, when that says no (or there is none: the last statement failed,
    /// or was a prepare) or is not trusted, and `ask` is set, as `@@in_transaction` says.
    pub async fn in_transaction(&mut self, trust_flag: bool, ask: bool) -> bool {
        if trust_flag {
            let flagged = self.conn().last_ok_packet().is_some_and(|ok| ok.status_flags().contains(mysql_async::consts::StatusFlags::SERVER_STATUS_IN_TRANS));
            if flagged {
                return true;
            }
        }
        if !ask {
            return false;
        }
        let limit = self.node.query_timeout.unwrap_or(Duration::from_secs(10));
        let asked = tokio::time::timeout(limit, self.conn().query_first::<u8, _>("SELECT @@in_transaction")).await;
        matches!(asked, Ok(Ok(Some(1))))
    }

    pub fn shard(&self) -> &str {
        &self.node.shard
    }

    pub fn addr(&self) -> &str {
        &self.node.addr
    }

    pub fn query_timeout(&self) -> Option<Duration> {
        self.node.query_timeout
    }

    /// Marks the connection as carrying work of client connection `owner` routed with
    /// topology `version`; a connection already tagged keeps its older tag unless `renew`
    /// (its earlier work is over).
    pub fn tag(&mut self, version: u64, owner: u32, renew: bool) {
        if self.tag.is_some() && !renew {
            return;
        }
        let id = self.conn().id();
        self.tag = Some((id, version));
        self.node.lent.insert(id, (version, owner));
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// The connection's work is over (statement done outside a transaction).
    pub fn untag(&mut self) {
        self.forget();
    }

    /// Whether a cutover aborted this connection's work (see [`NodePool::abort`]).
    /// Whether a deadlock detector picked this connection's statement as its victim:
    /// asked once, after the statement failed.
    pub fn victim_probe(&self) -> VictimProbe {
        let id = self.conn.as_ref().map_or(0, |c| c.id());
        VictimProbe { victims: self.node.victims.clone(), id }
    }

    pub fn aborted(&self) -> bool {
        self.tag.is_some_and(|(id, _)| self.node.aborted.contains_key(&id))
    }

    /// Records how long this shard took to answer a statement.
    pub fn observe(&self, took: Duration) {
        self.node.metrics.latency.record(took.as_secs_f64());
    }

    /// Brings this connection to the session state `want` (see [`super::sync`]): reset if it
    /// carries another session's state (only when `may_reset`: a connection holding a
    /// transaction or temporary tables must not lose them), replay the SETs and user
    /// variables it lacks, select the database.
    pub async fn sync(&mut self, want: &SessionSync, may_reset: bool) -> Result<(), BackendError> {
        let id = self.conn().id();
        let have = self.node.applied.get(id);
        let p = plan(&have, want);
        if p.is_empty() {
            if have.owner != want.owner {
                // Equivalent state, now this session's: later changes are brought forward
                // from it rather than by a reset (which a pinned connection cannot take).
                self.node.applied.set(id, Applied::of(want));
            }
            return Ok(());
        }
        let (shard, addr) = (self.node.shard.clone(), self.node.addr.clone());
        if p.reset && !may_reset {
            return Err(BackendError::Lost { shard, addr, reason: "the connection's session state is unknown after an error, and it holds a transaction".into() });
        }
        let err = |e| BackendError::from_mysql(e, &shard, &addr);
        // Until it is done, a failure leaves the connection in an unknown state.
        self.node.applied.set(id, Applied::unknown());
        if p.reset {
            self.conn().reset().await.map_err(err)?;
        }
        let pseudo = self.pseudo_id_statement(p.pseudo_id, want).await.map_err(err)?;
        let mut batch: Vec<&str> = want.sets.get(p.sets_from..).unwrap_or_default().iter().map(String::as_str).collect();
        if let Some(set) = &pseudo {
            batch.push(set);
        }
        if p.vars && !want.vars.is_empty() {
            batch.push(&want.vars);
        }
        let use_db = want.db.as_ref().filter(|_| p.use_db).map(|db| format!("USE {}", quote_ident(db)));
        if let Some(u) = &use_db {
            batch.push(u);
        }
        if !batch.is_empty() {
            self.conn().query_drop(batch.join(";\n")).await.map_err(err)?;
        }
        self.node.applied.set(id, Applied::of(want));
        Ok(())
    }

    /// The `SET pseudo_thread_id` that makes `CONNECTION_ID()` answer the client's id, to
    /// send with the other SETs; the first time, it is tried alone: an account without the
    /// privilege keeps the backend's thread ids (logged once).
    async fn pseudo_id_statement(&mut self, wanted: bool, want: &SessionSync) -> Result<Option<String>, mysql_async::Error> {
        use std::sync::atomic::Ordering;
        if !wanted || self.node.pseudo_ids.load(Ordering::Relaxed) == PSEUDO_NO {
            return Ok(None);
        }
        let set = format!("SET pseudo_thread_id = {}", want.connection_id);
        if self.node.pseudo_ids.load(Ordering::Relaxed) == PSEUDO_YES {
            return Ok(Some(set));
        }
        match self.conn().query_drop(&set).await {
            Ok(()) => {
                self.node.pseudo_ids.store(PSEUDO_YES, Ordering::Relaxed);
                Ok(None)
            }
            Err(mysql_async::Error::Server(e)) if e.code == ER_SPECIFIC_ACCESS_DENIED => {
                self.node.pseudo_ids.store(PSEUDO_NO, Ordering::Relaxed);
                tracing::info!(shard = %self.node.shard, addr = %self.node.addr, "the backend account may not set pseudo_thread_id (SUPER or BINLOG REPLAY): CONNECTION_ID() answers the backend's thread ids");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Records that the session changed the connection's state itself (USE, SET) so that
    /// the next sync does not redo it.
    pub fn note_state(&mut self, want: &SessionSync) {
        let id = self.conn().id();
        self.node.applied.set(id, Applied::of(want));
    }

    /// Marks the connection as carrying unknown state (a statement failed midway): the next
    /// user resets it.
    pub fn note_unknown_state(&mut self) {
        let id = self.conn().id();
        self.node.applied.set(id, Applied::unknown());
    }

    /// Closes the connection instead of returning it (it broke or timed out mid-statement).
    pub fn discard(mut self) {
        self.forget();
        if let Some(conn) = self.conn.take() {
            self.node.applied.remove(conn.id());
            self.node.metrics.in_use.decrement(1.0);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.disconnect()).await;
            });
        }
    }
}

impl PooledConn {
    fn forget(&mut self) {
        if let Some((id, _)) = self.tag.take() {
            self.node.lent.remove(&id);
            self.node.aborted.remove(&id);
            self.node.victims.remove(&id);
        }
    }
}

/// Reads (and clears) the deadlock-victim mark of one backend connection.
pub struct VictimProbe {
    victims: Arc<DashMap<u32, ()>>,
    id: u32,
}

impl VictimProbe {
    /// True once if the connection's statement was killed to break a deadlock.
    pub fn fired(&self) -> bool {
        self.victims.remove(&self.id).is_some()
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        self.forget();
        if let Some(conn) = self.conn.take() {
            // Back to mysql_async's pool.
            self.node.applied.returned(conn.id());
            self.node.metrics.in_use.decrement(1.0);
        }
    }
}

/// Backtick-quotes an identifier.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
