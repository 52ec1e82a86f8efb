//! One client's session: its state, its prepared statements, and the backend connection it
//! holds while a transaction (or state only that connection can carry) is open.
//!
//! Contract: implements the frontend's `Handler`. Each statement takes a backend connection
//! (the pinned one, or one from the pool brought to the session's state), forwards the
//! statement, records what it changed, and keeps the connection only while it must.
//! For now every statement goes to the default shard; the router replaces that choice.

pub mod classify;
pub mod forward;
pub mod state;

use crate::backend::{quote_ident, Backends, NodePool, PooledConn};
use crate::error::{codes, ClientError, ErrorKind};
use crate::frontend::{Handler, Login, OkInfo, Reply, StreamError};
use classify::{classify, Classified};
use forward::{forward, Outcome, Request};
use mysql_async::prelude::Queryable;
use mysql_async::Params;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::value::Value;
use state::SessionState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

struct Prepared {
    sql: Arc<[u8]>,
    classified: Classified,
}

pub struct Session {
    backends: Backends,
    state: SessionState,
    pinned: Option<PooledConn>,
    prepared: HashMap<u32, Prepared>,
    next_stmt_id: u32,
    found_rows: bool,
}

impl Session {
    pub fn new(backends: Backends) -> Session {
        Session {
            backends,
            state: SessionState::new("", 45),
            pinned: None,
            prepared: HashMap::new(),
            next_stmt_id: 1,
            found_rows: false,
        }
    }

    fn pool(&self) -> NodePool {
        self.backends.default_pool().clone()
    }

    /// The pinned connection, or a pooled one brought to the session's state.
    async fn conn_for(&mut self, needs_last_insert_id: bool) -> Result<(PooledConn, bool), ClientError> {
        if let Some(c) = self.pinned.take() {
            return Ok((c, false));
        }
        let mut c = self.pool().acquire(self.found_rows).await?;
        if let Err(e) = c.sync(self.state.sync()).await {
            let fatal = e.is_fatal();
            if fatal {
                c.discard();
            } else {
                c.note_unknown_state();
            }
            return Err(e.into());
        }
        if needs_last_insert_id && self.state.last_insert_id != 0 {
            let sql = format!("DO LAST_INSERT_ID({})", self.state.last_insert_id);
            let (shard, addr) = (c.shard().to_string(), c.addr().to_string());
            if let Err(e) = c.conn().query_drop(sql).await {
                c.discard();
                return Err(crate::backend::BackendError::from_mysql(e, &shard, &addr).into());
            }
        }
        Ok((c, true))
    }

    /// Runs one request with a single retry when a pooled connection was dead before the
    /// statement reached the server; then records its effects and decides on pinning.
    async fn run(&mut self, req: &Request, classified: &Classified, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, fresh) = match self.conn_for(classified.reads_last_insert_id).await {
                Ok(x) => x,
                Err(e) => return reply.error(&e).await,
            };
            let outcome = match forward(&mut conn, req, classified.local_infile.as_deref(), self.state.client_status(), reply).await {
                Ok(o) => o,
                Err(e) => {
                    // The client went away mid-answer: the backend connection is mid-result.
                    conn.discard();
                    return Err(e);
                }
            };
            // A LOAD DATA LOCAL file was already read from the client: it cannot be sent twice.
            if outcome.retryable && fresh && attempt == 1 && classified.local_infile.is_none() {
                self.pool().retried();
                conn.discard();
                continue;
            }
            if outcome.retryable {
                conn.discard();
                let e = ClientError::new(
                    ErrorKind::BackendLost,
                    codes::CR_SERVER_LOST,
                    b"HY000",
                    format!("Lost connection to shard {} before the statement was sent; retry it", self.pool().shard()),
                );
                return self.after_broken(e, reply).await;
            }
            return self.finish(conn, outcome, classified, reply).await;
        }
    }

    async fn finish(&mut self, mut conn: PooledConn, outcome: Outcome, classified: &Classified, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if outcome.broken {
            conn.discard();
            let was_pinned = self.state.needs_pin();
            self.state.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
            if was_pinned {
                // The transaction or connection-bound state died with the backend connection;
                // like a lost server connection, the client must reconnect.
                reply.close_after();
            }
            return Ok(());
        }
        if outcome.errored {
            if classified.statements() > 1 && classified.effects.iter().any(|e| *e != classify::Effect::None) {
                // Part of a multi-statement ran; which SETs took effect is unknown: keep it.
                self.state.sticky = Some("multi-statement with session effects failed midway");
            }
        } else {
            self.state.apply(&classified.effects);
            conn.note_state(self.state.sync());
            if let Some(status) = outcome.status {
                self.state.status = status;
            }
            if let Some(id) = outcome.last_insert_id.filter(|id| *id != 0) {
                self.state.last_insert_id = id;
            }
        }
        if self.state.needs_pin() {
            self.pinned = Some(conn);
        }
        Ok(())
    }

    async fn after_broken(&mut self, e: ClientError, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if self.state.needs_pin() {
            reply.close_after();
        }
        self.state.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        reply.error(&e).await
    }

    /// Resets and returns the pinned connection (ends any open transaction on it).
    async fn release_pinned(&mut self) {
        if let Some(mut c) = self.pinned.take() {
            let ok = matches!(tokio::time::timeout(Duration::from_secs(5), c.conn().reset()).await, Ok(Ok(true)));
            if ok {
                c.note_state(&Default::default());
            } else {
                c.discard();
            }
        }
    }

    /// Fresh state for `login`; checks its default database on a backend.
    async fn start(&mut self, login: &Login, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.release_pinned().await;
        self.prepared.clear();
        self.found_rows = login.capabilities.contains(CapabilityFlags::CLIENT_FOUND_ROWS);
        self.state = SessionState::new(&login.user, login.collation);
        match &login.db {
            Some(db) => self.init_db(db, reply).await,
            None => reply.ok(&OkInfo::default(), self.state.client_status()).await,
        }
    }

    async fn init_db(&mut self, db: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let sql: Arc<[u8]> = format!("USE {}", quote_ident(db)).into_bytes().into();
        let classified = Classified { effects: vec![classify::Effect::Use(db.to_string())], reads_last_insert_id: false, local_infile: None };
        self.run(&Request::Text(sql), &classified, reply).await
    }
}


