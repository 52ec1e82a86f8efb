//! A bare-bones MySQL client over a TCP socket, to send what real drivers never would:
//! malformed packets, wrong sequence ids, disconnects mid-result.
//!
//! Contract: test-only; panics are fine here, the proxy is what is under test.

use anyhow::{bail, Context};
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;
use mysql_common::scramble::scramble_native;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawClient {
    pub stream: TcpStream,
    /// The OK packet that ended the login (empty before).
    pub login_ok: Vec<u8>,
}

impl RawClient {
    pub async fn connect(port: u16) -> anyhow::Result<RawClient> {
        Ok(RawClient { stream: TcpStream::connect(("127.0.0.1", port)).await?, login_ok: Vec::new() })
    }

    /// Connects and logs in (mysql_native_password, CLIENT_DEPRECATE_EOF off).
    pub async fn login(port: u16, user: &str, password: &str) -> anyhow::Result<RawClient> {
        RawClient::login_with(port, user, password, false).await
    }

    /// Logs in; with `bulk`, as a MariaDB client offering bulk execution (its extended
    /// capability, without CLIENT_MYSQL).
    pub async fn login_with(port: u16, user: &str, password: &str, bulk: bool) -> anyhow::Result<RawClient> {
        RawClient::login_caps(port, user, password, bulk, CapabilityFlags::empty(), None).await
    }

    /// Logs in as [`RawClient::login_with`] does, asking for `extra` capabilities too (e.g.
    /// CLIENT_SESSION_TRACK, CLIENT_DEPRECATE_EOF), with `db` as the initial database.
    pub async fn login_caps(port: u16, user: &str, password: &str, bulk: bool, extra: CapabilityFlags, db: Option<&str>) -> anyhow::Result<RawClient> {
        let mut c = RawClient::connect(port).await?;
        let (_, greeting) = c.read_packet().await?;
        let hs: HandshakePacket = ParseBuf(&greeting).parse(()).context("greeting")?;
        let nonce = hs.nonce();
        let token = scramble_native(&nonce, password.as_bytes()).map(|t| t.to_vec()).unwrap_or_default();
        let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | extra
            | if db.is_some() { CapabilityFlags::CLIENT_CONNECT_WITH_DB } else { CapabilityFlags::empty() };
        if !bulk {
            caps |= CapabilityFlags::CLIENT_LONG_PASSWORD;
        }
        let resp = HandshakeResponse::new(
            Some(token),
            (10, 11, 0),
            Some(user.as_bytes()),
            db.map(str::as_bytes),
            Some(AuthPlugin::MysqlNativePassword),
            caps,
            None,
            16 * 1024 * 1024,
        );
        let resp = if bulk { resp.with_mariadb_ext_capabilities(mysql_common::constants::MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS) } else { resp };
        let mut buf = Vec::new();
        resp.serialize(&mut buf);
        c.write_packet(1, &buf).await?;
        let (_, ok) = c.read_packet().await?;
        if ok.first() != Some(&0) {
            bail!("login failed: {:?}", String::from_utf8_lossy(&ok));
        }
        c.login_ok = ok;
        Ok(c)
    }

    pub async fn write_packet(&mut self, seq: u8, payload: &[u8]) -> anyhow::Result<()> {
        let len = payload.len() as u32;
        let mut frame = vec![(len & 0xff) as u8, ((len >> 8) & 0xff) as u8, ((len >> 16) & 0xff) as u8, seq];
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// One packet (no multi-chunk support): (sequence id, payload).
    pub async fn read_packet(&mut self) -> anyhow::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 4];
        self.stream.read_exact(&mut head).await?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await?;
        Ok((head[3], payload))
    }

    /// Sends a command packet (sequence 0) and reads the first answer packet.
    pub async fn command(&mut self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.write_packet(0, payload).await?;
        Ok(self.read_packet().await?.1)
    }

    /// True once the server closed the connection (read returns EOF or an error).
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// The error code of an ERR packet, if it is one.
pub fn err_code(packet: &[u8]) -> Option<u16> {
    (packet.first() == Some(&0xff) && packet.len() >= 3).then(|| u16::from_le_bytes([packet[1], packet[2]]))
}

/// A length-encoded integer at `at`: (value, where what follows starts); past the end, 0.
pub fn lenenc(p: &[u8], at: usize) -> (u64, usize) {
    let byte = |i: usize| p.get(at + i).copied().unwrap_or(0);
    match p.get(at) {
        Some(0xfc) => (u64::from(u16::from_le_bytes([byte(1), byte(2)])), at + 3),
        Some(0xfd) => (u64::from(u32::from_le_bytes([byte(1), byte(2), byte(3), 0])), at + 4),
        Some(0xfe) => (u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8].map(byte)), at + 9),
        Some(n) => (u64::from(*n), at + 1),
        None => (0, at),
    }
}
