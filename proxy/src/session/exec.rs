//! Running a routed statement: on one shard (streamed as is) or on several (merged or
//! summed), inside the session's transaction when one is open.
//!
//! Contract: the route decides where; this file only takes connections, runs, answers and
//! decides what stays pinned. It never reads the SQL text. Each step answers the client
//! (result or error) and returns `Step::Done`, or answers nothing and returns
//! `Step::Reroute` when a newer topology was published before anything was sent.

use super::classify::Classified;
use mysql_async::prelude::Queryable;
use super::forward::{forward, Outcome, Request};
use super::scatter;
use super::Session;
use crate::error::ClientError;
use crate::frontend::{Reply, StreamError};
use crate::router::{MergePlan, Route, StatementKind, Target};
use slotgate_shared::Topology;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Metric labels of a route.
fn labels(route: &Route) -> (&'static str, &'static str) {
    let r = match &route.target {
        Target::Single { .. } => "single",
        Target::Multi { .. } | Target::Split { .. } => "multi",
        Target::Scatter { .. } | Target::ScatterWrite { .. } => "scatter",
        Target::Broadcast { .. } => "broadcast",
        Target::Home => "home",
    };
    let k = match route.kind {
        StatementKind::Read => "read",
        StatementKind::Write => "write",
        StatementKind::Ddl => "ddl",
        StatementKind::Session => "session",
    };
    (r, k)
}

/// How a step of a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The client has its answer.
    Done,
    /// Nothing was sent: route the statement again with the newer topology.
    Reroute,
}

fn shard_id(topo: &Topology, idx: usize) -> String {
    topo.shards.get(idx).map(|s| s.id.clone()).unwrap_or_else(|| topo.shards[topo.home_index()].id.clone())
}

impl Session {
    pub(super) async fn execute(&mut self, route: Route, req: &Request, classified: &Classified, topo: &Topology, reply: &mut Reply<'_>) -> Result<Step, StreamError> {
        let (r, k) = labels(&route);
        if !classified.assigned_vars().is_empty() && !matches!(route.target, Target::Home | Target::Single { .. }) {
            self.shared.metrics.routing().refused("user_variable_over_shards");
            return reply.error(&ClientError::vars_over_shards()).await.map(|_| Step::Done);
        }
        self.shared.metrics.routing().routed(r, k);
        let ids = |v: &[usize]| v.iter().map(|i| shard_id(topo, *i)).collect::<Vec<_>>();
        match route.target {
            // Statements that touch no table run where the session already is.
            Target::Home if route.kind == StatementKind::Session => {
                let shard = self.session_shard(topo).await;
                self.run_single(&shard, req, classified, classified.read_only, reply).await
            }
            Target::Home => self.run_single(&shard_id(topo, topo.home_index()), req, classified, classified.read_only, reply).await,
            Target::Single { shard } => {
                self.last_written = None;
                let step = self.run_single(&shard_id(topo, shard), req, classified, classified.read_only, reply).await?;
                if let (Some(slot), Some(rows)) = (route.slot, self.last_written.take()) {
                    self.shared.metrics.slots().record(slot, rows);
                }
                Ok(step)
            }
            Target::Multi { ref shards, ref merge, ref sql } | Target::Scatter { ref shards, ref merge, ref sql } if route.kind == StatementKind::Read => {
                let parts = per_shard(&route, shards, topo, req, sql);
                self.run_select(parts, matches!(req, Request::Binary(..)), merge.clone(), reply).await
            }
            Target::Multi { ref shards, ref sql, .. } | Target::Scatter { ref shards, ref sql, .. } => {
                let parts = per_shard(&route, shards, topo, req, sql);
                self.run_write(parts, true, reply).await
            }
            Target::ScatterWrite { ref shards } => {
                let parts = per_shard(&route, shards, topo, req, &None);
                self.run_write(parts, true, reply).await
            }
            Target::Broadcast { shards } => {
                let parts = ids(&shards).into_iter().map(|s| (s, req.clone())).collect();
                self.run_write(parts, false, reply).await
            }
            Target::Split { parts } => {
                let parts = parts.into_iter().map(|(i, sql)| (shard_id(topo, i), Request::Text(Arc::from(sql.into_bytes())))).collect();
                self.run_write(parts, true, reply).await
            }
        }
    }

    /// Where a statement that touches no table runs: a shard whose connection holds the
    /// open transaction (so `@@in_transaction` and the like answer for the session), else home
    /// when the session holds it or nothing, else a shard the session holds.
    pub(super) async fn session_shard(&mut self, topo: &Topology) -> String {
        if let Some(s) = self.conns.in_transaction_shard(self.state.in_transaction()).await {
            return s;
        }
        let home = shard_id(topo, topo.home_index());
        if self.conns.pinned_shards().contains(&home) {
            return home;
        }
        self.conns.any_pinned().unwrap_or(home)
    }

