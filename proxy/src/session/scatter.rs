//! Statements that run on several shards at once: SELECTs whose rows are merged, and writes
//! whose affected rows are summed (atomically, inside a transaction per shard, when the
//! client is not in one).
//!
//! Contract: takes the connections it is given and gives each back with whether it is still
//! usable; writes exactly one answer to the client. Rows stream through bounded channels, so
//! memory is bounded by what the merge must hold.

use super::forward::Request;
use crate::backend::error::bounded;
use crate::backend::{BackendError, PooledConn};
use crate::error::{codes, ClientError, ErrorKind};
use crate::frontend::{OkInfo, Reply, StreamError};
use crate::merge::{Merger, RowResult};
use crate::router::MergePlan;
use mysql_async::prelude::Queryable;
use mysql_async::QueryResult;
use mysql_async::prelude::Protocol;
use mysql_common::constants::StatusFlags;
use mysql_common::packets::Column;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A shard's connection after a multi-shard statement: `None` if it broke.
pub type Returned = Vec<(String, Option<PooledConn>)>;

/// Runs one SELECT per shard (each its own request, all in one protocol: `binary`) and
/// writes the merged result.
pub async fn select(
    conns: Vec<(String, PooledConn, Request)>,
    binary: bool,
    plan: MergePlan,
    status: StatusFlags,
    reply: &mut Reply<'_>,
) -> Result<Returned, StreamError> {
    let mut columns_rx = Vec::new();
    let mut rows_rx = Vec::new();
    let mut tasks = Vec::new();
    for (shard, conn, req) in conns {
        let (ctx, crx) = oneshot::channel();
        let (rtx, rrx) = mpsc::channel(64);
        columns_rx.push(crx);
        rows_rx.push(rrx);
        tasks.push(tokio::spawn(async move {
            let mut conn = conn;
            let ok = read_shard(&mut conn, req, ctx, rtx).await;
            (shard, if ok { Some(conn) } else { conn.discard(); None })
        }));
    }
    let mut columns: Option<Arc<[Column]>> = None;
    let mut first_error: Option<BackendError> = None;
    for rx in columns_rx {
        match rx.await {
            Ok(Ok(c)) => {
                columns.get_or_insert(c);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    let written = match (first_error, columns) {
        (Some(e), _) => {
            drop(rows_rx);
            reply.error(&e.into()).await
        }
        (None, None) => reply.ok(&OkInfo::default(), status).await,
        (None, Some(cols)) => write_merged(&cols, rows_rx, plan, binary, status, reply).await,
    };
    let mut returned = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            returned.push(r);
        }
    }
    written.map(|_| returned)
}

async fn write_merged(
    cols: &[Column],
    rows_rx: Vec<mpsc::Receiver<RowResult>>,
    plan: MergePlan,
    binary: bool,
    status: StatusFlags,
    reply: &mut Reply<'_>,
) -> Result<(), StreamError> {
    let mut merger = Merger::new(plan, cols, rows_rx);
    let visible: Vec<Column> = merger.visible_columns().to_vec();
    reply.columns(&visible, status).await?;
    loop {
        match merger.next().await {
            Ok(Some(row)) => {
                if binary {
                    reply.binary_row(&visible, &row).await?;
                } else {
                    reply.text_row(&row).await?;
                }
            }
            Ok(None) => break,
            Err(e) => return reply.error(&e.into()).await,
        }
    }
    // Dropping the merger drops the receivers: shards still sending stop being read.
    drop(merger);
    reply.end_rows(0, status).await
}

/// Reads one shard's result into the channels; false if the connection is not reusable.
async fn read_shard(
    conn: &mut PooledConn,
    req: Request,
    columns_tx: oneshot::Sender<Result<Arc<[Column]>, BackendError>>,
    rows_tx: mpsc::Sender<RowResult>,
) -> bool {
    let limit = conn.query_timeout();
    let started = Instant::now();
    let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
    let who = (shard.as_str(), addr.as_str());
    let result = match &req {
        Request::Text(sql) => bounded(limit, who, conn.conn().query_iter(&sql[..])).await.map(Either::Text),
        Request::Binary(sql, params) => {
            bounded(limit, who, conn.conn().exec_iter(Cow::Borrowed(&sql[..]), params.clone())).await.map(Either::Binary)
        }
    };
    let ok = match result {
        Err((e, _)) => {
            let fatal = e.is_fatal();
            let _ = columns_tx.send(Err(e));
            !fatal
        }
        Ok(Either::Text(r)) => pump(r, limit, columns_tx, rows_tx, who).await,
        Ok(Either::Binary(r)) => pump(r, limit, columns_tx, rows_tx, who).await,
    };
    conn.observe(started.elapsed());
    ok
}

enum Either<'a> {
    Text(QueryResult<'a, 'static, mysql_async::TextProtocol>),
    Binary(QueryResult<'a, 'static, mysql_async::BinaryProtocol>),
}

