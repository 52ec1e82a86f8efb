//! Decoding of the command phase: one client packet into one [`Command`].
//!
//! Contract: never panics on any input; a packet that is too short or inconsistent becomes
//! `Err(ClientError)` (ER_MALFORMED_PACKET) that the caller sends back.

use crate::error::ClientError;
use bytes::BytesMut;

pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_REFRESH: u8 = 0x07;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PING: u8 = 0x0e;
pub const COM_CHANGE_USER: u8 = 0x11;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1a;
pub const COM_STMT_FETCH: u8 = 0x1c;
pub const COM_SET_OPTION: u8 = 0x1b;
pub const COM_RESET_CONNECTION: u8 = 0x1f;
pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

/// A decoded client command. Payloads borrow nothing: the packet buffer is reused.
#[derive(Debug)]
pub enum Command {
    Quit,
    InitDb(String),
    Query(BytesMut),
    Ping,
    ChangeUser(BytesMut),
    Prepare(BytesMut),
    Execute(BytesMut),
    SendLongData { stmt_id: u32, param: u16, data: BytesMut },
    Close(u32),
    Reset(u32),
    /// COM_STMT_FETCH: up to `rows` rows of the statement's open cursor (see `cursor`).
    Fetch { stmt_id: u32, rows: u32 },
    /// COM_STMT_BULK_EXECUTE (MariaDB): a prepared statement over several rows of parameters.
    BulkExecute(BytesMut),
    SetOption(u16),
    ResetConnection,
    /// COM_FIELD_LIST (deprecated, still sent by old C clients): a table's columns.
    FieldList { table: String, wildcard: String },
    /// COM_REFRESH with its FLUSH flags.
    Refresh(u8),
    Statistics,
    Unknown(u8),
}

fn text(body: &[u8], what: &str) -> Result<String, ClientError> {
    String::from_utf8(body.to_vec())
        .map_err(|_| ClientError::malformed(&format!("{what} is not valid UTF-8")))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The statement id that names "the statement prepared last" (MariaDB's direct execution
/// sends COM_STMT_PREPARE and COM_STMT_EXECUTE together, the latter with this id).
pub const LAST_STATEMENT: u32 = u32::MAX;

impl Command {
    /// Makes a statement command that names [`LAST_STATEMENT`] name `last` instead.
    pub fn resolve_last_statement(&mut self, last: u32) {
        match self {
            Command::Execute(body) | Command::BulkExecute(body) => {
                if body.get(0..4) == Some(&LAST_STATEMENT.to_le_bytes()[..]) {
                    body[0..4].copy_from_slice(&last.to_le_bytes());
                }
            }
            Command::SendLongData { stmt_id, .. } | Command::Close(stmt_id) | Command::Reset(stmt_id) | Command::Fetch { stmt_id, .. } => {
                if *stmt_id == LAST_STATEMENT {
                    *stmt_id = last;
                }
            }
            _ => {}
        }
    }

    pub fn parse(mut packet: BytesMut) -> Result<Command, ClientError> {
        if packet.is_empty() {
            // MariaDB reads an empty packet as command 0 (COM_SLEEP): unknown from a client.
            return Ok(Command::Unknown(0));
        }
        let code = packet[0];
        let body = packet.split_off(1);
        Ok(match code {
            COM_QUIT => Command::Quit,
            COM_INIT_DB => Command::InitDb(text(&body, "database name")?),
            COM_QUERY => Command::Query(body),
            COM_PING => Command::Ping,
            COM_CHANGE_USER => Command::ChangeUser(body),
            COM_STMT_PREPARE => Command::Prepare(body),
            COM_STMT_EXECUTE => Command::Execute(body),
            COM_STMT_BULK_EXECUTE => Command::BulkExecute(body),
            COM_STMT_SEND_LONG_DATA => {
                let stmt_id = u32_at(&body, 0).ok_or_else(|| ClientError::malformed("COM_STMT_SEND_LONG_DATA too short"))?;
                let param = body
                    .get(4..6)
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .ok_or_else(|| ClientError::malformed("COM_STMT_SEND_LONG_DATA too short"))?;
                let mut body = body;
                let data = body.split_off(6);
                Command::SendLongData { stmt_id, param, data }
            }
            COM_STMT_CLOSE => Command::Close(u32_at(&body, 0).ok_or_else(|| ClientError::malformed("COM_STMT_CLOSE too short"))?),
            COM_STMT_RESET => Command::Reset(u32_at(&body, 0).ok_or_else(|| ClientError::malformed("COM_STMT_RESET too short"))?),
            COM_STMT_FETCH => {
                let short = || ClientError::malformed("COM_STMT_FETCH too short");
                Command::Fetch { stmt_id: u32_at(&body, 0).ok_or_else(short)?, rows: u32_at(&body, 4).ok_or_else(short)? }
            }
            COM_SET_OPTION => Command::SetOption(
                body.get(0..2)
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .ok_or_else(|| ClientError::malformed("COM_SET_OPTION too short"))?,
            ),
            COM_RESET_CONNECTION => Command::ResetConnection,
            COM_FIELD_LIST => {
                let end = body.iter().position(|b| *b == 0).ok_or_else(|| ClientError::malformed("COM_FIELD_LIST without a NUL after the table name"))?;
                let table = text(&body[..end], "table name")?;
                let wildcard = text(&body[end + 1..], "column wildcard")?;
                Command::FieldList { table, wildcard }
            }
            COM_REFRESH => Command::Refresh(body.first().copied().unwrap_or(0)),
            COM_STATISTICS => Command::Statistics,
            other => Command::Unknown(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_packets_are_errors_not_panics() {
        for code in 0u8..=0xff {
            let _ = Command::parse(BytesMut::from(&[code][..]));
            let _ = Command::parse(BytesMut::from(&[code, 1][..]));
        }
        assert!(matches!(Command::parse(BytesMut::new()), Ok(Command::Unknown(0))));
        assert!(Command::parse(BytesMut::from(&[COM_STMT_CLOSE, 1, 2][..])).is_err());
    }

    #[test]
    fn query_text() {
        match Command::parse(BytesMut::from(&b"\x03SELECT 1"[..])).unwrap() {
            Command::Query(q) => assert_eq!(&q[..], b"SELECT 1"),
            other => panic!("{other:?}"),
        }
        assert!(Command::parse(BytesMut::from(&[0x04u8][..])).is_err(), "COM_FIELD_LIST without its NUL");
        match Command::parse(BytesMut::from(&b"\x04t1\0a%"[..])).unwrap() {
            Command::FieldList { table, wildcard } => assert_eq!((table.as_str(), wildcard.as_str()), ("t1", "a%")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Command::parse(BytesMut::from(&[0x20u8][..])).unwrap(), Command::Unknown(0x20)));
    }
}
