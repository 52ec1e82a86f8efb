//! One client connection from greeting to close: handshake, then the command loop.
//!
//! Contract: every command gets exactly one answer (or none, for those the protocol leaves
//! unanswered); malformed commands get an ERR and the loop goes on; a broken stream, a
//! too-large packet or cancellation closes only this connection. The handler is always told
//! `on_close` at the end.

use super::change_user;
use super::command::Command;
use super::cursor::Cursor;
use super::execute::{self, ParamType};
use super::handshake::{self, FrontendConfig, HandshakeError, Login};
use super::reply::Reply;
use super::stream::{Io, PacketStream, StreamError};
use super::Handler;
use crate::error::ClientError;
use crate::metrics::{CommandLabel, Metrics};
use mysql_common::constants::CapabilityFlags;
use mysql_common::packets::AuthPlugin;
use std::collections::HashMap;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the frontend remembers of a prepared statement.
#[derive(Default)]
struct StmtMeta {
    num_params: usize,
    bound: Option<Vec<ParamType>>,
    long_data: HashMap<u16, Vec<u8>>,
    long_data_bytes: usize,
    /// Columns its prepare described (a statement without any opens no cursor, as CALL).
    num_columns: usize,
    cursor: Option<Cursor>,
}

struct ConnState {
    login: Login,
    multi_statements: bool,
    /// This connection's max_allowed_packet, and whether it is the backends' smallest.
    packet_limit: (usize, bool),
    stmts: HashMap<u32, StmtMeta>,
    /// The statement the last COM_STMT_PREPARE made (None when it failed): what statement id
    /// 0xFFFFFFFF names, as MariaDB's direct execution sends it.
    last_prepared: Option<u32>,
}

/// Serves one client until it quits, fails, or `cancel` fires between commands.
pub async fn serve<H: Handler>(
    io: Box<dyn Io>,
    cfg: &FrontendConfig,
    connection_id: u32,
    peer_host: &str,
    handler: &mut H,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<(), StreamError> {
    // Fixed for the connection's life, as MariaDB fixes a session's max_allowed_packet.
    let (limit, from_backends) = cfg.packet_limit();
    let stream = PacketStream::new(io, limit);
    let (mut stream, login) = match handshake::handshake(stream, cfg, connection_id, peer_host).await {
        Ok(x) => x,
        Err(HandshakeError::Refused(e)) => {
            metrics.error(e.kind);
            tracing::info!(code = e.code, "login refused: {}", e.message);
            return Ok(());
        }
        Err(HandshakeError::Closed) => return Ok(()),
        Err(HandshakeError::Stream(e)) => return Err(e),
    };
    tracing::debug!(user = %login.user, tls = login.tls, "authenticated");
    let caps = login.capabilities;
    let mut state = ConnState {
        multi_statements: caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS),
        packet_limit: (limit, from_backends),
        login,
        stmts: HashMap::new(),
        last_prepared: None,
    };
    {
        let mut reply = Reply::new(&mut stream, caps, state.multi_statements);
        let r = handler.on_connect(&state.login, &mut reply).await;
        let refused = reply.errored.take();
        r?;
        stream.flush().await?;
        if let Some(e) = refused {
            metrics.error(e.kind);
            handler.on_close().await;
            return Ok(());
        }
    }
    if caps.contains(CapabilityFlags::CLIENT_COMPRESS) {
        stream.enable_compression();
    }
    let result = command_loop(&mut stream, cfg, peer_host, handler, metrics, cancel, &mut state).await;
    handler.on_close().await;
    result
}

