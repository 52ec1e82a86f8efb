//! One client's session: its state, its prepared statements, the backend connections it
//! holds per shard while a transaction (or state only a connection can carry) is open.
//!
//! Contract: implements the frontend's `Handler`. Each statement is classified (session
//! effects, transaction control), routed once with one topology snapshot (a transaction keeps
//! the snapshot it started with), and executed by `exec`; nothing after the router reads the
//! SQL text again.

pub mod classify;
mod commands;
mod conns;
mod exec;
pub mod forward;
mod hold;
mod kill;
mod pin;
mod processlist;
pub mod registry;
mod scatter;
mod split;
mod sqlexec;
mod sqlprep;
pub mod state;
mod track;
mod tx;
mod vars;

use crate::backend::{BackendError, Backends};
use crate::config::TransactionMode;
use crate::error::ClientError;
use crate::frontend::{Handler, Login, OkInfo, Reply, StreamError};
use crate::metrics::Metrics;
use crate::router::{self, ParseCache, Parsed, Route, RouteContext, RouteError, StatementKind, Target};
use crate::topology::TopologyHandle;
use classify::{classify, Classified};
use conns::Conns;
use forward::Request;
use mysql_async::prelude::Queryable;
use mysql_async::Params;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::value::Value;
use slotgate_shared::Topology;
use state::SessionState;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a session keeps its last backend connection while its client is silent: long
/// enough to cover a busy client's think time (no pool round trip per statement), short
/// enough that idle clients do not hoard connections.
const HOLD_WHILE_BUSY: std::time::Duration = std::time::Duration::from_millis(5);

/// What every session of a node shares.
pub struct Shared {
    pub backends: Backends,
    pub topology: TopologyHandle,
    pub parse_cache: ParseCache,
    pub metrics: Metrics,
    pub transaction_mode: TransactionMode,
    /// This node's meta group member (its lease decides whether the node may route).
    pub meta: Option<slotgate_meta::MetaNode>,
    /// Numbers session states (a login or reset): backend connections remember whose state
    /// they carry (see `backend::sync`).
    pub session_ids: std::sync::atomic::AtomicU64,
    /// The node's client connections, for KILL.
    pub sessions: Arc<registry::Registry>,
    /// This node's id (the top byte of its connection ids).
    pub node_id: u64,
}

impl Shared {
    fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

struct Prepared {
    sql: Arc<[u8]>,
    classified: Classified,
    parsed: Result<Arc<Parsed>, String>,
}

pub struct Session {
    shared: Arc<Shared>,
    state: SessionState,
    conns: Conns,
    prepared: HashMap<u32, Prepared>,
    next_stmt_id: u32,
    /// The topology an open transaction started with.
    tx_topology: Option<Arc<Topology>>,
    /// The client connection's id (from the handshake).
    connection_id: u32,
    /// The account may see and KILL every connection of the node.
    connection_admin: bool,
    /// What this connection does now, for SHOW PROCESSLIST.
    activity: Arc<registry::Activity>,
    pins: pin::PinGauge,
    /// Rows changed by the last statement `run_single` finished without an error (for the
    /// per-slot load counters).
    last_written: Option<u64>,
}

impl Session {
    pub fn new(shared: Arc<Shared>) -> Session {
        Session {
            pins: pin::PinGauge::new(shared.metrics.clone()),
            conns: Conns::new(shared.backends.clone()),
            state: SessionState::new("", 45, shared.next_session_id()),
            shared,
            prepared: HashMap::new(),
            next_stmt_id: 1,
            tx_topology: None,
            connection_id: 0,
            connection_admin: false,
            activity: Arc::new(registry::Activity::default()),
            last_written: None,
        }
    }

    /// An error when this node must not route: its lease with the meta group expired.
    fn not_serving(&self) -> Option<ClientError> {
        match &self.shared.meta {
            Some(m) if !m.serving() => Some(ClientError::lease_expired()),
            _ => None,
        }
    }

    fn topology(&self) -> Arc<Topology> {
        self.tx_topology.clone().unwrap_or_else(|| self.shared.topology.load())
    }

