//! Shard-key values read from SQL: literals and bound `?` parameters as [`KeyValue`]s, and
//! what a WHERE/ON condition implies about shard keys ("pins").
//!
//! Contract: pure and total. A value is `Known` only when it hashes as MySQL's CRC32 sees it:
//! integer literals (also with unary minus) as `Int`/`UInt`; decimals as `Decimal`, as written,
//! when written the way MySQL prints them back (`1.50`, `0.5`; not `.5` or `01.5`); string
//! literals as their bytes after MySQL unescaping (backslash escapes on, i.e. no
//! NO_BACKSLASH_ESCAPES); bound `Int`/`UInt`/`Bytes` parameters directly. Anything else (hex
//! literals, floats with exponents, expressions, dates) is `Unknown`, which makes the router
//! route more widely (or refuse an INSERT), never wrongly.
//! A pin maps a table reference to the set of shards that can hold its matching rows; it is
//! derived from `=` and `IN (...)` on the key, through AND (intersection) and OR (union).

use mysql_common::value::Value as MyValue;
use slotgate_shared::KeyValue;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use std::collections::{BTreeSet, HashMap};

/// Shard indices.
pub(crate) type ShardSet = BTreeSet<usize>;

/// A shard-key value as the statement gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyLit {
    Known(KeyValue),
    /// NULL: matches no row (and is not a valid key to insert).
    Null,
    Unknown,
}

/// The 0-based index of a placeholder numbered by the parser (`"?3"` -> 3).
pub(crate) fn placeholder_index(p: &str) -> Option<usize> {
    let digits = p.strip_prefix('?')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The key value of `expr`, reading placeholders from `params`.
pub(crate) fn key_of_expr(expr: &Expr, params: &[MyValue]) -> KeyLit {
    match expr {
        Expr::Nested(e) => key_of_expr(e, params),
        Expr::Value(v) => key_of_value(&v.value, params),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => match key_of_expr(expr, params) {
            KeyLit::Known(k @ (KeyValue::Int(_) | KeyValue::UInt(_) | KeyValue::Decimal(_))) => KeyLit::Known(k),
            KeyLit::Null => KeyLit::Null,
            _ => KeyLit::Unknown,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match key_of_expr(expr, params) {
            KeyLit::Known(k) => negate(k).map_or(KeyLit::Unknown, KeyLit::Known),
            KeyLit::Null => KeyLit::Null,
            KeyLit::Unknown => KeyLit::Unknown,
        },
        // `_utf8mb4'abc'`: the bytes are the same in these character sets.
        Expr::Prefixed { prefix, value } => {
            let cs = prefix.value.to_ascii_lowercase();
            if matches!(cs.as_str(), "_utf8mb4" | "_utf8" | "_utf8mb3" | "_binary") {
                match value.as_ref() {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) => KeyLit::Known(KeyValue::Bytes(unescape(s, '\''))),
                        Value::DoubleQuotedString(s) => KeyLit::Known(KeyValue::Bytes(unescape(s, '"'))),
                        _ => KeyLit::Unknown,
                    },
                    _ => KeyLit::Unknown,
                }
            } else {
                KeyLit::Unknown
            }
        }
        _ => KeyLit::Unknown,
    }
}

fn key_of_value(v: &Value, params: &[MyValue]) -> KeyLit {
    match v {
        Value::Null => KeyLit::Null,
        Value::Number(n, false) => number_key(n).map_or(KeyLit::Unknown, KeyLit::Known),
        Value::SingleQuotedString(s) => KeyLit::Known(KeyValue::Bytes(unescape(s, '\''))),
        Value::DoubleQuotedString(s) => KeyLit::Known(KeyValue::Bytes(unescape(s, '"'))),
        Value::Placeholder(p) => match placeholder_index(p).and_then(|i| params.get(i)) {
            Some(MyValue::NULL) => KeyLit::Null,
            Some(MyValue::Int(i)) => KeyLit::Known(KeyValue::Int(*i)),
            Some(MyValue::UInt(u)) => KeyLit::Known(KeyValue::UInt(*u)),
            Some(MyValue::Bytes(b)) => KeyLit::Known(KeyValue::Bytes(b.clone())),
            _ => KeyLit::Unknown,
        },
        _ => KeyLit::Unknown,
    }
}

/// `42` -> Int, `18446744073709551615` -> UInt, `1.50` -> Decimal("1.50"); others None.
fn number_key(n: &str) -> Option<KeyValue> {
    if n.is_empty() {
        return None;
    }
    if n.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = n.parse::<i64>() {
            return Some(KeyValue::Int(i));
        }
        return n.parse::<u64>().ok().map(KeyValue::UInt);
    }
    // Only the form MySQL prints back the same (`1.50`, `0.5`): not `.5`, `1.`, `01.5`.
    let (int, frac) = n.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(int) && digits(frac) && (int == "0" || !int.starts_with('0')) {
        return Some(KeyValue::Decimal(n.to_string()));
    }
    None
}