    /// Checks `transaction_mode` before a statement reaches `shards` inside a transaction.
    fn admit(&mut self, shards: &[String]) -> Result<(), ClientError> {
        if !self.state.in_transaction() {
            return Ok(());
        }
        let mut all: BTreeSet<String> = self.conns.pinned_shards().into_iter().collect();
        all.extend(shards.iter().cloned());
        if all.len() <= 1 {
            return Ok(());
        }
        if self.shared.transaction_mode == crate::config::TransactionMode::Single {
            self.shared.metrics.routing().refused("single_shard_transaction");
            let held = self.conns.pinned_shards().join(", ");
            return Err(ClientError::single_shard_transaction(&held, &shards.join(", ")));
        }
        if !self.state.tx_multi_shard {
            self.state.tx_multi_shard = true;
            self.shared.metrics.routing().multi_shard_transactions.increment(1);
        }
        Ok(())
    }

    /// One shard: the statement streams through unchanged, with one retry when a pooled
    /// connection was dead before the statement reached it.
    pub(super) async fn run_single(&mut self, shard: &str, req: &Request, classified: &Classified, idempotent: bool, reply: &mut Reply<'_>) -> Result<Step, StreamError> {
        if let Err(e) = self.admit(&[shard.to_string()]) {
            return reply.error(&e).await.map(|_| Step::Done);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let taken = match self.conns.take(shard, &mut self.state, classified.reads_last_insert_id).await {
                Ok(t) => t,
                Err(e) => return reply.error(&e).await.map(|_| Step::Done),
            };
            let mut conn = taken.conn;
            if self.version_moved() {
                // Nothing was sent yet: route the statement again with the new version.
                self.give_back(vec![(shard.to_string(), Some(conn))]);
                return Ok(Step::Reroute);
            }
            let started = std::time::Instant::now();
            let outcome = match forward(&mut conn, req, classified.local_infile.as_deref(), idempotent, self.state.client_status(), reply).await {
                Ok(o) => o,
                Err(e) => {
                    // The client went away mid-answer: the backend connection is mid-result.
                    conn.discard();
                    return Err(e);
                }
            };
            conn.observe(started.elapsed());
            // A LOAD DATA LOCAL file was already read from the client: it cannot be sent twice.
            let retry = outcome.retryable || outcome.retryable_if_idempotent;
            if retry || outcome.errored || outcome.broken {
                reply.write_deferred(outcome.status).await?;
            }
            if retry && taken.fresh && attempt == 1 && classified.local_infile.is_none() {
                self.conns.backends().primary(shard).inspect(|p| p.retried());
                conn.discard();
                continue;
            }
            if retry {
                conn.discard();
                let e = ClientError::lost_before_sending(shard);
                if self.state.needs_pin() {
                    reply.close_after();
                }
                // Whatever the lost connection's transaction held is gone; autocommit stays as set.
                self.state.status &= mysql_common::constants::StatusFlags::SERVER_STATUS_AUTOCOMMIT;
                return reply.error(&e).await.map(|_| Step::Done);
            }
            self.last_written = (!outcome.errored && !outcome.broken).then_some(outcome.affected_rows);
            let (status, deferred) = (outcome.status, !(outcome.errored || outcome.broken));
            self.finish(shard, conn, outcome, classified, reply).await?;
            if deferred {
                reply.write_deferred(status).await?;
            }
            return Ok(Step::Done);
        }
    }

    pub(super) async fn run_home(&mut self, req: &Request, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.run_unrouted(req, &Classified::default(), false, reply).await
    }

    /// A statement that touches no table (USE, SAVEPOINT outside a transaction), where the
    /// session already is; again if a new version was published before it was sent.
    pub(super) async fn run_unrouted(&mut self, req: &Request, classified: &Classified, idempotent: bool, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        loop {
            self.conns.version = self.shared.topology.version();
            let topo = self.topology();
            let shard = self.session_shard(&topo).await;
            if self.run_single(&shard, req, classified, idempotent, reply).await? == Step::Done {
                return Ok(());
            }
        }
    }

