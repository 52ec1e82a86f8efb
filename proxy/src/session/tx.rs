//! Transaction control across shards: BEGIN opens a transaction lazily (each shard joins with
//! the same BEGIN at its first statement), COMMIT and ROLLBACK go to every shard the
//! transaction reached, one by one; SAVEPOINTs go to every shard and are replayed on shards
//! that join later.
//!
//! Contract: answers exactly once; a COMMIT that fails after other shards committed is
//! reported as a partial commit naming them; the session's bookkeeping ends with the
//! transaction either way.

use super::classify::TxControl;
use super::forward::Request;
use super::scatter::partial_commit;
use super::Session;
use crate::backend::error::bounded;
use crate::backend::BackendError;
use crate::frontend::{OkInfo, Reply, StreamError};
use mysql_async::prelude::Queryable;
use std::sync::Arc;

impl Session {
    pub(super) async fn tx_control(&mut self, tx: &TxControl, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let text = String::from_utf8_lossy(sql).trim().to_string();
        match tx {
            TxControl::Begin(begin) => {
                // Like MariaDB, BEGIN inside a transaction commits it first.
                if self.conns.any_pinned().is_some() && self.state.in_transaction() {
                    if let Err(e) = self.finish_all("COMMIT").await {
                        return reply.error(&e).await;
                    }
                }
                self.state.end_transaction();
                self.state.in_tx = true;
                self.state.tx_begin = Some(begin.clone());
                self.tx_topology = Some(self.shared.topology.load());
                reply.ok(&OkInfo::default(), self.state.client_status()).await
            }
            TxControl::Commit | TxControl::Rollback => {
                let r = self.finish_all(&text).await;
                self.state.end_transaction();
                self.tx_topology = None;
                self.unpin_if_free().await;
                self.conns.untag_idle();
                match r {
                    Ok(()) => reply.ok(&OkInfo::default(), self.state.client_status()).await,
                    Err(e) => reply.error(&e).await,
                }
            }
            TxControl::Savepoint(sp) => {
                if !self.state.in_transaction() {
                    // Outside a transaction a savepoint is forgotten at once, as on MariaDB.
                    return self.run_home(&Request::Text(Arc::from(sql)), reply).await;
                }
                match self.on_all_pinned(&text).await {
                    Ok(warnings) => {
                        self.state.savepoints.push(sp.clone());
                        reply.ok(&OkInfo { warnings, ..OkInfo::default() }, self.state.client_status()).await
                    }
                    Err(e) => reply.error(&e).await,
                }
            }
            TxControl::OnAll => {
                // Outside a transaction, savepoints live where SAVEPOINT ran: home.
                if self.conns.any_pinned().is_none() || !self.state.in_transaction() {
                    return self.run_home(&Request::Text(Arc::from(sql)), reply).await;
                }
                match self.on_all_pinned(&text).await {
                    Ok(warnings) => reply.ok(&OkInfo { warnings, ..OkInfo::default() }, self.state.client_status()).await,
                    Err(e) => reply.error(&e).await,
                }
            }
        }
    }

    /// After a statement: a deadlock (ER_LOCK_DEADLOCK) rolled the transaction back on the
    /// shard that saw it; as on one MariaDB, the whole transaction ends, so its other shards
    /// are rolled back too and a later COMMIT commits nothing half-way.
    pub(super) async fn after_statement(&mut self, error_code: Option<u16>) {
        const ER_LOCK_DEADLOCK: u16 = 1213;
        if error_code == Some(ER_LOCK_DEADLOCK) && self.state.in_transaction() {
            let _ = self.finish_all("ROLLBACK").await;
            self.state.end_transaction();
            self.tx_topology = None;
            self.unpin_if_free().await;
        }
        if !self.state.in_transaction() {
            self.conns.untag_idle();
        }
        if !self.state.needs_pin() {
            // e.g. autocommit turned back on: nothing binds the session to its connections.
            self.unpin_if_free().await;
        }
    }

    /// Before a statement that commits an open transaction on MariaDB (DDL, LOCK TABLES,
    /// `SET autocommit = 1`, ...): the transaction is committed on every shard it reached.
    pub(super) async fn commit_implicitly(&mut self) -> Result<(), crate::error::ClientError> {
        if !self.state.in_transaction() {
            return Ok(());
        }
        let r = self.finish_all("COMMIT").await;
        self.state.end_transaction();
        self.tx_topology = None;
        self.unpin_if_free().await;
        r
    }

    /// Runs `sql` on every pinned connection, each first brought to the session's state and
    /// joined to its transaction (as `Conns::take` does), keeping them pinned. Answers the
    /// warnings the shards reported, summed.
    async fn on_all_pinned(&mut self, sql: &str) -> Result<u16, crate::error::ClientError> {
        let mut result = Ok(0u16);
        for shard in self.conns.pinned_shards() {
            let r = match self.conns.take(&shard, &mut self.state, false).await {
                Ok(t) => self.run_kept(&shard, t.conn, sql).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            match r {
                Ok(w) => {
                    if let Ok(total) = &mut result {
                        *total = total.saturating_add(w);
                    }
                }
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// Answers the statement's warning count.
    async fn run_kept(&mut self, shard: &str, mut c: crate::backend::PooledConn, sql: &str) -> Result<u16, BackendError> {
        let (s, a) = (c.shard().to_string(), c.addr().to_string());
        let limit = c.query_timeout();
        let r = bounded(limit, (&s, &a), c.conn().query_drop(sql)).await.map_err(|(e, _)| e);
        let warnings = c.conn().get_warnings();
        match &r {
            Err(e) if e.is_fatal() => c.discard(),
            _ => self.conns.keep(shard, c),
        }
        r.map(|()| warnings)
    }

    /// COMMIT (or ROLLBACK) on every pinned connection, one by one.
    async fn finish_all(&mut self, sql: &str) -> Result<(), crate::error::ClientError> {
        // A cutover aborted part of the transaction: it is rolled back everywhere.
        let aborted = self.conns.aborted_shard();
        let sql = if aborted.is_some() { "ROLLBACK" } else { sql };
        let committing = !sql.to_ascii_uppercase().starts_with("ROLLBACK");
        let mut done: Vec<String> = Vec::new();
        let mut failure: Option<(String, BackendError)> = None;
        for (shard, c) in self.conns.take_all_pinned() {
            let stmt = if failure.is_some() { "ROLLBACK" } else { sql };
            match self.run_kept(&shard, c, stmt).await {
                Ok(_) if failure.is_none() => done.push(shard),
                Ok(_) => {}
                Err(e) => {
                    failure.get_or_insert((shard, e));
                }
            }
        }
        if let Some(shard) = aborted {
            return Err(BackendError::CutoverAborted { shard }.into());
        }
        match failure {
            None => Ok(()),
            Some((_, e)) if !committing || done.is_empty() => Err(e.into()),
            Some((shard, e)) => {
                self.shared.metrics.routing().partial_commits.increment(1);
                Err(partial_commit(&done, &shard, &e))
            }
        }
    }

    /// Returns pinned connections to the pool once nothing needs them.
    pub(super) async fn unpin_if_free(&mut self) {
        if self.state.needs_pin() {
            return;
        }
        for (_, c) in self.conns.take_all_pinned() {
            drop(c);
        }
    }
}
