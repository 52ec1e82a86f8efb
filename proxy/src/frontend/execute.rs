//! COM_STMT_EXECUTE parameters: the packet mysql_common can only write, read here.
//!
//! Contract: `parse_execute` never panics; it needs the statement's parameter count and the
//! types bound by an earlier execute (clients send types only when they change), and fills in
//! values sent before with COM_STMT_SEND_LONG_DATA.

use crate::error::ClientError;
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::value::{BinValue, Value, ValueDeserializer};
use std::collections::HashMap;

/// A parameter's type as the client bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamType {
    pub column_type: ColumnType,
    pub unsigned: bool,
}

/// A decoded execute request.
#[derive(Debug)]
pub struct ExecuteRequest {
    pub stmt_id: u32,
    pub params: Vec<Value>,
    /// The client asked for a server-side cursor (CURSOR_TYPE_READ_ONLY or stronger).
    pub cursor: bool,
}

/// Types a client may bind a parameter as (what clients send and the binary protocol's value
/// decoder reads; the server-internal types like TIMESTAMP2 are not among them, and
/// mysql_common's decoder would panic on those: found by fuzzing).
fn bindable(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_SET | MYSQL_TYPE_ENUM | MYSQL_TYPE_DECIMAL | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_BIT | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_GEOMETRY | MYSQL_TYPE_JSON | MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR | MYSQL_TYPE_LONG
            | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIME | MYSQL_TYPE_NULL
    )
}