async fn pump<P: Protocol>(
    mut result: QueryResult<'_, 'static, P>,
    limit: Option<Duration>,
    columns_tx: oneshot::Sender<Result<Arc<[Column]>, BackendError>>,
    rows_tx: mpsc::Sender<RowResult>,
    who: (&str, &str),
) -> bool {
    let cols = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    let _ = columns_tx.send(Ok(cols));
    let mut listening = true;
    loop {
        match bounded(limit, who, result.next()).await {
            Ok(Some(row)) => {
                if listening && rows_tx.send(Ok(row.unwrap())).await.is_err() {
                    // The merge has all it needs (LIMIT): read the rest and drop it.
                    listening = false;
                }
            }
            Ok(None) => break,
            Err((e, _)) => {
                let fatal = e.is_fatal();
                let _ = rows_tx.send(Err(e)).await;
                return !fatal;
            }
        }
    }
    // A statement should not hold more result sets; drain any so the connection is clean.
    result.drop_result().await.is_ok()
}

/// What one shard answered to a write.
struct WriteDone {
    info: OkInfo,
}

async fn write_one(conn: &mut PooledConn, req: &Request) -> Result<WriteDone, BackendError> {
    let limit = conn.query_timeout();
    let started = Instant::now();
    let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
    let who = (shard.as_str(), addr.as_str());
    let r = match req {
        Request::Text(sql) => bounded(limit, who, conn.conn().query_drop(&sql[..])).await,
        Request::Binary(sql, params) => bounded(limit, who, conn.conn().exec_drop(Cow::Borrowed(&sql[..]), params.clone())).await,
    };
    conn.observe(started.elapsed());
    r.map_err(|(e, _)| e)?;
    let c = conn.conn();
    Ok(WriteDone {
        info: OkInfo { affected_rows: c.affected_rows(), last_insert_id: c.last_insert_id().unwrap_or(0), warnings: c.get_warnings(), info: String::new() },
    })
}

async fn run_all(conns: &mut [(String, PooledConn, Request)], sql: Option<&str>) -> Vec<Result<WriteDone, BackendError>> {
    let futs = conns.iter_mut().map(|(_, c, req)| async move {
        match sql {
            Some(s) => write_one(c, &Request::Text(Arc::from(s.as_bytes()))).await,
            None => write_one(c, req).await,
        }
    });
    futures_util::future::join_all(futs).await
}

/// How a write over several shards is made one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// Runs as sent (one shard, or the client accepts per-shard effects).
    None,
    /// Outside a transaction: each shard runs it in its own, committed together.
    Own,
    /// Inside the client's transaction: a savepoint on each shard first, rolled back to on
    /// every shard if one fails.
    Savepoint,
}

const STATEMENT_SAVEPOINT: &str = "SAVEPOINT slotgate_statement";
const STATEMENT_ROLLBACK: &str = "ROLLBACK TO SAVEPOINT slotgate_statement";

