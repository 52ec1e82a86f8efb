//! Ordering and equality of result values the way MariaDB orders them for a column: numbers
//! by value, temporal values in time order, strings by a case-insensitive approximation of
//! the column's collation (binary strings byte by byte), NULL first.
//!
//! Contract: pure and total. Known approximation: accent-insensitive collations
//! (`utf8mb4_general_ci` treats 'é' = 'e') compare accents as different characters.

use super::number::Number;
use mysql_common::constants::ColumnType;
use mysql_common::packets::Column;
use mysql_common::value::Value;
use std::cmp::Ordering;

/// How a column's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collate {
    Numeric,
    Binary,
    CaseInsensitive,
}

impl Collate {
    pub fn of(col: &Column) -> Collate {
        use ColumnType::*;
        match col.column_type() {
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR
            | MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => Collate::Numeric,
            MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_STRING | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET
            | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB | MYSQL_TYPE_JSON
                if col.character_set() != 63 =>
            {
                Collate::CaseInsensitive
            }
            _ => Collate::Binary,
        }
    }
}

fn fold(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match std::str::from_utf8(b) {
        Ok(s) if s.bytes().any(|c| c.is_ascii_uppercase() || c >= 0x80) => s.to_lowercase().into_bytes().into(),
        Ok(_) => b.into(),
        Err(_) => b.to_ascii_lowercase().into(),
    }
}

/// Compares two values of one column (NULL sorts first).
pub fn compare(a: &Value, b: &Value, collate: Collate) -> Ordering {
    match (a, b) {
        (Value::NULL, Value::NULL) => Ordering::Equal,
        (Value::NULL, _) => Ordering::Less,
        (_, Value::NULL) => Ordering::Greater,
        (Value::Date(..), Value::Date(..)) | (Value::Time(..), Value::Time(..)) => compare_temporal(a, b),
        _ => match collate {
            Collate::Numeric => match (Number::from_value(a), Number::from_value(b)) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => bytes(a).cmp(&bytes(b)),
            },
            Collate::Binary => bytes(a).cmp(&bytes(b)),
            Collate::CaseInsensitive => fold(&bytes(a)).cmp(&fold(&bytes(b))).then_with(|| Ordering::Equal),
        },
    }
}

fn compare_temporal(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Date(y1, m1, d1, h1, i1, s1, u1), Value::Date(y2, m2, d2, h2, i2, s2, u2)) => {
            (y1, m1, d1, h1, i1, s1, u1).cmp(&(y2, m2, d2, h2, i2, s2, u2))
        }
        (Value::Time(n1, d1, h1, i1, s1, u1), Value::Time(n2, d2, h2, i2, s2, u2)) => {
            let micros = |n: bool, d: u32, h: u8, i: u8, s: u8, u: u32| {
                let v = ((((d as i64 * 24 + h as i64) * 60 + i as i64) * 60 + s as i64) * 1_000_000) + u as i64;
                if n { -v } else { v }
            };
            micros(*n1, *d1, *h1, *i1, *s1, *u1).cmp(&micros(*n2, *d2, *h2, *i2, *s2, *u2))
        }
        _ => Ordering::Equal,
    }
}

fn bytes(v: &Value) -> std::borrow::Cow<'_, [u8]> {
    match v {
        Value::Bytes(b) => b.as_slice().into(),
        other => other.as_sql(true).trim_matches('\'').as_bytes().to_vec().into(),
    }
}

/// A byte key under which equal values (for DISTINCT and GROUP BY) are identical.
pub fn key_bytes(v: &Value, collate: Collate, out: &mut Vec<u8>) {
    match v {
        Value::NULL => out.push(0),
        _ => {
            out.push(1);
            let b: Vec<u8> = match collate {
                Collate::Numeric => match Number::from_value(v) {
                    Some(n) => normalize_number(n).into_bytes(),
                    None => bytes(v).into_owned(),
                },
                Collate::Binary => bytes(v).into_owned(),
                Collate::CaseInsensitive => fold(&bytes(v)).into_owned(),
            };
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(&b);
        }
    }
}

fn normalize_number(n: Number) -> String {
    match n {
        Number::Dec { mut mant, mut scale } => {
            while scale > 0 && mant % 10 == 0 {
                mant /= 10;
                scale -= 1;
            }
            Number::Dec { mant, scale }.to_text(None)
        }
        other => other.to_text(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn orders_like_mariadb() {
        assert_eq!(compare(&b("9"), &b("10"), Collate::Numeric), Ordering::Less);
        assert_eq!(compare(&b("-1.5"), &b("-1.25"), Collate::Numeric), Ordering::Less);
        assert_eq!(compare(&b("apple"), &b("Banana"), Collate::CaseInsensitive), Ordering::Less);
        assert_eq!(compare(&b("apple"), &b("Banana"), Collate::Binary), Ordering::Greater);
        assert_eq!(compare(&Value::NULL, &b("0"), Collate::Numeric), Ordering::Less);
        assert_eq!(compare(&Value::Int(3), &Value::UInt(2), Collate::Numeric), Ordering::Greater);
        let (mut k1, mut k2) = (vec![], vec![]);
        key_bytes(&b("1.50"), Collate::Numeric, &mut k1);
        key_bytes(&b("1.5"), Collate::Numeric, &mut k2);
        assert_eq!(k1, k2);
    }
}
