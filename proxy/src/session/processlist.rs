//! `SHOW [FULL] PROCESSLIST` answered with this node's client connections, whose ids are the
//! ones clients know (the handshake's, `KILL`'s), never the backends' pooled threads.
//!
//! Contract: the columns and their metadata are MariaDB 10.11's (Id … Progress); the rows
//! are the node's logged-in connections of the session's account, or all of them for a
//! `connection_admin` account, as MariaDB shows them without and with PROCESS. Info is the
//! statement being run (cut to 100 characters without FULL); State is empty while a
//! connection sleeps and `executing` while it runs a command (the backend's own stages are
//! not known here). Connections to other slotgate nodes are not listed.

use super::Session;
use crate::frontend::{Reply, StreamError};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::packets::Column;
use mysql_common::value::Value;

/// utf8mb4_general_ci, as MariaDB sends the columns to a utf8mb4 client.
const UTF8MB4: u16 = 45;
const BINARY: u16 = 63;

fn column(name: &str, ty: ColumnType, charset: u16, length: u32, flags: ColumnFlags, decimals: u8) -> Column {
    Column::new(ty)
        .with_name(name.as_bytes())
        .with_org_name(name.as_bytes())
        .with_character_set(charset)
        .with_column_length(length)
        .with_flags(flags)
        .with_decimals(decimals)
}

fn columns(full: bool) -> Vec<Column> {
    let num = ColumnFlags::NOT_NULL_FLAG | ColumnFlags::BINARY_FLAG;
    let text = |name, length, not_null: bool| {
        let flags = if not_null { ColumnFlags::NOT_NULL_FLAG } else { ColumnFlags::empty() };
        column(name, ColumnType::MYSQL_TYPE_VAR_STRING, UTF8MB4, length, flags, 39)
    };
    let info = if full {
        column("Info", ColumnType::MYSQL_TYPE_LONG_BLOB, UTF8MB4, 201_326_592, ColumnFlags::empty(), 39)
    } else {
        text("Info", 400, false)
    };
    vec![
        column("Id", ColumnType::MYSQL_TYPE_LONGLONG, BINARY, 11, num, 0),
        text("User", 512, true),
        text("Host", 256, true),
        text("db", 256, false),
        text("Command", 64, true),
        column("Time", ColumnType::MYSQL_TYPE_LONG, BINARY, 7, num, 0),
        text("State", 120, false),
        info,
        column("Progress", ColumnType::MYSQL_TYPE_DOUBLE, BINARY, 7, num, 3),
    ]
}

fn bytes(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

impl Session {
    pub(super) async fn processlist(&mut self, full: bool, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let status = self.state.client_status();
        let cols = columns(full);
        reply.columns(&cols, status).await?;
        for p in self.shared.sessions.list(&self.state.user, self.connection_admin, full) {
            let state = if p.command == "Sleep" { "" } else { "executing" };
            let row = [
                Value::UInt(u64::from(p.id)),
                bytes(&p.user),
                bytes(&p.host),
                p.db.as_deref().map_or(Value::NULL, bytes),
                bytes(p.command),
                Value::UInt(p.seconds),
                bytes(state),
                p.info.as_deref().map_or(Value::NULL, bytes),
                bytes("0.000"),
            ];
            reply.text_row(&row).await?;
        }
        reply.end_rows(0, status).await
    }
}