    fn parse(&self, text: &str, topo: &Topology) -> Result<Arc<Parsed>, String> {
        if topo.rules.is_empty() {
            // Nothing is sharded: everything goes to the home shard, no parse needed.
            return Err(String::new());
        }
        let r = self.shared.parse_cache.parse(text).map_err(|e| match e {
            RouteError::Parse(m) => m,
            other => other.to_string(),
        });
        self.shared.metrics.routing().parse_cache_entries.set(self.shared.parse_cache.len() as f64);
        r
    }

    /// Routes a statement with one topology snapshot. Text the parser cannot read goes to the
    /// home shard unless it names a sharded table.
    fn route(&self, text: &str, parsed: &Result<Arc<Parsed>, String>, topo: &Topology, params: &[Value]) -> Result<Route, ClientError> {
        let refused = |e: RouteError| {
            let reason = match &e {
                RouteError::NotSupported(_) => "not_supported",
                RouteError::MissingShardKey { .. } => "missing_shard_key",
                RouteError::Parse(_) => "parse",
            };
            self.shared.metrics.routing().refused(reason);
            ClientError::from(e)
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(_) if topo.rules.is_empty() => return Ok(Route::new(StatementKind::Session, Target::Home)),
            Err(msg) => return router::route_unparsed(text, msg, topo).map_err(|e| {
                self.shared.metrics.routing().refused("parse");
                ClientError::from(e)
            }),
        };
        let ctx = RouteContext { database: self.state.db.as_deref(), params };
        router::route(parsed, topo, &ctx).map_err(refused)
    }

    /// Fresh state for `login`; checks its default database on the home shard.
    async fn start(&mut self, login: &Login, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.conns.release_all().await;
        self.prepared.clear();
        self.tx_topology = None;
        self.conns.found_rows = login.capabilities.contains(CapabilityFlags::CLIENT_FOUND_ROWS);
        self.connection_id = login.connection_id;
        self.conns.owner = login.connection_id;
        self.connection_admin = login.connection_admin;
        self.activity = self.shared.sessions.set_user(login.connection_id, &login.user);
        self.state = SessionState::new(&login.user, login.collation, self.shared.next_session_id());
        self.state.set_connection_id(login.connection_id);
        if !self.shared.topology.is_ready() {
            return reply.error(&ClientError::no_topology()).await;
        }
        if let Some(e) = self.not_serving() {
            return reply.error(&e).await;
        }
        match &login.db {
            Some(db) => self.init_db(db, reply).await,
            None => reply.ok(&OkInfo::default(), self.state.client_status()).await,
        }
    }

    async fn init_db(&mut self, db: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let sql: Arc<[u8]> = format!("USE {}", crate::backend::quote_ident(db)).into_bytes().into();
        let classified = Classified { effects: vec![classify::Effect::Use(db.to_string())], ..Classified::default() };
        self.run_unrouted(&Request::Text(sql), &classified, true, reply).await
    }
}

impl Handler for Session {
    async fn on_connect(&mut self, login: &Login, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.start(login, reply).await
    }

    async fn on_query(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let text = String::from_utf8_lossy(sql);
        self.activity.begin("Query", Some(&text));
        let r = self.query(&text, sql, reply).await;
        self.activity.end(self.state.db.as_deref());
        r
    }