/// Runs a write on several shards (each with its own statement) and answers with the summed
/// OK. With `atomic`, each shard runs it inside BEGIN … COMMIT, committed only if every shard
/// succeeded; a commit that fails after others committed is reported as a partial commit.
pub async fn write(
    mut conns: Vec<(String, PooledConn, Request)>,
    wrap: Wrap,
    status: StatusFlags,
    reply: &mut Reply<'_>,
    partial_commits: &metrics::Counter,
) -> Result<Returned, StreamError> {
    let mut broken: Vec<bool> = vec![false; conns.len()];
    let mut first_error: Option<BackendError> = None;
    let note = |i: usize, r: &Result<WriteDone, BackendError>, broken: &mut Vec<bool>| {
        if let Err(e) = r {
            broken[i] |= e.is_fatal();
        }
    };
    let atomic = wrap == Wrap::Own;
    let opening = match wrap {
        Wrap::Own => Some("BEGIN"),
        Wrap::Savepoint => Some(STATEMENT_SAVEPOINT),
        Wrap::None => None,
    };
    if let Some(opening) = opening {
        for (i, r) in run_all(&mut conns, Some(opening)).await.iter().enumerate() {
            note(i, r, &mut broken);
            if let Err(e) = r {
                first_error.get_or_insert(e.clone());
            }
        }
    }
    let mut total = OkInfo::default();
    if first_error.is_none() {
        for (i, r) in run_all(&mut conns, None).await.into_iter().enumerate() {
            note(i, &r, &mut broken);
            match r {
                Ok(d) => {
                    total.affected_rows += d.info.affected_rows;
                    total.warnings = total.warnings.saturating_add(d.info.warnings);
                    if total.last_insert_id == 0 {
                        total.last_insert_id = d.info.last_insert_id;
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    let answer: Result<(), ClientError> = match (atomic, first_error) {
        (true, Some(e)) => {
            let _ = run_all(&mut conns, Some("ROLLBACK")).await;
            Err(e.into())
        }
        (false, Some(e)) => {
            if wrap == Wrap::Savepoint {
                // As on one MariaDB, the failed statement is undone on every shard and the
                // transaction goes on (a deadlock ended it anyway: errors are ignored).
                let _ = run_all(&mut conns, Some(STATEMENT_ROLLBACK)).await;
            }
            Err(e.into())
        }
        (true, None) => {
            let mut committed = Vec::new();
            let mut failure = None;
            for (i, (shard, c, _)) in conns.iter_mut().enumerate() {
                if failure.is_some() {
                    let _ = write_one(c, &Request::Text(Arc::from(&b"ROLLBACK"[..]))).await;
                    continue;
                }
                match write_one(c, &Request::Text(Arc::from(&b"COMMIT"[..]))).await {
                    Ok(_) => committed.push(shard.clone()),
                    Err(e) => {
                        broken[i] |= e.is_fatal();
                        failure = Some((shard.clone(), e));
                    }
                }
            }
            match failure {
                None => Ok(()),
                Some((_, e)) if committed.is_empty() => Err(e.into()),
                Some((shard, e)) => {
                    partial_commits.increment(1);
                    Err(partial_commit(&committed, &shard, &e))
                }
            }
        }
        (false, None) => Ok(()),
    };
    match answer {
        Ok(()) => reply.ok(&total, status).await?,
        Err(e) => reply.error(&e).await?,
    }
    Ok(conns.into_iter().zip(broken).map(|((s, c, _), b)| (s, if b { c.discard(); None } else { Some(c) })).collect())
}

/// ER_ERROR_DURING_COMMIT naming the shards that committed.
pub fn partial_commit(committed: &[String], failed: &str, e: &BackendError) -> ClientError {
    ClientError::new(
        ErrorKind::Backend,
        codes::ER_ERROR_DURING_COMMIT,
        b"HY000",
        format!(
            "Partial commit: committed on shard(s) {}, but COMMIT failed on shard {failed} ({e}); the changes on {failed} were rolled back — check and repair the data on that shard",
            committed.join(", ")
        ),
    )
}
