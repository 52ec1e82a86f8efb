//! Streams a backend's answer (every result set of a statement) to the client, row by row.
//!
//! Contract: memory stays bounded by one row plus the frontend's write buffer, whatever the
//! result size. A backend error is written to the client as is; the caller learns whether
//! the backend connection is still usable, whether the statement can be retried (the pooled
//! connection was dead before anything was sent) and the backend's final status flags.

use crate::backend::pool::VictimProbe;
use crate::backend::{BackendError, PooledConn};
use crate::backend::error::{bounded, DeadConn};
use crate::error::ClientError;
use crate::frontend::reply::LastPacket;
use crate::frontend::{OkInfo, Reply, StreamError};
use mysql_async::prelude::{Protocol, Queryable};
use mysql_async::{Params, QueryResult};
use mysql_common::constants::StatusFlags;
use bytes::Bytes;
use mysql_async::InfileData;
use std::borrow::Cow;
use tokio::sync::{mpsc, Notify};
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub enum Request {
    Text(Arc<[u8]>),
    Binary(Arc<[u8]>, Params),
}

/// How a forwarded statement ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The backend's status flags after the statement (None if it ended in an error).
    pub status: Option<StatusFlags>,
    pub last_insert_id: Option<u64>,
    /// Rows the statement's last result changed (its OK packet).
    pub affected_rows: u64,
    /// An error (backend's or proxy's) was written to the client.
    pub errored: bool,
    /// The backend connection broke or timed out: do not reuse it.
    pub broken: bool,
    /// The pooled connection was dead before the statement reached the server; nothing
    /// was written to the client, so the statement may be retried on another connection.
    pub retryable: bool,
    /// The connection closed before any answer: retry only a statement safe to repeat.
    /// Nothing was written to the client.
    pub retryable_if_idempotent: bool,
}

/// Runs `req` on `pc` and writes the whole answer through `reply`. `status` is the session's
/// status before the statement, used for packets written before the backend's final status
/// is known. The final packet carries the backend's true status.
pub async fn forward(
    pc: &mut PooledConn,
    req: &Request,
    local_infile: Option<&str>,
    idempotent: bool,
    status: StatusFlags,
    reply: &mut Reply<'_>,
) -> Result<Outcome, StreamError> {
    let limit = pc.query_timeout();
    let ids = (pc.shard().to_string(), pc.addr().to_string());
    let who = (ids.0.as_str(), ids.1.as_str());
    let victim = pc.victim_probe();
    let conn = pc.conn();
    let outcome_or_err = match req {
        Request::Text(sql) => {
            let first = match local_infile {
                Some(name) if reply.local_files() => {
                    let (tx, rx) = tokio::sync::mpsc::channel(4);
                    conn.set_infile_handler(async move { Ok(infile_stream(rx)) });
                    let done = Notify::new();
                    let query = async {
                        let r = bounded(limit, who, conn.query_iter(&sql[..])).await;
                        done.notify_one();
                        r
                    };
                    let (first, pumped) = tokio::join!(query, pump_file(reply, name, tx, &done));
                    pumped?;
                    first
                }
                _ => bounded(limit, who, conn.query_iter(&sql[..])).await,
            };
            match first {
                Ok(result) => stream_sets(result, false, status, limit, who, &victim, reply).await,
                Err((e, dead)) => first_error(e, dead, &victim, reply, idempotent).await,
            }
        }
        Request::Binary(sql, params) => {
            let first = bounded(limit, who, conn.exec_iter(Cow::Borrowed(&sql[..]), params.clone())).await;
            match first {
                Ok(result) => stream_sets(result, true, status, limit, who, &victim, reply).await,
                Err((e, dead)) => first_error(e, dead, &victim, reply, idempotent).await,
            }
        }
    }
    .map(|mut o| {
        if !o.errored && !o.broken {
            o.status = pc.conn().last_ok_packet().map(|ok| ok.status_flags());
            o.last_insert_id = pc.conn().last_insert_id();
            o.affected_rows = pc.conn().affected_rows();
        }
        o
    })?;
    // The final packet stays deferred: the caller writes it once it knows what the
    // statement changed in the session (see `track`).
    Ok(outcome_or_err)
}

