//! User variables across shards: after a statement that may assign some (`SET @v = ...`,
//! `SELECT ... INTO @v`, `@v := ...`, `CALL p(@out)`), their values are read back from the
//! connection that ran it and kept as SQL literals, which every other connection of the
//! session is given before it runs anything (see `backend::sync`).
//!
//! Contract: a literal gives the variable back with its type (integer, decimal, double,
//! string with its character set and collation, NULL), so that a statement that reads the
//! variable answers on any shard as it would where the variable was set.

use crate::backend::error::bounded;
use crate::backend::{BackendError, PooledConn};
use super::state::VarValue;
use mysql_async::prelude::Queryable;
use mysql_async::Row;
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::value::Value;

/// Reads the values of `names` on `conn`; `None` for a value no literal can give back (the
/// session then keeps its connection).
pub async fn read_back(conn: &mut PooledConn, names: &[String]) -> Result<Vec<(String, Option<VarValue>)>, BackendError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let cols: Vec<String> = names
        .iter()
        .map(|n| {
            let v = format!("@`{}`", n.replace('`', "``"));
            format!("{v}, HEX({v}), CHARSET({v}), COLLATION({v})")
        })
        .collect();
    let sql = format!("SELECT {}", cols.join(", "));
    let (shard, addr) = (conn.shard().to_string(), conn.addr().to_string());
    let limit = conn.query_timeout();
    let rows: Vec<Row> = bounded(limit, (&shard, &addr), conn.conn().query(sql)).await.map_err(|(e, _)| e)?;
    let row = rows.into_iter().next().ok_or_else(|| BackendError::Lost { shard: shard.clone(), addr: addr.clone(), reason: "no row reading user variables back".into() })?;
    let columns = row.columns();
    let values = row.unwrap();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = i * 4;
        let (Some(col), Some(v), Some(hex), Some(cs), Some(coll)) = (columns.get(at), values.get(at), values.get(at + 1), values.get(at + 2), values.get(at + 3)) else {
            return Err(BackendError::Lost { shard, addr, reason: "short row reading user variables back".into() });
        };
        out.push((name.clone(), render(col.column_type(), col.flags(), v, hex, cs, coll)));
    }
    Ok(out)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        _ => None,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The literal of one variable from `@v, HEX(@v), CHARSET(@v), COLLATION(@v)`.
pub fn render(ty: ColumnType, _flags: ColumnFlags, v: &Value, hex: &Value, cs: &Value, coll: &Value) -> Option<VarValue> {
    if *v == Value::NULL {
        return Some(VarValue { literal: "NULL".into(), text: None });
    }
    let shown = text(v)?;
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR
            if shown.bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
        {
            Some(VarValue { literal: shown, text: None })
        }
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL if shown.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.') => {
            Some(VarValue { literal: shown, text: None })
        }
        MYSQL_TYPE_DOUBLE | MYSQL_TYPE_FLOAT if shown.bytes().all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b)) => {
            let literal = if shown.contains(['e', 'E']) { shown } else { format!("{shown}E0") };
            Some(VarValue { literal, text: None })
        }
        _ => {
            let (hex, cs, coll) = (text(hex)?, text(cs)?, text(coll)?);
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !is_name(&cs) || !is_name(&coll) {
                return None;
            }
            let bytes: Vec<u8> = (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
            let literal = if cs == "binary" { format!("_binary X'{hex}'") } else { format!("_{cs} X'{hex}' COLLATE {coll}") };
            Some(VarValue { literal, text: Some(bytes) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn literals_keep_type_and_collation() {
        let f = ColumnFlags::empty();
        let r = |ty, v: Value, hex: &str, cs: &str, coll: &str| render(ty, f, &v, &b(hex), &b(cs), &b(coll)).map(|v| v.literal).unwrap_or_default();
        assert_eq!(r(ColumnType::MYSQL_TYPE_LONGLONG, b("-42"), "", "binary", "binary"), "-42");
        assert_eq!(r(ColumnType::MYSQL_TYPE_NEWDECIMAL, b("1.50"), "", "binary", "binary"), "1.50");
        assert_eq!(r(ColumnType::MYSQL_TYPE_DOUBLE, b("0.5"), "", "binary", "binary"), "0.5E0");
        assert_eq!(r(ColumnType::MYSQL_TYPE_DOUBLE, b("1e30"), "", "binary", "binary"), "1e30");
        assert_eq!(r(ColumnType::MYSQL_TYPE_VAR_STRING, b("ab"), "6162", "utf8mb4", "utf8mb4_general_ci"), "_utf8mb4 X'6162' COLLATE utf8mb4_general_ci");
        assert_eq!(r(ColumnType::MYSQL_TYPE_BLOB, b("ab"), "6162", "binary", "binary"), "_binary X'6162'");
        assert_eq!(r(ColumnType::MYSQL_TYPE_VAR_STRING, Value::NULL, "", "", ""), "NULL");
        // Anything that does not look like its type is not trusted.
        assert_eq!(r(ColumnType::MYSQL_TYPE_VAR_STRING, b("x"), "zz", "utf8mb4", "c"), "");
    }
}