    async fn on_prepare(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let text = String::from_utf8_lossy(sql);
        let classified = classify(&text);
        if classified.sql_prep || classified.kill.is_some() || classified.kill_in_multi {
            let e = ClientError::unsupported_ps();
            return reply.error(&e).await;
        }
        let topo = self.topology();
        let parsed = self.parse(&text, &topo);
        // The home shard holds every table (the unsharded ones only there, and the session's
        // temporary tables): it describes the statement.
        let shard = topo.shards[topo.home_index()].id.clone();
        self.conns.version = self.shared.topology.version();
        let mut taken = match self.conns.take(&shard, &mut self.state, false).await {
            Ok(t) => t.conn,
            Err(e) => return reply.error(&e).await,
        };
        let (s, a) = (taken.shard().to_string(), taken.addr().to_string());
        let limit = taken.query_timeout().unwrap_or(std::time::Duration::from_secs(3600));
        // The connection's statement cache may hold this text from an execution, with the
        // columns of the table as it was then (found by mariadb-client-test's
        // test_select_prepare: a recreated table described with its old columns). A trailing
        // space never changes a statement but misses the cache, so the backend describes
        // the statement as it is now.
        let mut fresh = Vec::with_capacity(sql.len() + 1);
        fresh.extend_from_slice(sql);
        fresh.push(b' ');
        let result = tokio::time::timeout(limit, taken.conn().prep(fresh)).await;
        let stmt = match result {
            Ok(Ok(stmt)) => stmt,
            Ok(Err(e)) => {
                let e = BackendError::from_mysql(e, &s, &a);
                let fatal = e.is_fatal();
                reply.error(&e.into()).await?;
                return self.keep_or_drop(&shard, taken, fatal, reply);
            }
            Err(_) => {
                reply.error(&BackendError::Timeout { shard: s, addr: a, timeout_ms: limit.as_millis() as u64 }.into()).await?;
                return self.keep_or_drop(&shard, taken, true, reply);
            }
        };
        let id = self.next_stmt_id;
        self.next_stmt_id = self.next_stmt_id.wrapping_add(1).max(1);
        self.prepared.insert(id, Prepared { sql: Arc::from(sql), classified, parsed });
        let params: Vec<_> = stmt.params().to_vec();
        let columns = stmt.columns();
        // The backend statement only answered this prepare: closing it (and dropping it from
        // the connection's cache) means a later prepare of the same text describes the table
        // as it is then, under the session's character set, and nothing leaks on the backend.
        // Executions prepare on the connection they run on.
        let closed = taken.conn().close(stmt).await.is_ok();
        let status = self.state.client_status();
        let r = reply.prepared(id, &params, &columns, 0, status).await;
        self.keep_or_drop(&shard, taken, !closed, reply)?;
        if !self.state.in_transaction() {
            self.conns.untag_idle();
        }
        r
    }

    async fn on_execute(&mut self, stmt_id: u32, params: Vec<Value>, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let Some(p) = self.prepared.get(&stmt_id) else {
            return reply.error(&ClientError::unknown_statement(stmt_id, "mysqld_stmt_execute")).await;
        };
        let (sql, classified, parsed) = (p.sql.clone(), p.classified.clone(), p.parsed.clone());
        if let Some(e) = self.not_serving() {
            return reply.error(&e).await;
        }
        if let Some(tx) = classified.tx.clone() {
            // BEGIN/COMMIT/ROLLBACK prepared (as sysbench sends them) are transaction control too.
            return self.tx_control(&tx, &sql, reply).await;
        }
        if self.commits_first(&classified) {
            if let Err(e) = self.commit_implicitly().await {
                return reply.error(&e).await;
            }
        }
        let classified = with_bound_sets(classified, &params);
        let owned = sql.clone();
        let text = String::from_utf8_lossy(&owned);
        let bound = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        self.activity.begin("Execute", Some(&text));
        let backend_sql = keyed_by_session_sets(sql, self.state.sync().sets_hash);
        let r = self.dispatch(&text, Some(parsed), &classified, Request::Binary(backend_sql, bound), reply).await;
        self.activity.end(self.state.db.as_deref());
        r
    }

    async fn on_close_statement(&mut self, stmt_id: u32) {
        self.prepared.remove(&stmt_id);
    }

    async fn on_init_db(&mut self, db: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.init_db(db, reply).await
    }

    async fn on_ping(&mut self, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        reply.ok(&OkInfo::default(), self.state.client_status()).await
    }

    async fn on_field_list(&mut self, table: &str, wildcard: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.field_list(table, wildcard, reply).await
    }

    async fn on_refresh(&mut self, flags: u8, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.refresh(flags, reply).await
    }

    async fn on_statistics(&mut self, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.statistics(reply).await
    }

    async fn on_reset_connection(&mut self, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.conns.release_all().await;
        self.prepared.clear();
        self.tx_topology = None;
        let db = self.state.db.clone();
        let user = self.state.user.clone();
        self.state = SessionState::new(&user, 45, self.shared.next_session_id());
        self.state.set_connection_id(self.connection_id);
        if let Some(db) = db {
            self.state.set_db(db);
        }
        reply.ok(&OkInfo::default(), self.state.client_status()).await
    }

    async fn on_change_user(&mut self, login: &Login, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.start(login, reply).await
    }

    fn status(&self) -> StatusFlags {
        self.state.client_status()
    }