/// The file data the client sends, as the stream mysql_async forwards to the backend.
fn infile_stream(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> InfileData {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// Asks the client for `name` and passes its chunks to the backend. Once the backend has
/// answered (e.g. refused the statement), what the client still sends is read and dropped,
/// so the protocol stays in step.
async fn pump_file(
    reply: &mut Reply<'_>,
    name: &str,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    backend_done: &Notify,
) -> Result<(), StreamError> {
    reply.request_file(name).await?;
    let mut forwarding = true;
    while let Some(chunk) = reply.file_chunk().await? {
        if forwarding {
            tokio::select! {
                sent = tx.send(Ok(chunk.freeze())) => forwarding = sent.is_ok(),
                _ = backend_done.notified() => forwarding = false,
            }
        }
    }
    Ok(())
}

async fn first_error(e: BackendError, dead: DeadConn, victim: &VictimProbe, reply: &mut Reply<'_>, idempotent: bool) -> Result<Outcome, StreamError> {
    match dead {
        DeadConn::BeforeSend => return Ok(Outcome { broken: true, retryable: true, ..Outcome::default() }),
        DeadConn::BeforeAnswer if idempotent => {
            return Ok(Outcome { broken: true, retryable_if_idempotent: true, ..Outcome::default() })
        }
        _ => {}
    }
    let broken = e.is_fatal();
    reply.error(&client_error(e, victim)).await?;
    Ok(Outcome { errored: true, broken, ..Outcome::default() })
}

/// Statuses on intermediate packets: the session's, with MORE_RESULTS as needed.
fn mid_status(status: StatusFlags, more: bool) -> StatusFlags {
    let mut s = status - StatusFlags::SERVER_MORE_RESULTS_EXISTS;
    if more {
        s |= StatusFlags::SERVER_MORE_RESULTS_EXISTS;
    }
    s
}

async fn stream_sets<P: Protocol>(
    mut result: QueryResult<'_, 'static, P>,
    binary: bool,
    status: StatusFlags,
    limit: Option<Duration>,
    who: (&str, &str),
    victim: &VictimProbe,
    reply: &mut Reply<'_>,
) -> Result<Outcome, StreamError> {
    let mut outcome = Outcome::default();
    loop {
        let Some(columns) = result.columns() else {
            // Nothing pending: done, unless a later result set failed.
            if let Err(e) = pending_error(&mut result, limit, who).await {
                return write_error(&mut outcome, e, victim, reply).await;
            }
            return Ok(outcome);
        };
        if columns.is_empty() {
            let info = OkInfo {
                affected_rows: result.affected_rows(),
                last_insert_id: result.last_insert_id().unwrap_or(0),
                warnings: result.warnings(),
                info: result.info().into_owned(),
            };
            let more = !result.is_empty();
            if !more {
                drop(result);
                return write_last(reply, Last::Ok(info), status).await.map(|_| outcome);
            }
            reply.ok(&info, mid_status(status, true)).await?;
            if let Err((e, _)) = bounded(limit, who, result.next()).await {
                return write_error(&mut outcome, e, victim, reply).await;
            }
            continue;
        }
        reply.columns(&columns, mid_status(status, false)).await?;
        loop {
            match bounded(limit, who, result.next()).await {
                Ok(Some(row)) => {
                    let values = row.unwrap();
                    if binary {
                        reply.binary_row(&columns, &values).await?;
                    } else {
                        reply.text_row(&values).await?;
                    }
                }
                Ok(None) => break,
                // An ERR instead of a row is valid protocol: the client stops reading.
                Err((e, _)) => return write_error(&mut outcome, e, victim, reply).await,
            }
        }
        let warnings = result.warnings();
        // A failed next result set is only seen by asking for it.
        let failed_next = match result.columns() {
            Some(_) => None,
            None => pending_error(&mut result, limit, who).await.err(),
        };
        let more = failed_next.is_some() || result.columns().is_some();
        if !more {
            drop(result);
            return write_last(reply, Last::Rows(warnings), status).await.map(|_| outcome);
        }
        reply.end_rows(warnings, mid_status(status, true)).await?;
        if let Some(e) = failed_next {
            return write_error(&mut outcome, e, victim, reply).await;
        }
    }
}

/// With no result set pending, surfaces an error the backend sent for the next one.
async fn pending_error<P: Protocol>(
    result: &mut QueryResult<'_, 'static, P>,
    limit: Option<Duration>,
    who: (&str, &str),
) -> Result<(), BackendError> {
    bounded(limit, who, result.next()).await.map(|_| ()).map_err(|(e, _)| e)
}

async fn write_error(outcome: &mut Outcome, e: BackendError, victim: &VictimProbe, reply: &mut Reply<'_>) -> Result<Outcome, StreamError> {
    outcome.broken = e.is_fatal();
    outcome.errored = true;
    reply.error(&client_error(e, victim)).await?;
    Ok(std::mem::take(outcome))
}

/// The error the client gets: the backend's, unless the statement was killed to break a
/// deadlock across shards, which the client learns as the deadlock it is.
fn client_error(e: BackendError, victim: &VictimProbe) -> ClientError {
    if victim.fired() {
        return ClientError::distributed_deadlock();
    }
    ClientError::from(e)
}

enum Last {
    Ok(OkInfo),
    Rows(u16),
}

/// Holds back the final packet: it must carry the backend's status after the statement,
/// which can only be read once the result is dropped; `forward` writes it then.
async fn write_last(reply: &mut Reply<'_>, last: Last, status: StatusFlags) -> Result<(), StreamError> {
    let packet = match last {
        Last::Ok(info) => LastPacket::Ok(info),
        Last::Rows(w) => LastPacket::EndRows(w),
    };
    reply.defer_last(packet, status);
    Ok(())
}