    async fn finish(&mut self, shard: &str, mut conn: crate::backend::PooledConn, outcome: Outcome, classified: &Classified, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if outcome.broken {
            conn.discard();
            if self.state.needs_pin() {
                // The transaction or connection-bound state died with the backend connection;
                // like a lost server connection, the client must reconnect.
                reply.close_after();
            }
            // Whatever the lost connection's transaction held is gone; autocommit stays as set.
            self.state.status &= mysql_common::constants::StatusFlags::SERVER_STATUS_AUTOCOMMIT;
            return Ok(());
        }
        if outcome.errored {
            if classified.statements() > 1 && classified.effects.iter().any(|e| *e != super::classify::Effect::None) {
                // Part of a multi-statement ran; which SETs took effect is unknown: keep it.
                self.state.sticky = Some("multi-statement with session effects failed midway");
            }
        } else {
            self.state.apply(&classified.effects);
            self.read_back_vars(&mut conn, classified).await;
            self.read_back_wait_timeout(&mut conn, classified).await;
            // An autocommit write logged a GTID (inside a transaction, COMMIT logs it).
            let in_tx = self.state.in_tx || outcome.status.is_some_and(|s| s.contains(mysql_common::constants::StatusFlags::SERVER_STATUS_IN_TRANS));
            let wrote = !classified.read_only && !in_tx && (outcome.affected_rows > 0 || classified.implicit_commit);
            self.report_changes(&mut conn, classified, wrote, reply).await;
            conn.note_state(self.state.sync());
            if let Some(status) = outcome.status {
                self.state.status = status;
                let open = status.contains(mysql_common::constants::StatusFlags::SERVER_STATUS_IN_TRANS);
                if !open && !self.state.in_tx && self.state.savepoints.is_empty() && self.conns.any_pinned().is_none() {
                    // Autocommit off, yet the statement opened no transaction (no table, DDL,
                    // SET): the only connection the session used says so; nothing to keep.
                    // Not with savepoints: they live on the connection without IN_TRANS
                    // (found by the differential tester: a savepoint outlived COMMIT).
                    self.state.implicit_tx = false;
                }
            }
            if let Some(id) = outcome.last_insert_id.filter(|id| *id != 0) {
                self.state.last_insert_id = id;
            }
        }
        if self.state.needs_pin() {
            self.conns.keep(shard, conn);
        } else {
            self.conns.hold(shard, conn);
        }
        Ok(())
    }

    /// After a statement that may have assigned user variables: their values, read back
    /// from the connection that ran it, become part of the session's state (replayed on its
    /// other connections). Values that cannot be read back bind the session to this one.
    async fn read_back_vars(&mut self, conn: &mut crate::backend::PooledConn, classified: &Classified) {
        let names = classified.assigned_vars();
        if names.is_empty() {
            return;
        }
        match super::vars::read_back(conn, &names).await {
            Ok(values) => self.state.set_vars(values),
            Err(e) => {
                tracing::warn!(error = %e, "reading user variables back failed; the session keeps its connection");
                self.state.sticky = Some("user variables that could not be read back");
            }
        }
    }

    /// After a SET that may have changed `wait_timeout`: its value now, which the frontend
    /// enforces on the client connection (the backends' own idle limit only closes pooled
    /// connections, which the pool replaces).
    async fn read_back_wait_timeout(&mut self, conn: &mut crate::backend::PooledConn, classified: &Classified) {
        let touches = classified.effects.iter().any(|e| matches!(e, super::classify::Effect::Set(t) if t.to_ascii_lowercase().contains("wait_timeout")));
        if !touches {
            return;
        }
        let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
        let limit = conn.query_timeout();
        let read = crate::backend::error::bounded(limit, (&shard, &addr), conn.conn().query_first::<u64, _>("SELECT @@session.wait_timeout")).await;
        match read {
            Ok(Some(secs)) => self.state.wait_timeout = Some(secs),
            Ok(None) => {}
            Err((e, _)) => tracing::warn!(error = %e, "reading wait_timeout back failed; the client's idle limit is unchanged"),
        }
    }