    fn idle_timeout(&self) -> Option<std::time::Duration> {
        self.state.wait_timeout.map(std::time::Duration::from_secs)
    }

    fn idle_release_after(&self) -> Option<std::time::Duration> {
        // Called between commands: the pin gauge follows what the session keeps now.
        self.pins.set(self.conns.any_pinned().and(self.state.pin_reason()));
        self.conns.holds().then_some(HOLD_WHILE_BUSY)
    }

    fn must_close(&mut self) -> bool {
        if !self.conns.take_lost_pinned() {
            return false;
        }
        tracing::warn!("a connection holding this session's transaction or temporary tables was lost before a statement reached it; closing the client connection");
        // Whatever the lost connection held is gone; autocommit stays as set.
        self.state.status &= mysql_common::constants::StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        true
    }

    async fn on_idle(&mut self) {
        self.conns.release_held();
    }

    async fn on_close(&mut self) {
        self.conns.release_all().await;
    }
}

/// The text a backend connection prepares and caches for an execution. MariaDB with cached
/// metadata (which mysql_async negotiates) does not resend a statement's column definitions
/// after the session's character set changed, so a statement prepared under other SETs
/// would answer with their column character sets (found by node mysql2's
/// test-charset-results): a leading comment naming the session's SETs keeps statements of
/// different SETs apart in the connection's cache.
fn keyed_by_session_sets(sql: Arc<[u8]>, sets_hash: u64) -> Arc<[u8]> {
    if sets_hash == 0 {
        return sql;
    }
    let mut keyed = format!("/*sg{sets_hash:x}*/ ").into_bytes();
    keyed.extend_from_slice(&sql);
    Arc::from(keyed)
}

/// A prepared `SET ... = ?` is replayed on the session's other connections as text: with
/// its parameters written in as literals (found by node mysql2's
/// `execute('set character_set_results = ?', [cs])`, whose later values were lost). A value
/// no literal can carry keeps the session on its connection instead.
fn with_bound_sets(mut classified: Classified, params: &[Value]) -> Classified {
    if params.is_empty() || !classified.effects.iter().any(|e| matches!(e, classify::Effect::Set(_))) {
        return classified;
    }
    let literals: Option<Vec<String>> = params.iter().map(router::sql_literal).collect();
    for e in classified.effects.iter_mut() {
        if let classify::Effect::Set(text) = e {
            *e = match literals.as_ref().and_then(|l| sqlprep::substitute(text, l).ok()) {
                Some(bound) => classify::Effect::Set(bound),
                None => classify::Effect::Sticky("a prepared SET with parameters that cannot be replayed"),
            };
        }
    }
    classified
}

impl Session {
    /// A COM_QUERY: classified, then run (see `run_text`). A multi-statement query with a
    /// statement the session answers itself (KILL, SHOW PROCESSLIST, LOAD DATA LOCAL,
    /// PREPARE / EXECUTE / DEALLOCATE) runs statement by statement, each answer saying more
    /// results follow but the last, and stops at the first error, as the server does.
    async fn query(&mut self, text: &str, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let classified = classify(text);
        if classified.statements() > 1 && !reply.multi_statements() {
            let e = ClientError::multi_statements_off();
            return reply.error(&e).await;
        }
        let own = classified.kill_in_multi || classified.processlist_in_multi || classified.local_infile_in_multi || classified.sql_prep;
        if classified.statements() > 1 && own {
            let statements = split::split(text);
            let last = statements.len().saturating_sub(1);
            for (i, stmt) in statements.into_iter().enumerate() {
                reply.set_chained(i < last);
                let one = classify(stmt);
                if i < last && one.kill.as_ref().is_some_and(|k| k.query_only && k.target == classify::KillTarget::Own) {
                    // As MariaDB: killing one's own query interrupts the rest of it.
                    reply.error(&ClientError::query_interrupted()).await?;
                    break;
                }
                self.query_one(stmt, one, stmt.as_bytes(), reply).await?;
                if reply.error_code().is_some() {
                    break;
                }
            }
            reply.set_chained(false);
            return Ok(());
        }
        self.query_one(text, classified, sql, reply).await
    }

