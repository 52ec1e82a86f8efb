//! Connection phase: greeting, optional TLS upgrade, login with mysql_native_password (auth
//! switch for clients whose default plugin differs, e.g. MySQL 8's caching_sha2_password).
//!
//! Contract: returns a [`Login`] only for a user whose password was checked; on a wrong
//! password or unknown user it has already sent ERROR 1045 (28000). The final OK is not sent
//! here: the caller sends it once the session accepted the default database.

use super::auth::{new_scramble, verify_native, NATIVE_PLUGIN};
use super::packets;
use super::stream::{PacketStream, StreamError};
use crate::config::Users;
use crate::error::ClientError;
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse, SslRequest};
use mysql_common::proto::MySerialize;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// What the frontend needs to accept clients.
#[derive(Clone)]
pub struct FrontendConfig {
    pub server_version: String,
    pub users: Arc<Users>,
    pub tls: Option<TlsAcceptor>,
    /// `node.max_allowed_packet`: the most a client may send.
    pub max_allowed_packet: usize,
    /// The smallest `max_allowed_packet` of the backends (0 while unknown): a larger packet
    /// could not reach them, so it is refused here with 1153.
    pub backend_packet_limit: Arc<std::sync::atomic::AtomicUsize>,
    /// Slows logins from addresses that failed too often.
    pub throttle: Arc<super::throttle::LoginThrottle>,
}

impl FrontendConfig {
    /// The limit a new connection gets, and whether it is the backends' (not the node's).
    pub fn packet_limit(&self) -> (usize, bool) {
        let backends = self.backend_packet_limit.load(std::sync::atomic::Ordering::Relaxed);
        match backends {
            0 => (self.max_allowed_packet, false),
            b if b < self.max_allowed_packet => (b, true),
            _ => (self.max_allowed_packet, false),
        }
    }
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub db: Option<String>,
    /// Capabilities both sides have.
    pub capabilities: CapabilityFlags,
    pub collation: u16,
    pub tls: bool,
    /// The greeting's scramble; COM_CHANGE_USER answers are computed over it.
    pub scramble: [u8; 20],
    /// The connection id the greeting gave the client.
    pub connection_id: u32,
    /// The account may see and KILL every connection (users file `connection_admin`).
    pub connection_admin: bool,
    /// The client negotiated MariaDB bulk execution (COM_STMT_BULK_EXECUTE).
    pub bulk: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("stream: {0}")]
    Stream(#[from] StreamError),
    #[error("client closed the connection during the handshake")]
    Closed,
    #[error("refused: {0}")]
    Refused(ClientError),
}

/// Capabilities slotgate offers. What is not implemented is not advertised.
pub fn server_capabilities(tls: bool) -> CapabilityFlags {
    // Without CLIENT_LONG_PASSWORD (CLIENT_MYSQL), as MariaDB: clients then read MariaDB's
    // extended capabilities from the greeting (see `MARIADB_CAPABILITIES`).
    let mut caps = CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_COMPRESS
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_IGNORE_SIGPIPE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_SESSION_TRACK
        | CapabilityFlags::CLIENT_LOCAL_FILES;
    if tls {
        caps |= CapabilityFlags::CLIENT_SSL;
    }
    caps
}

/// MariaDB's extended capabilities slotgate offers: bulk execution (COM_STMT_BULK_EXECUTE,
/// which Connector/C, /J and /Node use for batches).
pub const MARIADB_CAPABILITIES: MariadbCapabilities = MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS;

/// Collation announced in the greeting: utf8mb4_general_ci.
const DEFAULT_COLLATION: u8 = 45;

async fn refuse(stream: &mut PacketStream, e: ClientError) -> HandshakeError {
    let _ = stream.send(packets::err(&e)).await;
    HandshakeError::Refused(e)
}