    /// For a client that tracks session state: what the statement changed, read back from
    /// the connection that ran it, for the OK packet to report (see `track`).
    async fn report_changes(&mut self, conn: &mut crate::backend::PooledConn, classified: &Classified, wrote: bool, reply: &mut Reply<'_>) {
        if !reply.tracks_session() {
            return;
        }
        let mut changes = super::track::Changes::of(&classified.effects);
        changes.wrote = wrote;
        if changes.is_empty() {
            return;
        }
        let names = self.state.track.to_read(&changes);
        let mut values = Vec::new();
        if !names.is_empty() {
            let list: Vec<String> = names.iter().map(|n| format!("'{}'", n.to_ascii_uppercase())).collect();
            let sql = format!("SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME IN ({})", list.join(", "));
            let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
            let limit = conn.query_timeout();
            match crate::backend::error::bounded(limit, (&shard, &addr), conn.conn().query::<(String, Option<String>), _>(sql)).await {
                Ok(rows) => values = rows.into_iter().map(|(n, v)| (n, v.unwrap_or_default())).collect(),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "reading tracked session variables back failed; the change is not reported");
                    return;
                }
            }
        }
        let report = self.state.track.report(&changes, &values);
        reply.track_state(report);
    }

    async fn take_many(&mut self, shards: &[String]) -> Result<Vec<(String, crate::backend::PooledConn)>, ClientError> {
        self.admit(shards)?;
        let mut conns = Vec::with_capacity(shards.len());
        for s in shards {
            match self.conns.take(s, &mut self.state, false).await {
                Ok(t) => conns.push((s.clone(), t.conn)),
                Err(e) => {
                    self.give_back(conns.into_iter().map(|(s, c)| (s, Some(c))).collect());
                    return Err(e);
                }
            }
        }
        Ok(conns)
    }

    fn give_back(&mut self, returned: scatter::Returned) {
        let pin = self.state.needs_pin();
        for (s, c) in returned {
            if let (Some(c), true) = (c, pin) {
                self.conns.keep(&s, c);
            }
        }
    }

    /// The connections, or the step that ended the statement (an error answered, or a
    /// reroute; see `run_single`).
    async fn take_checked(&mut self, shards: &[String], reply: &mut Reply<'_>) -> Result<Result<Vec<(String, crate::backend::PooledConn)>, Step>, StreamError> {
        let conns = match self.take_many(shards).await {
            Ok(c) => c,
            Err(e) => {
                reply.error(&e).await?;
                return Ok(Err(Step::Done));
            }
        };
        if self.version_moved() {
            self.give_back(conns.into_iter().map(|(s, c)| (s, Some(c))).collect());
            return Ok(Err(Step::Reroute));
        }
        Ok(Ok(conns))
    }

    async fn run_select(&mut self, parts: Vec<(String, Request)>, binary: bool, plan: MergePlan, reply: &mut Reply<'_>) -> Result<Step, StreamError> {
        let shards: Vec<String> = parts.iter().map(|(s, _)| s.clone()).collect();
        let conns = match self.take_checked(&shards, reply).await? {
            Ok(c) => c,
            Err(step) => return Ok(step),
        };
        let with_req = conns.into_iter().zip(parts).map(|((s, c), (_, r))| (s, c, r)).collect();
        let returned = scatter::select(with_req, binary, plan, self.state.client_status(), reply).await?;
        self.give_back(returned);
        Ok(Step::Done)
    }

    async fn run_write(&mut self, parts: Vec<(String, Request)>, atomic: bool, reply: &mut Reply<'_>) -> Result<Step, StreamError> {
        let shards: Vec<String> = parts.iter().map(|(s, _)| s.clone()).collect();
        let conns = match self.take_checked(&shards, reply).await? {
            Ok(c) => c,
            Err(step) => return Ok(step),
        };
        let with_req = conns.into_iter().zip(parts).map(|((s, c), (_, r))| (s, c, r)).collect();
        // Inside the client's transaction the statement is part of it (and undone on every
        // shard if one fails); outside, each shard wraps it in its own so that the shards
        // commit together or not at all.
        let wrap = match (self.state.in_transaction(), shards.len() > 1, atomic) {
            (true, true, _) => scatter::Wrap::Savepoint,
            (true, false, _) | (false, _, false) => scatter::Wrap::None,
            (false, _, true) => scatter::Wrap::Own,
        };
        let returned = scatter::write(with_req, wrap, self.state.client_status(), reply, &self.shared.metrics.routing().partial_commits).await?;
        self.give_back(returned);
        Ok(Step::Done)
    }
}

/// The request for each shard of a multi-shard route: the route's text for that shard (a
/// migration's rows hidden), else the rewritten text, else the client's statement.
fn per_shard(route: &Route, shards: &[usize], topo: &Topology, req: &Request, sql: &Option<String>) -> Vec<(String, Request)> {
    let shared = rewrite(req, sql.as_deref());
    shards.iter().map(|&i| (shard_id(topo, i), route.text_for(i).map_or_else(|| shared.clone(), |t| rewrite(req, Some(t))))).collect()
}

/// `req` with its text replaced by a self-contained one (parameters inlined), in the same
/// protocol so that the client gets its rows in the encoding it asked for.
fn rewrite(req: &Request, sql: Option<&str>) -> Request {
    match (req, sql) {
        (req, None) => req.clone(),
        (Request::Text(_), Some(s)) => Request::Text(Arc::from(s.as_bytes())),
        (Request::Binary(..), Some(s)) => Request::Binary(Arc::from(s.as_bytes()), mysql_async::Params::Empty),
    }
}