fn parse_error(message: &str) -> ClientError {
    ClientError::new(ErrorKind::Unsupported, codes::ER_PARSE_ERROR, b"42000", message)
}

impl Handler for Session {
    async fn on_connect(&mut self, login: &Login, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.start(login, reply).await
    }

    async fn on_query(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let classified = classify(&String::from_utf8_lossy(sql));
        if classified.statements() > 1 && !reply.multi_statements() {
            return reply
                .error(&parse_error(
                    "You have an error in your SQL syntax: several statements in one query, but multi-statements are off for this connection; send them one by one or enable CLIENT_MULTI_STATEMENTS",
                ))
                .await;
        }
        self.run(&Request::Text(Arc::from(sql)), &classified, reply).await
    }

    async fn on_prepare(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let classified = classify(&String::from_utf8_lossy(sql));
        let (mut conn, _) = match self.conn_for(false).await {
            Ok(x) => x,
            Err(e) => return reply.error(&e).await,
        };
        let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
        let limit = conn.query_timeout();
        let prep = conn.conn().prep(sql);
        let result = match limit {
            Some(d) => tokio::time::timeout(d, prep).await.map_err(|_| crate::backend::BackendError::Timeout {
                shard: shard.clone(),
                addr: addr.clone(),
                timeout_ms: d.as_millis() as u64,
            }),
            None => Ok(prep.await),
        };
        let stmt = match result {
            Ok(Ok(stmt)) => stmt,
            Ok(Err(e)) => {
                let e = crate::backend::BackendError::from_mysql(e, &shard, &addr);
                let fatal = e.is_fatal();
                reply.error(&e.into()).await?;
                return self.keep_or_drop(conn, fatal, reply);
            }
            Err(e) => {
                reply.error(&e.into()).await?;
                return self.keep_or_drop(conn, true, reply);
            }
        };
        let id = self.next_stmt_id;
        self.next_stmt_id = self.next_stmt_id.wrapping_add(1).max(1);
        self.prepared.insert(id, Prepared { sql: Arc::from(sql), classified });
        let params: Vec<_> = stmt.params().to_vec();
        let columns = stmt.columns();
        let status = self.state.client_status();
        let r = reply.prepared(id, &params, &columns, 0, status).await;
        self.keep_or_drop(conn, false, reply)?;
        r
    }

    async fn on_execute(&mut self, stmt_id: u32, params: Vec<Value>, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let Some(p) = self.prepared.get(&stmt_id) else {
            return reply.error(&ClientError::unknown_statement(stmt_id, "mysqld_stmt_execute")).await;
        };
        let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        let req = Request::Binary(p.sql.clone(), params);
        let classified = p.classified.clone();
        self.run(&req, &classified, reply).await
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

    async fn on_reset_connection(&mut self, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        self.release_pinned().await;
        self.prepared.clear();
        let db = self.state.db.clone();
        let collation = 45;
        let user = self.state.user.clone();
        self.state = SessionState::new(&user, collation);
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

    async fn on_close(&mut self) {
        self.release_pinned().await;
    }
}

impl Session {
    /// After a statement that did not go through `run` (prepare): keep the connection only
    /// if the session must, drop it if it broke.
    fn keep_or_drop(&mut self, conn: PooledConn, broken: bool, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        if broken {
            conn.discard();
            if self.state.needs_pin() {
                reply.close_after();
            }
        } else if self.state.needs_pin() {
            self.pinned = Some(conn);
        }
        Ok(())
    }
}
