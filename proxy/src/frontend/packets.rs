//! Builders for the server-side packets: OK, EOF, ERR, column definitions, text and binary
//! rows, the prepared-statement OK. Pure functions over bytes, tested here.
//!
//! Contract: each function returns one packet payload (no header); what mysql_common can
//! serialize (ErrPacket, Column, Value) is serialized by it.

use crate::error::ClientError;
use mysql_common::constants::{ColumnType, StatusFlags};
use mysql_common::io::WriteMysqlExt;
use mysql_common::packets::{Column, ErrPacket, ServerError, SqlState};
use mysql_common::proto::MySerialize;
use mysql_common::value::Value;

/// What an OK packet reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    pub info: String,
}

/// An OK packet (header 0x00), or with `eof_header` the 0xFE OK that ends a result set when
/// CLIENT_DEPRECATE_EOF is on. `track` is `Some` when the client negotiated
/// CLIENT_SESSION_TRACK: the session state changes to report (empty: none), which set
/// SERVER_SESSION_STATE_CHANGED.
pub fn ok(info: &OkInfo, status: StatusFlags, eof_header: bool, track: Option<&[u8]>) -> Vec<u8> {
    let changes = track.filter(|t| !t.is_empty());
    let status = match changes {
        Some(_) => status | StatusFlags::SERVER_SESSION_STATE_CHANGED,
        None => status - StatusFlags::SERVER_SESSION_STATE_CHANGED,
    };
    let mut buf = Vec::with_capacity(16 + info.info.len() + changes.map_or(0, |c| c.len() + 9));
    buf.push(if eof_header { 0xFE } else { 0x00 });
    buf.write_lenenc_int(info.affected_rows).ok();
    buf.write_lenenc_int(info.last_insert_id).ok();
    buf.extend_from_slice(&status.bits().to_le_bytes());
    buf.extend_from_slice(&info.warnings.to_le_bytes());
    if !info.info.is_empty() || changes.is_some() {
        // Servers write the info as a length-encoded string, and libmariadb reads it so.
        buf.write_lenenc_str(info.info.as_bytes()).ok();
    }
    if let Some(c) = changes {
        buf.write_lenenc_str(c).ok();
    }
    buf
}

/// A pre-4.1-style EOF packet (used when the client did not ask for CLIENT_DEPRECATE_EOF).
pub fn eof(warnings: u16, status: StatusFlags) -> Vec<u8> {
    let mut buf = Vec::with_capacity(5);
    buf.push(0xFE);
    buf.extend_from_slice(&warnings.to_le_bytes());
    buf.extend_from_slice(&status.bits().to_le_bytes());
    buf
}

/// An ERR packet with code, SQLSTATE and message.
pub fn err(e: &ClientError) -> Vec<u8> {
    let msg = e.message.as_bytes();
    let packet = ErrPacket::Error(ServerError::new(e.code, Some(SqlState::new(e.state)), msg));
    let mut buf = Vec::with_capacity(16 + msg.len());
    packet.serialize(&mut buf);
    buf
}

/// The column-count packet that starts a result set.
pub fn column_count(n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9);
    buf.write_lenenc_int(n as u64).ok();
    buf
}

/// One column definition packet (Protocol::ColumnDefinition41), forwarded exactly as the
/// backend described it. Written here because mysql_common 0.37's `Column::serialize` swaps
/// the character set and column length fields.
pub fn column_def(col: &Column) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.write_lenenc_str(b"def").ok();
    for field in [col.schema_ref(), col.table_ref(), col.org_table_ref(), col.name_ref(), col.org_name_ref()] {
        buf.write_lenenc_str(field).ok();
    }
    buf.push(0x0c);
    buf.extend_from_slice(&col.character_set().to_le_bytes());
    buf.extend_from_slice(&col.column_length().to_le_bytes());
    buf.push(col.column_type() as u8);
    buf.extend_from_slice(&col.flags().bits().to_le_bytes());
    buf.push(col.decimals());
    buf.extend_from_slice(&[0, 0]);
    buf
}

/// A text-protocol row: each value as a length-encoded string, NULL as 0xFB.
pub fn text_row(values: &[Value]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(values.len() * 8);
    for v in values {
        match v {
            Value::NULL => buf.push(0xFB),
            Value::Bytes(b) => {
                buf.write_lenenc_str(b).ok();
            }
            other => {
                // Backends send text rows as bytes; a typed value is written in its SQL text form.
                let text = value_as_text(other);
                buf.write_lenenc_str(text.as_bytes()).ok();
            }
        }
    }
    buf
}

fn value_as_text(v: &Value) -> String {
    let s = v.as_sql(true);
    s.trim_matches('\'').to_string()
}

/// A binary-protocol row: header 0x00, NULL bitmap (offset 2), then each non-NULL value in
/// the wire form its column type demands.
pub fn binary_row(columns: &[Column], values: &[Value]) -> Vec<u8> {
    let bitmap_len = (values.len() + 7 + 2) / 8;
    let mut buf = Vec::with_capacity(1 + bitmap_len + values.len() * 8);
    buf.push(0x00);
    let bitmap_at = buf.len();
    buf.resize(bitmap_at + bitmap_len, 0);
    for (i, v) in values.iter().enumerate() {
        if matches!(v, Value::NULL) {
            let bit = i + 2;
            buf[bitmap_at + bit / 8] |= 1 << (bit % 8);
            continue;
        }
        let ty = columns.get(i).map(|c| c.column_type()).unwrap_or(ColumnType::MYSQL_TYPE_VAR_STRING);
        write_binary_value(&mut buf, ty, v);
    }
    buf
}