fn negate(k: KeyValue) -> Option<KeyValue> {
    match k {
        KeyValue::Int(i) => i.checked_neg().map(KeyValue::Int),
        KeyValue::UInt(u) if u == 1u64 << 63 => Some(KeyValue::Int(i64::MIN)),
        KeyValue::Decimal(d) => Some(KeyValue::Decimal(match d.strip_prefix('-') {
            Some(pos) => pos.to_string(),
            None => format!("-{d}"),
        })),
        _ => None,
    }
}

/// The bytes of a string literal's raw text (between the quotes), unescaped as MySQL does:
/// a doubled quote is one quote; `\0 \b \n \r \t \Z \\ \' \"` are escapes; `\%` and `\_` keep
/// their backslash; any other `\x` is `x`.
pub(crate) fn unescape(raw: &str, quote: char) -> Vec<u8> {
    let b = raw.as_bytes();
    let q = quote as u8;
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            let n = b[i + 1];
            match n {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(26),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', n]),
                other => out.push(other),
            }
            i += 2;
        } else if c == q && b.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level AND-ed parts of a condition.
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) => stack.push(inner),
            other => out.push(other),
        }
    }
    out
}

/// The top-level OR-ed parts of a condition.
fn disjuncts(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::Or, right } => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::Or, .. } | Expr::Nested(_)) => {
                stack.push(inner)
            }
            other => out.push(other),
        }
    }
    out
}

/// What `expr` being true implies: table-reference id -> shards its key can be on.
/// `col` resolves a column expression to the id of the table whose shard key it is; `val` gives
/// the shards of a value expression (empty for NULL, None when unknown).
/// AND and OR chains are flattened without recursion; conditions alternating AND/OR more than
/// `MAX_PIN_DEPTH` levels deep imply nothing (bounded stack).
pub(crate) fn implied_pins(
    expr: &Expr,
    col: &dyn Fn(&Expr) -> Option<usize>,
    val: &dyn Fn(&Expr) -> Option<ShardSet>,
) -> HashMap<usize, ShardSet> {
    pins_at(expr, col, val, 0)
}

const MAX_PIN_DEPTH: usize = 100;