async fn command_loop<H: Handler>(
    stream: &mut PacketStream,
    cfg: &FrontendConfig,
    peer_host: &str,
    handler: &mut H,
    metrics: &Metrics,
    cancel: &CancellationToken,
    state: &mut ConnState,
) -> Result<(), StreamError> {
    loop {
        stream.reset_seq();
        // A client idle longer than its session's wait_timeout is disconnected, as MariaDB
        // does (silently; the client sees the closed connection at its next command).
        let idle_deadline = handler.idle_timeout().map(|t| tokio::time::Instant::now() + t);
        let idle_expired = async {
            match idle_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(idle_expired);
        // While the session holds something it should give back when the client is idle,
        // wait for the next command at most that long first. Reading is cancel-safe: bytes
        // already received stay buffered for the read below.
        let early = match handler.idle_release_after() {
            Some(idle) => tokio::select! {
                p = stream.read() => Some(p),
                _ = tokio::time::sleep(idle) => {
                    handler.on_idle().await;
                    None
                }
                _ = &mut idle_expired => return idle_close(),
                _ = cancel.cancelled() => return Ok(()),
            },
            None => None,
        };
        let packet = match early {
            Some(p) => p,
            None => tokio::select! {
                p = stream.read() => p,
                _ = &mut idle_expired => return idle_close(),
                _ = cancel.cancelled() => return Ok(()),
            },
        };
        let packet = match packet {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(StreamError::TooLarge) => {
                let e = ClientError::packet_too_large(state.packet_limit.0, state.packet_limit.1);
                metrics.error(e.kind);
                let _ = stream.send(super::packets::err(&e)).await;
                return Ok(());
            }
            Err(StreamError::OutOfSync) => {
                // As MariaDB: 1156, then the connection closes.
                let e = ClientError::packets_out_of_order();
                metrics.error(e.kind);
                let _ = stream.send(super::packets::err(&e)).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let started = Instant::now();
        let mut command = match Command::parse(packet) {
            Ok(c) => c,
            Err(e) => {
                metrics.error(e.kind);
                stream.send(super::packets::err(&e)).await?;
                continue;
            }
        };
        if matches!(command, Command::Quit) {
            return Ok(());
        }
        let prepares = matches!(command, Command::Prepare(_));
        if let Some(last) = state.last_prepared {
            command.resolve_last_statement(last);
        }
        let caps = state.login.capabilities;
        let mut reply = Reply::new(stream, caps, state.multi_statements);
        let label = dispatch(command, cfg, peer_host, handler, state, &mut reply).await?;
        reply.write_deferred(None).await?;
        let errored = reply.errored.take();
        let close = reply.close_after || handler.must_close();
        let described = reply.described.take();
        if prepares {
            state.last_prepared = described.map(|d| d.stmt_id);
        }
        if let Some(d) = described {
            state.stmts.insert(d.stmt_id, StmtMeta { num_params: d.num_params, num_columns: d.num_columns, ..StmtMeta::default() });
        }
        stream.flush().await?;
        if let Some(label) = label {
            if let Some(e) = &errored {
                metrics.error(e.kind);
            }
            metrics.command(label, errored.is_none(), started.elapsed().as_secs_f64());
        }
        if close {
            return Ok(());
        }
    }
}

/// Runs a bulk execute as one statement for the client: its rows one after the other, all
/// or none (inside BEGIN … COMMIT, or a savepoint when a transaction is open or autocommit is
/// off), answered with one OK whose affected rows are the sum and whose insert id is the
/// first row's, as MariaDB answers it. The first error ends it (the rows before it are rolled
/// back); a statement that returns rows is refused with 1235.
async fn bulk_execute<H: Handler>(handler: &mut H, req: execute::BulkRequest, reply: &mut Reply<'_>) -> Result<(), StreamError> {
    use mysql_common::constants::StatusFlags;
    let status = handler.status();
    let in_tx = status.contains(StatusFlags::SERVER_STATUS_IN_TRANS) || !status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
    let (open, undo, done): (&[u8], &[u8], &[u8]) = if in_tx {
        (b"SAVEPOINT slotgate_bulk", b"ROLLBACK TO SAVEPOINT slotgate_bulk", b"RELEASE SAVEPOINT slotgate_bulk")
    } else {
        (b"BEGIN", b"ROLLBACK", b"COMMIT")
    };
    reply.bulk_start();
    handler.on_query(open, reply).await?;
    reply.write_deferred(None).await?;
    if reply.errored.is_some() {
        reply.bulk_end();
        return Ok(());
    }
    let mut failed = false;
    for row in req.rows {
        handler.on_execute(req.stmt_id, row, reply).await?;
        reply.write_deferred(None).await?;
        if reply.errored.is_some() || reply.bulk.as_ref().is_some_and(|b| b.result_set) {
            failed = true;
            break;
        }
    }
    let returned_rows = reply.bulk.as_ref().is_some_and(|b| b.result_set);
    handler.on_query(if failed { undo } else { done }, reply).await?;
    reply.write_deferred(None).await?;
    let sum = reply.bulk_end().unwrap_or_default();
    if returned_rows && reply.errored.is_none() {
        return reply.error(&ClientError::not_supported("COM_STMT_BULK_EXECUTE of a statement that returns rows; execute it row by row")).await;
    }
    if reply.errored.is_some() {
        return Ok(());
    }
    let info = super::packets::OkInfo { affected_rows: sum.affected_rows, last_insert_id: sum.last_insert_id, warnings: sum.warnings, info: String::new() };
    reply.ok(&info, handler.status()).await
}

fn idle_close() -> Result<(), StreamError> {
    tracing::info!("client idle longer than its session's wait_timeout; closing its connection");
    Ok(())
}

/// Runs one command; returns the metric label, or `None` for commands without an answer.
async fn dispatch<H: Handler>(
    command: Command,
    cfg: &FrontendConfig,
    peer_host: &str,
    handler: &mut H,
    state: &mut ConnState,
    reply: &mut Reply<'_>,
) -> Result<Option<CommandLabel>, StreamError> {
    let label = match command {
        Command::Quit => return Ok(None),
        Command::Query(sql) => {
            handler.on_query(&sql, reply).await?;
            CommandLabel::Query
        }
        Command::Prepare(sql) => {
            handler.on_prepare(&sql, reply).await?;
            CommandLabel::Prepare
        }
        Command::Execute(body) => {
            let parsed = execute::stmt_id(&body).and_then(|id| {
                let meta = state
                    .stmts
                    .get_mut(&id)
                    .ok_or_else(|| ClientError::unknown_statement(id, "mysqld_stmt_execute"))?;
                if meta.long_data_bytes > state.packet_limit.0 {
                    meta.long_data.clear();
                    meta.long_data_bytes = 0;
                    return Err(ClientError::long_data_too_large());
                }
                meta.long_data_bytes = 0;
                // A new execute closes the statement's open cursor.
                meta.cursor = None;
                let req = execute::parse_execute(&body, meta.num_params, &mut meta.bound, &mut meta.long_data)?;
                Ok((req, meta.num_columns > 0))
            });
            match parsed {
                Ok((req, has_columns)) if req.cursor && has_columns => {
                    let id = req.stmt_id;
                    reply.capture_cursor();
                    handler.on_execute(id, req.params, reply).await?;
                    reply.write_deferred(None).await?;
                    if let Some(cursor) = reply.open_cursor(handler.status()).await? {
                        if let Some(meta) = state.stmts.get_mut(&id) {
                            meta.cursor = Some(cursor);
                        }
                    }
                }
                Ok((req, _)) => handler.on_execute(req.stmt_id, req.params, reply).await?,
                Err(e) => reply.error(&e).await?,
            }
            CommandLabel::Execute
        }
        Command::BulkExecute(_) if !state.login.bulk => {
            // As MariaDB when the client did not negotiate bulk operations.
            reply.error(&ClientError::unsupported_ps()).await?;
            CommandLabel::Other
        }
        Command::BulkExecute(body) => {
            let parsed = execute::stmt_id(&body).and_then(|id| {
                let meta = state.stmts.get_mut(&id).ok_or_else(|| ClientError::unknown_statement(id, "mysqld_stmt_bulk_execute"))?;
                meta.cursor = None;
                execute::parse_bulk(&body, meta.num_params, &mut meta.bound)
            });
            match parsed {
                Ok(req) => bulk_execute(handler, req, reply).await?,
                Err(e) => reply.error(&e).await?,
            }
            CommandLabel::Execute
        }
        Command::SendLongData { stmt_id, param, data } => {
            // No answer; errors surface at execute, as in MariaDB.
            if let Some(meta) = state.stmts.get_mut(&stmt_id) {
                if meta.long_data_bytes <= state.packet_limit.0 {
                    meta.long_data_bytes += data.len();
                    meta.long_data.entry(param).or_default().extend_from_slice(&data);
                }
            }
            return Ok(None);
        }
        Command::Close(stmt_id) => {
            state.stmts.remove(&stmt_id);
            handler.on_close_statement(stmt_id).await;
            return Ok(None);
        }
        Command::Reset(stmt_id) => {
            match state.stmts.get_mut(&stmt_id) {
                Some(meta) => {
                    meta.long_data.clear();
                    meta.long_data_bytes = 0;
                    meta.cursor = None;
                    reply.ok(&Default::default(), handler.status()).await?;
                }
                None => reply.error(&ClientError::unknown_statement(stmt_id, "mysqld_stmt_reset")).await?,
            }
            CommandLabel::Other
        }
        Command::Fetch { stmt_id, rows } => {
            let status = handler.status();
            match state.stmts.get_mut(&stmt_id) {
                Some(StmtMeta { cursor: Some(cursor), .. }) => {
                    let n = usize::try_from(rows).unwrap_or(usize::MAX);
                    if reply.fetch(cursor, n, status).await? {
                        if let Some(meta) = state.stmts.get_mut(&stmt_id) {
                            meta.cursor = None;
                        }
                    }
                }
                // As MariaDB for a statement without an open cursor: 1421.
                Some(_) => reply.error(&ClientError::no_open_cursor(stmt_id)).await?,
                None => reply.error(&ClientError::unknown_statement(stmt_id, "mysqld_stmt_fetch")).await?,
            }
            CommandLabel::Other
        }
        Command::InitDb(db) => {
            handler.on_init_db(&db, reply).await?;
            CommandLabel::InitDb
        }
        Command::Ping => {
            handler.on_ping(reply).await?;
            CommandLabel::Ping
        }
        Command::SetOption(option) => {
            match option {
                0 | 1 => {
                    state.multi_statements = option == 0;
                    reply.eof(handler.status()).await?;
                }
                _ => {
                    reply
                        .error(&ClientError::unknown_set_option(option))
                        .await?
                }
            }
            CommandLabel::Other
        }
        Command::ResetConnection => {
            state.stmts.clear();
            state.multi_statements = state.login.capabilities.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS);
            handler.on_reset_connection(reply).await?;
            CommandLabel::Other
        }
        Command::ChangeUser(body) => {
            change_user_cmd(&body, cfg, peer_host, handler, state, reply).await?;
            CommandLabel::Other
        }
        Command::FieldList { table, wildcard } => {
            handler.on_field_list(&table, &wildcard, reply).await?;
            CommandLabel::Other
        }
        Command::Refresh(flags) => {
            handler.on_refresh(flags, reply).await?;
            CommandLabel::Other
        }
        Command::Statistics => {
            handler.on_statistics(reply).await?;
            CommandLabel::Other
        }
        Command::Unknown(code) => {
            reply.error(&ClientError::unknown_command(code)).await?;
            CommandLabel::Other
        }
    };
    Ok(Some(label))
}

async fn change_user_cmd<H: Handler>(
    body: &[u8],
    cfg: &FrontendConfig,
    peer_host: &str,
    handler: &mut H,
    state: &mut ConnState,
    reply: &mut Reply<'_>,
) -> Result<(), StreamError> {
    let caps = state.login.capabilities;
    let req = match change_user::parse(body, caps) {
        Ok(r) => r,
        Err(e) => return reply.error(&e).await,
    };
    let native = match req.plugin.as_deref() {
        None | Some("") => true,
        Some(p) => AuthPlugin::from_bytes(p.as_bytes()) == AuthPlugin::MysqlNativePassword,
    };
    let (scramble, token) = if native {
        (state.login.scramble, req.auth_response.clone())
    } else {
        let fresh = super::auth::new_scramble();
        let token = match reply_auth_switch(reply, &fresh).await {
            Ok(t) => t,
            Err(HandshakeError::Stream(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        (fresh, token)
    };
    let checked = handshake::check_password(&cfg.users, &req.user, peer_host, &scramble, &token, state.login.tls);
    cfg.throttle.wait(peer_host).await;
    if let Err(e) = checked {
        cfg.throttle.failed(peer_host);
        return reply.error(&e).await;
    }
    cfg.throttle.succeeded(peer_host);
    state.login.connection_admin = cfg.users.get(&req.user).is_some_and(|u| u.connection_admin);
    state.login.user = req.user;
    state.login.db = req.db;
    state.login.scramble = scramble;
    if let Some(c) = req.collation {
        state.login.collation = c;
    }
    state.stmts.clear();
    state.multi_statements = caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS);
    handler.on_change_user(&state.login, reply).await
}

async fn reply_auth_switch(reply: &mut Reply<'_>, scramble: &[u8; 20]) -> Result<Vec<u8>, HandshakeError> {
    reply.auth_switch(scramble).await
}