fn write_binary_value(buf: &mut Vec<u8>, ty: ColumnType, v: &Value) {
    use ColumnType::*;
    let as_i64 = |v: &Value| -> i64 {
        match v {
            Value::Int(x) => *x,
            Value::UInt(x) => *x as i64,
            Value::Float(x) => *x as i64,
            Value::Double(x) => *x as i64,
            Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => 0,
        }
    };
    match ty {
        MYSQL_TYPE_TINY => buf.push(as_i64(v) as u8),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => buf.extend_from_slice(&(as_i64(v) as u16).to_le_bytes()),
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => buf.extend_from_slice(&(as_i64(v) as u32).to_le_bytes()),
        MYSQL_TYPE_LONGLONG => match v {
            Value::UInt(x) => buf.extend_from_slice(&x.to_le_bytes()),
            other => buf.extend_from_slice(&as_i64(other).to_le_bytes()),
        },
        MYSQL_TYPE_FLOAT => match v {
            Value::Float(x) => buf.extend_from_slice(&x.to_le_bytes()),
            Value::Double(x) => buf.extend_from_slice(&(*x as f32).to_le_bytes()),
            other => buf.extend_from_slice(&(as_i64(other) as f32).to_le_bytes()),
        },
        MYSQL_TYPE_DOUBLE => match v {
            Value::Double(x) => buf.extend_from_slice(&x.to_le_bytes()),
            Value::Float(x) => buf.extend_from_slice(&(*x as f64).to_le_bytes()),
            other => buf.extend_from_slice(&(as_i64(other) as f64).to_le_bytes()),
        },
        _ => match v {
            // Dates, times and byte strings already carry their binary form.
            Value::Date(..) | Value::Time(..) | Value::Bytes(_) => v.serialize(buf),
            other => {
                buf.write_lenenc_str(value_as_text(other).as_bytes()).ok();
            }
        },
    }
}

/// COM_STMT_PREPARE_OK header.
pub fn stmt_prepare_ok(stmt_id: u32, num_columns: u16, num_params: u16, warnings: u16) -> Vec<u8> {
    let mut buf = Vec::with_capacity(12);
    buf.push(0x00);
    buf.extend_from_slice(&stmt_id.to_le_bytes());
    buf.extend_from_slice(&num_columns.to_le_bytes());
    buf.extend_from_slice(&num_params.to_le_bytes());
    buf.push(0x00);
    buf.extend_from_slice(&warnings.to_le_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ClientError, ErrorKind};

    #[test]
    fn ok_packet_layout() {
        let info = OkInfo { affected_rows: 3, last_insert_id: 300, warnings: 1, info: String::new() };
        let p = ok(&info, StatusFlags::SERVER_STATUS_AUTOCOMMIT, false, None);
        assert_eq!(p, vec![0x00, 3, 0xFC, 0x2C, 0x01, 0x02, 0x00, 0x01, 0x00]);
        assert_eq!(ok(&OkInfo::default(), StatusFlags::empty(), true, None)[0], 0xFE);
        // With session tracking: the info (empty) precedes the changes, and the flag is set.
        let t = ok(&OkInfo::default(), StatusFlags::empty(), false, Some(&[1, 1, 0]));
        assert_eq!(t, [0, 0, 0, 0, 0x40, 0, 0, 0, 3, 1, 1, 0]);
    }

    #[test]
    fn err_packet_layout() {
        let e = ClientError::new(ErrorKind::Auth, 1045, b"28000", "no");
        assert_eq!(err(&e), b"\xff\x15\x04#28000no".to_vec());
    }

    #[test]
    fn text_row_null_and_bytes() {
        assert_eq!(text_row(&[Value::NULL, Value::Bytes(b"ab".to_vec())]), vec![0xFB, 2, b'a', b'b']);
    }

    #[test]
    fn column_definition_round_trips_through_mysql_common() {
        use mysql_common::constants::ColumnFlags;
        use mysql_common::io::ParseBuf;
        let col = Column::new(ColumnType::MYSQL_TYPE_LONG)
            .with_schema(b"shop")
            .with_table(b"t")
            .with_org_table(b"t")
            .with_name(b"id")
            .with_org_name(b"id")
            .with_character_set(63)
            .with_column_length(11)
            .with_flags(ColumnFlags::NOT_NULL_FLAG | ColumnFlags::PRI_KEY_FLAG)
            .with_decimals(0);
        let bytes = column_def(&col);
        let back: Column = ParseBuf(&bytes).parse(()).unwrap();
        assert_eq!(back.character_set(), 63);
        assert_eq!(back.column_length(), 11);
        assert_eq!(back.name_str(), "id");
        assert_eq!(back.schema_str(), "shop");
        assert_eq!(back.flags(), col.flags());
    }

    #[test]
    fn binary_row_uses_column_widths() {
        let cols = [
            Column::new(ColumnType::MYSQL_TYPE_TINY),
            Column::new(ColumnType::MYSQL_TYPE_LONG),
            Column::new(ColumnType::MYSQL_TYPE_VAR_STRING),
        ];
        let row = binary_row(&cols, &[Value::Int(-1), Value::NULL, Value::Bytes(b"x".to_vec())]);
        // header, bitmap (bit 3 set for column 1), tiny, string
        assert_eq!(row, vec![0x00, 0b0000_1000, 0xFF, 1, b'x']);
    }
}