    /// One query's statements (one, or several the backend runs as one query).
    async fn query_one(&mut self, text: &str, classified: Classified, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if let Some(e) = self.not_serving() {
            return reply.error(&e).await;
        }
        if classified.sql_prep {
            if classified.statements() > 1 {
                return reply.error(&ClientError::not_supported("PREPARE, EXECUTE or DEALLOCATE PREPARE in a multi-statement query; send it alone")).await;
            }
            return self.sql_prep(text, reply).await;
        }
        self.run_text(text, classified, Request::Text(Arc::from(sql)), reply).await
    }

    /// Whether the statement commits an open transaction before it runs: DDL and the like
    /// always, `SET autocommit = 1` only when autocommit is off (as on MariaDB).
    fn commits_first(&self, classified: &Classified) -> bool {
        classified.implicit_commit || (classified.enables_autocommit && !self.state.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT))
    }

    /// Runs a text statement (a query, or an EXECUTEd prepared text): transaction control,
    /// the implicit commit of DDL and the like, then routing.
    async fn run_text(&mut self, text: &str, classified: Classified, req: Request, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if let Some(tx) = classified.tx.clone() {
            return self.tx_control(&tx, text.as_bytes(), reply).await;
        }
        if let Some(k) = &classified.kill {
            return self.kill(k, reply).await;
        }
        if classified.kill_in_multi {
            return reply.error(&ClientError::not_supported("KILL in a multi-statement query; send it alone")).await;
        }
        if let Some(full) = classified.processlist {
            return self.processlist(full, reply).await;
        }
        if classified.processlist_in_multi {
            return reply.error(&ClientError::not_supported("SHOW PROCESSLIST in a multi-statement query; send it alone")).await;
        }
        if classified.local_infile.is_some() && !reply.local_files() {
            // As MariaDB: the client did not offer to send files; nothing reaches a backend.
            return reply.error(&ClientError::local_infile_disabled()).await;
        }
        if classified.local_infile_in_multi {
            return reply.error(&ClientError::not_supported("LOAD DATA LOCAL INFILE in a multi-statement query; send it alone")).await;
        }
        if self.commits_first(&classified) {
            if let Err(e) = self.commit_implicitly().await {
                return reply.error(&e).await;
            }
        }
        self.dispatch(text, None, &classified, req, reply).await
    }

    /// Routes and runs one statement: routed with the session's snapshot, settled against
    /// the current version (held while its slots move), run; routed again when the topology
    /// changed before anything was sent.
    async fn dispatch(&mut self, text: &str, parsed: Option<Result<Arc<Parsed>, String>>, classified: &Classified, req: Request, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        const MAX_ROUNDS: usize = 64;
        // Announced while it runs: the deadlock detector looks at statements that run long.
        let _running = self.shared.backends.waiting().enter(self.conns.owner);
        let params: &[Value] = match &req {
            Request::Binary(_, Params::Positional(v)) => v,
            _ => &[],
        };
        for _ in 0..MAX_ROUNDS {
            let topo = self.topology();
            let parsed = match &parsed {
                Some(p) => p.clone(),
                None => self.parse(text, &topo),
            };
            let route = match self.route(text, &parsed, &topo, params) {
                Ok(r) => r,
                Err(e) => return reply.error(&e).await,
            };
            let stmt = hold::Stmt { text, parsed: &parsed, params };
            match self.settle(&route, &topo, stmt).await {
                hold::Settled::Go => {}
                hold::Settled::Again => continue,
                hold::Settled::Fail(e) => {
                    reply.error(&e).await?;
                    self.after_statement(reply.error_code()).await;
                    return Ok(());
                }
            }
            if self.execute(route, &req, classified, &topo, reply).await? == exec::Step::Reroute {
                continue;
            }
            self.after_statement(reply.error_code()).await;
            return Ok(());
        }
        let e = ClientError::topology_kept_changing();
        reply.error(&e).await
    }

    /// After a statement that did not go through `exec` (prepare): keep the connection only
    /// if the session must, drop it if it broke.
    fn keep_or_drop(&mut self, shard: &str, conn: crate::backend::PooledConn, broken: bool, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if broken && self.state.needs_pin() {
            // The transaction or connection-bound state died with the backend connection.
            reply.close_after();
        }
        self.return_conn(shard, conn, broken);
        Ok(())
    }
}
