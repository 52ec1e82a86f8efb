//! Printing rewritten statements as self-contained SQL: bound parameters inlined as literals.
//!
//! Contract: `render` prints a statement (or query) with every numbered placeholder `?N`
//! replaced by `params[N]` as a correctly escaped MySQL literal, and unbound ones printed as
//! `?`. String parameters are quoted with `'` (quotes doubled) when they are valid UTF-8
//! without backslashes or control characters, otherwise written as hex (`_utf8mb4 X'..'` for
//! UTF-8 text, `X'..'` for binary), so the text means the same with or without
//! NO_BACKSLASH_ESCAPES. Literals written by the client are printed as written.

use super::key::placeholder_index;
use super::RouteError;
use mysql_common::value::Value as MyValue;
use sqlparser::ast::{Value, ValueWithSpan, VisitMut, VisitorMut};
use std::fmt::Write as _;
use std::ops::ControlFlow;

/// `node` printed with `params` inlined.
pub(crate) fn render<T: VisitMut + Clone + std::fmt::Display>(node: &T, params: &[MyValue]) -> Result<String, RouteError> {
    let mut copy = node.clone();
    let mut inliner = Inliner { params };
    if let ControlFlow::Break(e) = copy.visit(&mut inliner) {
        return Err(e);
    }
    Ok(copy.to_string())
}

struct Inliner<'a> {
    params: &'a [MyValue],
}

impl VisitorMut for Inliner<'_> {
    type Break = RouteError;

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<Self::Break> {
        if let Value::Placeholder(p) = &value.value {
            let replacement = match placeholder_index(p).and_then(|i| self.params.get(i)) {
                Some(param) => match literal(param) {
                    Ok(v) => v,
                    Err(e) => return ControlFlow::Break(e),
                },
                None => Value::Placeholder("?".into()),
            };
            value.value = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// A bound parameter as an SQL literal. Generated literals other than plain strings are carried
/// in `Value::Number`, which prints its text verbatim.
pub(crate) fn literal(v: &MyValue) -> Result<Value, RouteError> {
    Ok(match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::Number(i.to_string(), false),
        MyValue::UInt(u) => Value::Number(u.to_string(), false),
        MyValue::Float(f) if f.is_finite() => Value::Number(format!("{f}E0"), false),
        MyValue::Double(d) if d.is_finite() => Value::Number(format!("{d}E0"), false),
        MyValue::Float(_) | MyValue::Double(_) => {
            return Err(RouteError::unsupported("a NaN or infinite parameter cannot be sent to several shards"))
        }
        MyValue::Bytes(b) => bytes_literal(b),
        MyValue::Date(y, mo, d, h, mi, s, us) => {
            let mut t = format!("{y:04}-{mo:02}-{d:02}");
            if (*h, *mi, *s, *us) != (0, 0, 0, 0) {
                let _ = write!(t, " {h:02}:{mi:02}:{s:02}");
                if *us != 0 {
                    let _ = write!(t, ".{us:06}");
                }
            }
            Value::SingleQuotedString(t)
        }
        MyValue::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let mut t = format!("{}{hours:02}:{mi:02}:{s:02}", if *neg { "-" } else { "" });
            if *us != 0 {
                let _ = write!(t, ".{us:06}");
            }
            Value::SingleQuotedString(t)
        }
    })
}

fn bytes_literal(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(|c| c == '\\' || c.is_control()) => Value::SingleQuotedString(s.replace('\'', "''")),
        Ok(_) => Value::Number(format!("_utf8mb4 X'{}'", hex(b)), false),
        Err(_) => Value::HexStringLiteral(hex(b)),
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02X}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Parsed;

    fn show(sql: &str, params: &[MyValue]) -> String {
        let p = Parsed::parse(sql).unwrap();
        render(&p.statements[0], params).unwrap()
    }

    #[test]
    fn inlines_each_kind() {
        let params = [
            MyValue::Int(-3),
            MyValue::UInt(7),
            MyValue::Bytes(b"it's".to_vec()),
            MyValue::Bytes(b"a\\b".to_vec()),
            MyValue::Bytes(vec![0xff, 0x00]),
            MyValue::NULL,
            MyValue::Double(1.5),
            MyValue::Date(2024, 2, 3, 0, 0, 0, 0),
            MyValue::Date(2024, 2, 3, 4, 5, 6, 7),
            MyValue::Time(true, 1, 2, 3, 4, 0),
        ];
        let sql = "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";
        assert_eq!(
            show(sql, &params),
            "SELECT -3, 7, 'it''s', _utf8mb4 X'615C62', X'FF00', NULL, 1.5E0, '2024-02-03', '2024-02-03 04:05:06.000007', '-26:03:04', ?"
        );
        assert!(literal(&MyValue::Double(f64::NAN)).is_err());
    }

    #[test]
    fn inlined_text_parses_back() {
        let out = show("INSERT INTO t (a, b) VALUES (?, ?)", &[MyValue::Bytes(b"x'\"y".to_vec()), MyValue::Bytes(b"\n".to_vec())]);
        assert_eq!(out, "INSERT INTO t (a, b) VALUES ('x''\"y', _utf8mb4 X'0A')");
        assert!(Parsed::parse(&out).is_ok());
    }
}