/// The parameter types: read at `at` when `sent` ((type, flags) pairs, remembered in
/// `bound`), else those bound before, which must exist and fit the statement. Returns where
/// the values start.
fn read_types(body: &[u8], mut at: usize, sent: bool, num_params: usize, bound: &mut Option<Vec<ParamType>>, command: &str) -> Result<usize, ClientError> {
    let bad = |what: &str| ClientError::malformed(&format!("{command}: {what}"));
    if sent {
        let types = body.get(at..at + 2 * num_params).ok_or_else(|| bad("parameter types missing"))?;
        at += 2 * num_params;
        let parsed = types
            .chunks_exact(2)
            .map(|t| match ColumnType::try_from(t[0]) {
                Ok(column_type) if bindable(column_type) => Ok(ParamType { column_type, unsigned: t[1] & 0x80 != 0 }),
                _ => Err(bad(&format!("parameter type {} cannot be bound", t[0]))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        *bound = Some(parsed);
    }
    let types = bound.as_ref().ok_or_else(|| bad("parameters were never bound"))?;
    if types.len() != num_params {
        return Err(bad("bound parameter count differs from the statement's"));
    }
    Ok(at)
}

/// Reads the statement id (to look the statement up before the full parse).
pub fn stmt_id(body: &[u8]) -> Result<u32, ClientError> {
    body.get(0..4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| ClientError::malformed("COM_STMT_EXECUTE too short"))
}

/// Parses the parameters of a COM_STMT_EXECUTE body (after the command byte).
pub fn parse_execute(
    body: &[u8],
    num_params: usize,
    bound: &mut Option<Vec<ParamType>>,
    long_data: &mut HashMap<u16, Vec<u8>>,
) -> Result<ExecuteRequest, ClientError> {
    let bad = |what: &str| ClientError::malformed(&format!("COM_STMT_EXECUTE: {what}"));
    let stmt_id = stmt_id(body)?;
    // flags (1) and iteration count (4) follow the id.
    let mut at = 9usize;
    if body.len() < at {
        return Err(bad("packet too short"));
    }
    let cursor = body[4] & 0x07 != 0;
    if num_params == 0 {
        return Ok(ExecuteRequest { stmt_id, params: Vec::new(), cursor });
    }
    let bitmap_len = num_params.div_ceil(8);
    let bitmap = body.get(at..at + bitmap_len).ok_or_else(|| bad("NULL bitmap missing"))?;
    at += bitmap_len;
    let new_bound = *body.get(at).ok_or_else(|| bad("new-params-bound flag missing"))?;
    at += 1;
    let at = read_types(body, at, new_bound == 1, num_params, bound, "COM_STMT_EXECUTE")?;
    let types = bound.as_deref().unwrap_or(&[]);
    let mut buf = ParseBuf(body.get(at..).unwrap_or(&[]));
    let mut params = Vec::with_capacity(num_params);
    for (i, ty) in types.iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            params.push(Value::NULL);
            continue;
        }
        if let Some(data) = long_data.remove(&(i as u16)) {
            params.push(Value::Bytes(data));
            continue;
        }
        if ty.column_type == ColumnType::MYSQL_TYPE_NULL {
            params.push(Value::NULL);
            continue;
        }
        if !bindable(ty.column_type) {
            return Err(bad(&format!("parameter {} has a type that cannot be bound", i + 1)));
        }
        let flags = if ty.unsigned { ColumnFlags::UNSIGNED_FLAG } else { ColumnFlags::empty() };
        let v: ValueDeserializer<BinValue> = buf
            .parse((ty.column_type, flags))
            .map_err(|_| bad(&format!("value of parameter {} is truncated", i + 1)))?;
        params.push(v.0);
    }
    long_data.clear();
    Ok(ExecuteRequest { stmt_id, params, cursor })
}

/// A decoded COM_STMT_BULK_EXECUTE (MariaDB): one statement, several rows of parameters.
#[derive(Debug)]
pub struct BulkRequest {
    pub stmt_id: u32,
    pub rows: Vec<Vec<Value>>,
}

/// SEND_TYPES_TO_SERVER: the parameter types follow the flags.
const BULK_SEND_TYPES: u16 = 128;
/// SEND_UNIT_RESULTS (MariaDB 11.5+): a result per row, which slotgate does not offer.
const BULK_UNIT_RESULTS: u16 = 64;

/// Parses a COM_STMT_BULK_EXECUTE body (after the command byte): id, flags, types when sent
/// (else those bound before), then rows of (indicator, value) per parameter until the end.
/// The DEFAULT and IGNORE indicators (the column's default, leave unchanged) have no value a
/// statement parameter can carry: refused.
pub fn parse_bulk(body: &[u8], num_params: usize, bound: &mut Option<Vec<ParamType>>) -> Result<BulkRequest, ClientError> {
    let bad = |what: &str| ClientError::malformed(&format!("COM_STMT_BULK_EXECUTE: {what}"));
    let stmt_id = stmt_id(body)?;
    let flags = body.get(4..6).map(|f| u16::from_le_bytes([f[0], f[1]])).ok_or_else(|| bad("packet too short"))?;
    if flags & BULK_UNIT_RESULTS != 0 {
        return Err(ClientError::not_supported("COM_STMT_BULK_EXECUTE with a result per row (SEND_UNIT_RESULTS)"));
    }
    if num_params == 0 {
        return Err(bad("the statement has no parameters"));
    }
    let at = read_types(body, 6, flags & BULK_SEND_TYPES != 0, num_params, bound, "COM_STMT_BULK_EXECUTE")?;
    let types = bound.as_deref().unwrap_or(&[]);
    let mut buf = ParseBuf(body.get(at..).unwrap_or(&[]));
    let mut rows = Vec::new();
    while !buf.is_empty() {
        let mut row = Vec::with_capacity(num_params);
        for (i, ty) in types.iter().enumerate() {
            let indicator = buf.checked_eat_u8().ok_or_else(|| bad(&format!("row {} is truncated", rows.len() + 1)))?;
            match indicator {
                0 => {}
                1 => {
                    row.push(Value::NULL);
                    continue;
                }
                2 | 3 => return Err(ClientError::not_supported("DEFAULT or IGNORE indicators in COM_STMT_BULK_EXECUTE; send the values")),
                other => return Err(bad(&format!("unknown indicator {other}"))),
            }
            if ty.column_type == ColumnType::MYSQL_TYPE_NULL {
                row.push(Value::NULL);
                continue;
            }
            let flags = if ty.unsigned { ColumnFlags::UNSIGNED_FLAG } else { ColumnFlags::empty() };
            let v: ValueDeserializer<BinValue> = buf
                .parse((ty.column_type, flags))
                .map_err(|_| bad(&format!("value of parameter {} in row {} is truncated", i + 1, rows.len() + 1)))?;
            row.push(v.0);
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(bad("no rows"));
    }
    Ok(BulkRequest { stmt_id, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(bound: bool, types: &[(u8, u8)], nulls: u8, values: &[u8]) -> Vec<u8> {
        let mut p = vec![7, 0, 0, 0, 0, 1, 0, 0, 0, nulls, u8::from(bound)];
        if bound {
            for (t, f) in types {
                p.push(*t);
                p.push(*f);
            }
        }
        p.extend_from_slice(values);
        p
    }

    #[test]
    fn decodes_ints_strings_and_nulls() {
        let mut bound = None;
        let mut long = HashMap::new();
        // LONGLONG 5, NULL, VAR_STRING "ab"
        let mut vals = 5i64.to_le_bytes().to_vec();
        vals.extend_from_slice(&[2, b'a', b'b']);
        let p = packet(true, &[(8, 0), (8, 0), (253, 0)], 0b010, &vals);
        let r = parse_execute(&p, 3, &mut bound, &mut long).unwrap();
        assert_eq!(r.stmt_id, 7);
        assert_eq!(r.params, vec![Value::Int(5), Value::NULL, Value::Bytes(b"ab".to_vec())]);
        // Second execute reuses the bound types.
        let p2 = packet(false, &[], 0b110, &6i64.to_le_bytes());
        let r2 = parse_execute(&p2, 3, &mut bound, &mut long).unwrap();
        assert_eq!(r2.params, vec![Value::Int(6), Value::NULL, Value::NULL]);
    }

    #[test]
    fn truncated_or_unbound_is_an_error_not_a_panic() {
        let mut long = HashMap::new();
        let p = packet(true, &[(8, 0)], 0, &[1, 2]);
        assert!(parse_execute(&p, 1, &mut None, &mut long).is_err());
        let p = packet(false, &[], 0, &[1]);
        assert!(parse_execute(&p, 1, &mut None, &mut long).is_err());
        for cut in 0..p.len() {
            let _ = parse_execute(&p[..cut], 1, &mut None, &mut long);
        }
    }

    #[test]
    fn server_internal_types_are_refused_not_decoded() {
        let mut long = HashMap::new();
        // TIMESTAMP2 (17), DATETIME2 (18), TIME2 (19): mysql_common's decoder panics on them.
        for t in [17u8, 18, 19, 20, 0xf2, 0xf4] {
            let p = packet(true, &[(t, 0)], 0, &[4, 1, 2, 3, 4]);
            assert!(parse_execute(&p, 1, &mut None, &mut long).is_err(), "type {t}");
        }
    }

    #[test]
    fn long_data_fills_the_parameter() {
        let mut long = HashMap::from([(0u16, b"big".to_vec())]);
        let p = packet(true, &[(252, 0)], 0, &[]);
        let r = parse_execute(&p, 1, &mut None, &mut long).unwrap();
        assert_eq!(r.params, vec![Value::Bytes(b"big".to_vec())]);
    }

    #[test]
    fn bulk_rows_with_types_nulls_and_refusals() {
        // id 7, SEND_TYPES, two params (LONG, VAR_STRING), rows (1,'a') (NULL,'bc').
        let mut p = vec![7, 0, 0, 0, 128, 0, 3, 0, 253, 0];
        p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, b'a']);
        p.extend_from_slice(&[1, 0, 2, b'b', b'c']);
        let mut bound = None;
        let r = parse_bulk(&p, 2, &mut bound).unwrap();
        assert_eq!(r.stmt_id, 7);
        assert_eq!(r.rows, vec![vec![Value::Int(1), Value::Bytes(b"a".to_vec())], vec![Value::NULL, Value::Bytes(b"bc".to_vec())]]);
        // Types remembered: a later bulk may omit them.
        let again = [7, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, b'z'];
        assert_eq!(parse_bulk(&again, 2, &mut bound).unwrap().rows.len(), 1);
        // Truncated row, DEFAULT indicator, unit results, no types ever: errors, no panic.
        assert!(parse_bulk(&again[..10], 2, &mut bound).is_err());
        assert_eq!(parse_bulk(&[7, 0, 0, 0, 0, 0, 2, 0], 2, &mut bound).unwrap_err().code, 1235);
        assert_eq!(parse_bulk(&[7, 0, 0, 0, 64, 0], 2, &mut bound).unwrap_err().code, 1235);
        assert!(parse_bulk(&[7, 0, 0, 0, 0, 0, 0], 1, &mut None).is_err());
        for n in 0..p.len() {
            let _ = parse_bulk(&p[..n], 2, &mut None);
        }
    }
}