/// Runs the connection phase up to (not including) the final OK.
pub async fn handshake(
    mut stream: PacketStream,
    cfg: &FrontendConfig,
    connection_id: u32,
    peer_host: &str,
) -> Result<(PacketStream, Login), HandshakeError> {
    let scramble = new_scramble();
    let server_caps = server_capabilities(cfg.tls.is_some());
    let mut part2 = scramble[8..].to_vec();
    part2.push(0);
    let greeting = HandshakePacket::new(
        10,
        cfg.server_version.as_bytes(),
        connection_id,
        [scramble[0], scramble[1], scramble[2], scramble[3], scramble[4], scramble[5], scramble[6], scramble[7]],
        Some(part2),
        server_caps,
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE_PLUGIN.as_bytes()),
    )
    .with_mariadb_ext_capabilities(MARIADB_CAPABILITIES);
    let mut buf = Vec::with_capacity(128);
    greeting.serialize(&mut buf);
    stream.send(buf).await?;

    let mut packet = stream.read().await?.ok_or(HandshakeError::Closed)?;
    let mut tls = false;
    if packet.len() == 32 {
        let ssl: SslRequest = match ParseBuf(&packet).parse(()) {
            Ok(r) => r,
            Err(_) => return Err(refuse(&mut stream, ClientError::malformed("bad SSL request")).await),
        };
        if ssl.capabilities().contains(CapabilityFlags::CLIENT_SSL) {
            let Some(acceptor) = cfg.tls.clone() else {
                return Err(refuse(&mut stream, ClientError::malformed("TLS requested but not offered")).await);
            };
            stream = stream
                .upgrade(|io| async move {
                    let tls_stream = acceptor.accept(io).await?;
                    Ok(Box::new(tls_stream) as Box<dyn super::stream::Io>)
                })
                .await
                .map_err(StreamError::Io)?;
            tls = true;
            packet = stream.read().await?.ok_or(HandshakeError::Closed)?;
        }
    }
    let response: HandshakeResponse = match ParseBuf(&packet).parse(()) {
        Ok(r) => r,
        Err(_) => {
            return Err(refuse(&mut stream, ClientError::malformed("bad handshake response (a MySQL 4.1+ client is required)")).await)
        }
    };
    let capabilities = response.capabilities() & server_caps;
    // MariaDB's extended capabilities count only from a client without CLIENT_MYSQL.
    let bulk = !response.capabilities().contains(CapabilityFlags::CLIENT_LONG_PASSWORD)
        && response.mariadb_ext_capabilities().contains(MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS);
    let user = String::from_utf8_lossy(response.user()).into_owned();
    let db = response
        .db_name()
        .filter(|d| !d.is_empty() && capabilities.contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB))
        .map(|d| String::from_utf8_lossy(d).into_owned());
    let wants_switch = capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH)
        && !matches!(response.auth_plugin(), None | Some(AuthPlugin::MysqlNativePassword));
    let token = if wants_switch {
        auth_switch(&mut stream, &scramble).await?
    } else {
        response.scramble_buf().to_vec()
    };
    let checked = check_password(&cfg.users, &user, peer_host, &scramble, &token, tls);
    // Held before the answer either way, so that a throttled guesser cannot tell a hit early.
    cfg.throttle.wait(peer_host).await;
    if let Err(e) = checked {
        cfg.throttle.failed(peer_host);
        return Err(refuse(&mut stream, e).await);
    }
    cfg.throttle.succeeded(peer_host);
    let connection_admin = cfg.users.get(&user).is_some_and(|u| u.connection_admin);
    let login = Login { user, db, capabilities, collation: u16::from(response.collation()), tls, scramble, connection_id, connection_admin, bulk };
    Ok((stream, login))
}

/// Asks the client to answer with mysql_native_password over `scramble`; returns its answer.
pub async fn auth_switch(stream: &mut PacketStream, scramble: &[u8; 20]) -> Result<Vec<u8>, HandshakeError> {
    let mut data = scramble.to_vec();
    data.push(0);
    let mut buf = Vec::with_capacity(48);
    AuthSwitchRequest::new(NATIVE_PLUGIN.as_bytes(), data).serialize(&mut buf);
    stream.send(buf).await?;
    let answer = stream.read().await?.ok_or(HandshakeError::Closed)?;
    Ok(answer.to_vec())
}

/// Checks a login against the users file: password, then TLS requirement.
pub fn check_password(
    users: &Users,
    user: &str,
    peer_host: &str,
    scramble: &[u8; 20],
    token: &[u8],
    tls: bool,
) -> Result<(), ClientError> {
    let denied = || ClientError::access_denied(user, peer_host, !token.is_empty());
    let entry = users.get(user).ok_or_else(denied)?;
    if !verify_native(scramble, entry.stage2.as_ref(), token) {
        return Err(denied());
    }
    if entry.require_tls && !tls {
        return Err(denied());
    }
    Ok(())
}