fn pins_at(
    expr: &Expr,
    col: &dyn Fn(&Expr) -> Option<usize>,
    val: &dyn Fn(&Expr) -> Option<ShardSet>,
    depth: usize,
) -> HashMap<usize, ShardSet> {
    if depth > MAX_PIN_DEPTH {
        return HashMap::new();
    }
    match expr {
        Expr::Nested(_) | Expr::BinaryOp { op: BinaryOperator::And, .. } => {
            let mut acc: HashMap<usize, ShardSet> = HashMap::new();
            for part in conjuncts(expr) {
                for (id, set) in pins_at(part, col, val, depth + 1) {
                    match acc.get_mut(&id) {
                        Some(existing) => *existing = existing.intersection(&set).copied().collect(),
                        None => {
                            acc.insert(id, set);
                        }
                    }
                }
            }
            acc
        }
        Expr::BinaryOp { op: BinaryOperator::Or, .. } => {
            let mut parts = disjuncts(expr).into_iter();
            let Some(first) = parts.next() else { return HashMap::new() };
            let mut acc = pins_at(first, col, val, depth + 1);
            for part in parts {
                if acc.is_empty() {
                    break;
                }
                let other = pins_at(part, col, val, depth + 1);
                acc = acc
                    .into_iter()
                    .filter_map(|(id, set)| other.get(&id).map(|o| (id, set.union(o).copied().collect())))
                    .collect();
            }
            acc
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            // A value is only read beside a key column (reading it records its slot).
            let pin = col(left)
                .and_then(|id| val(right).map(|set| (id, set)))
                .or_else(|| col(right).and_then(|id| val(left).map(|set| (id, set))));
            pin.into_iter().collect()
        }
        Expr::InList { expr, list, negated: false } => {
            let mut out = HashMap::new();
            if let Some(id) = col(expr) {
                let mut all = ShardSet::new();
                for item in list {
                    match val(item) {
                        Some(s) => all.extend(s),
                        None => return out,
                    }
                }
                out.insert(id, all);
            }
            out
        }
        _ => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Parsed;
    use sqlparser::ast::{SetExpr, Statement};

    fn where_of(sql: &str) -> Expr {
        let p = Parsed::parse(sql).unwrap();
        let Statement::Query(q) = &p.statements[0] else { panic!() };
        let SetExpr::Select(s) = &*q.body else { panic!() };
        s.selection.clone().unwrap()
    }

    fn rhs(sql: &str) -> Expr {
        match where_of(sql) {
            Expr::BinaryOp { right, .. } => *right,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literal_keys() {
        let k = |sql: &str| key_of_expr(&rhs(sql), &[]);
        assert_eq!(k("SELECT 1 WHERE k = 42"), KeyLit::Known(KeyValue::Int(42)));
        assert_eq!(k("SELECT 1 WHERE k = 042"), KeyLit::Known(KeyValue::Int(42)));
        assert_eq!(k("SELECT 1 WHERE k = -7"), KeyLit::Known(KeyValue::Int(-7)));
        assert_eq!(k("SELECT 1 WHERE k = -9223372036854775808"), KeyLit::Known(KeyValue::Int(i64::MIN)));
        assert_eq!(k("SELECT 1 WHERE k = 18446744073709551615"), KeyLit::Known(KeyValue::UInt(u64::MAX)));
        assert_eq!(k("SELECT 1 WHERE k = 1.50"), KeyLit::Known(KeyValue::Decimal("1.50".into())));
        assert_eq!(k("SELECT 1 WHERE k = -1.50"), KeyLit::Known(KeyValue::Decimal("-1.50".into())));
        assert_eq!(k("SELECT 1 WHERE k = 'a''b'"), KeyLit::Known(KeyValue::Bytes(b"a'b".to_vec())));
        assert_eq!(k(r"SELECT 1 WHERE k = 'a\\b\n\%'"), KeyLit::Known(KeyValue::Bytes(b"a\\b\n\\%".to_vec())));
        assert_eq!(k(r#"SELECT 1 WHERE k = "x\"y""#), KeyLit::Known(KeyValue::Bytes(b"x\"y".to_vec())));
        assert_eq!(k("SELECT 1 WHERE k = _utf8mb4'z'"), KeyLit::Known(KeyValue::Bytes(b"z".to_vec())));
        assert_eq!(k("SELECT 1 WHERE k = NULL"), KeyLit::Null);
        assert_eq!(k("SELECT 1 WHERE k = 1e3"), KeyLit::Unknown);
        assert_eq!(k("SELECT 1 WHERE k = 0.5"), KeyLit::Known(KeyValue::Decimal("0.5".into())));
        assert_eq!(k("SELECT 1 WHERE k = .5"), KeyLit::Unknown);
        assert_eq!(k("SELECT 1 WHERE k = 01.5"), KeyLit::Unknown);
        assert_eq!(k("SELECT 1 WHERE k = X'41'"), KeyLit::Unknown);
        assert_eq!(k("SELECT 1 WHERE k = 1 + 1"), KeyLit::Unknown);
        assert_eq!(k("SELECT 1 WHERE k = _latin2'z'"), KeyLit::Unknown);
    }

    #[test]
    fn parameter_keys() {
        let e = rhs("SELECT 1 WHERE k = ?");
        assert_eq!(key_of_expr(&e, &[MyValue::Int(5)]), KeyLit::Known(KeyValue::Int(5)));
        assert_eq!(key_of_expr(&e, &[MyValue::UInt(5)]), KeyLit::Known(KeyValue::UInt(5)));
        assert_eq!(key_of_expr(&e, &[MyValue::Bytes(b"x".to_vec())]), KeyLit::Known(KeyValue::Bytes(b"x".to_vec())));
        assert_eq!(key_of_expr(&e, &[MyValue::NULL]), KeyLit::Null);
        assert_eq!(key_of_expr(&e, &[MyValue::Double(1.0)]), KeyLit::Unknown);
        assert_eq!(key_of_expr(&e, &[]), KeyLit::Unknown);
        assert_eq!(placeholder_index("?12"), Some(12));
        assert_eq!(placeholder_index("?!?1"), None);
        assert_eq!(placeholder_index("?"), None);
    }

    #[test]
    fn pins_through_and_or_in() {
        let w = where_of("SELECT 1 WHERE (k = 1 OR k IN (2, 3)) AND x = 5 AND k <> 9");
        let col = |e: &Expr| matches!(e, Expr::Identifier(i) if i.value == "k").then_some(7usize);
        let val = |e: &Expr| match key_of_expr(e, &[]) {
            KeyLit::Known(KeyValue::Int(i)) => Some(ShardSet::from([i as usize])),
            KeyLit::Null => Some(ShardSet::new()),
            _ => None,
        };
        let pins = implied_pins(&w, &col, &val);
        assert_eq!(pins.get(&7), Some(&ShardSet::from([1, 2, 3])));
        let w = where_of("SELECT 1 WHERE k = 1 OR x = 2");
        assert!(implied_pins(&w, &col, &val).is_empty());
        let w = where_of("SELECT 1 WHERE k IN (1, 2) AND k IN (2, 3)");
        assert_eq!(implied_pins(&w, &col, &val).get(&7), Some(&ShardSet::from([2])));
        let w = where_of("SELECT 1 WHERE k NOT IN (1)");
        assert!(implied_pins(&w, &col, &val).is_empty());
        assert_eq!(conjuncts(&where_of("SELECT 1 WHERE a = 1 AND (b = 2 AND c = 3)")).len(), 3);
    }
}
