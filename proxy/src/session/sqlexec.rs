//! SQL-level prepared statements run by the session: `PREPARE` keeps the text (checked by
//! the home shard, which knows every table), `EXECUTE` runs it with its placeholders
//! replaced by the USING values as literals (see `sqlprep`), as an ordinary statement routed
//! by those values; `DEALLOCATE PREPARE` forgets it.
//!
//! Contract: answers exactly once, with MariaDB's errors (1243 unknown name, 1210 wrong
//! argument count, 1064 from the check) and 1235 for forms it cannot run faithfully. No
//! backend connection ever holds a prepared statement of the client's.

use super::classify::classify;
use super::forward::Request;
use super::sqlprep::{self, Arg, Source, SqlPrep};
use super::state::MAX_SQL_PREPARED;
use super::Session;
use crate::error::ClientError;
use crate::frontend::{OkInfo, Reply, StreamError};
use mysql_async::prelude::Queryable;
use mysql_common::constants::StatusFlags;
use std::sync::Arc;

impl Session {
    /// Runs one PREPARE / EXECUTE / DEALLOCATE statement (`text` holds nothing else).
    pub(super) async fn sql_prep(&mut self, text: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let escapes = !self.state.status.contains(StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES);
        let parsed = match sqlprep::parse(text, escapes) {
            Some(Ok(p)) => p,
            Some(Err(why)) => return reply.error(&ClientError::not_supported(format!("this form of a prepared statement: {why}"))).await,
            None => return reply.error(&ClientError::not_supported("this prepared-statement command")).await,
        };
        match parsed {
            SqlPrep::Prepare { name, source } => {
                let body = match self.source_text(&source) {
                    Ok(b) => b,
                    Err(e) => return reply.error(&e).await,
                };
                // As on MariaDB, a failed PREPARE leaves the name unprepared.
                self.state.sql_prepared.remove(&name);
                if let Err(e) = self.check_preparable(&body).await {
                    return reply.error(&e).await;
                }
                if self.state.sql_prepared.len() >= MAX_SQL_PREPARED {
                    return reply.error(&ClientError::too_many_sql_prepared(MAX_SQL_PREPARED)).await;
                }
                self.state.sql_prepared.insert(name, body);
                let info = OkInfo { info: "Statement prepared".into(), ..OkInfo::default() };
                reply.ok(&info, self.state.client_status()).await
            }
            SqlPrep::Execute { name, args } => {
                let Some(body) = self.state.sql_prepared.get(&name).cloned() else {
                    return reply.error(&ClientError::unknown_sql_prepared(&name, "EXECUTE")).await;
                };
                self.execute_text(&body, &args, reply).await
            }
            SqlPrep::Immediate { source, args } => {
                let body = match self.source_text(&source) {
                    Ok(b) => b,
                    Err(e) => return reply.error(&e).await,
                };
                self.execute_text(&body, &args, reply).await
            }
            SqlPrep::Deallocate { name } => {
                if self.state.sql_prepared.remove(&name).is_none() {
                    return reply.error(&ClientError::unknown_sql_prepared(&name, "DEALLOCATE PREPARE")).await;
                }
                reply.ok(&OkInfo::default(), self.state.client_status()).await
            }
        }
    }

    /// The statement text of `PREPARE ... FROM 'text'` or `FROM @var`.
    fn source_text(&self, source: &Source) -> Result<String, ClientError> {
        match source {
            Source::Text(t) => Ok(t.clone()),
            Source::Var(v) => match self.state.var(v) {
                Some(value) => Ok(match &value.text {
                    Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    None => value.literal.clone(),
                }),
                None => Err(ClientError::syntax_near("NULL")),
            },
        }
    }

    /// Has the home shard prepare (and close) `body`, for MariaDB's own verdict on it.
    async fn check_preparable(&mut self, body: &str) -> Result<(), ClientError> {
        let inner = classify(body);
        if inner.sql_prep {
            return Err(ClientError::unsupported_ps());
        }
        let topo = self.topology();
        let home = topo.shards[topo.home_index()].id.clone();
        self.conns.version = self.shared.topology.version();
        let mut conn = self.conns.take(&home, &mut self.state, false).await?.conn;
        let (s, a) = (conn.shard().to_string(), conn.addr().to_string());
        let limit = conn.query_timeout();
        let checked = crate::backend::error::bounded(limit, (&s, &a), async {
            let stmt = conn.conn().prep(body).await?;
            conn.conn().close(stmt).await
        })
        .await;
        let (r, broken) = match checked {
            Ok(()) => (Ok(()), false),
            Err((e, _)) => {
                let fatal = e.is_fatal();
                (Err(ClientError::from(e)), fatal)
            }
        };
        self.return_conn(&home, conn, broken);
        r
    }

    /// Runs a prepared text with `args` as its placeholders' values.
    async fn execute_text(&mut self, body: &str, args: &[Arg], reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let values: Vec<String> = args
            .iter()
            .map(|a| match a {
                Arg::Var(v) => self.state.var(v).map(|v| v.literal.clone()).unwrap_or_else(|| "NULL".into()),
                Arg::Literal(l) => l.clone(),
            })
            .collect();
        let sql = match sqlprep::substitute(body, &values) {
            Ok(sql) => sql,
            Err(_) => return reply.error(&ClientError::wrong_execute_arguments()).await,
        };
        let classified = classify(&sql);
        if classified.sql_prep || classified.statements() > 1 {
            return reply.error(&ClientError::not_supported("this statement in a prepared statement")).await;
        }
        self.run_text(&sql, classified, Request::Text(Arc::from(sql.as_bytes())), reply).await
    }

    /// Keeps a connection used outside `exec` if the session must, drops it if it broke.
    pub(super) fn return_conn(&mut self, shard: &str, conn: crate::backend::PooledConn, broken: bool) {
        if broken {
            conn.discard();
        } else if self.state.needs_pin() || self.state.in_transaction() {
            self.conns.keep(shard, conn);
        }
    }
}
