//! Edge cases of `route`: scoping of names (CTEs, shadowing aliases), SET with subqueries,
//! long conditions, and robustness on garbage and truncated statements.

use super::tests::{keys_on_distinct_shards, route_in, route_sql, shard, sibling, topo};
use super::*;
use mysql_common::value::Value as MyValue;

fn unsupported(sql: &str) -> String {
    match route_sql(sql) {
        Err(RouteError::NotSupported(m)) => m,
        other => panic!("{sql}: expected NotSupported, got {other:?}"),
    }
}

#[test]
fn cte_names_are_scoped() {
    // The CTE `orders` of the first subquery does not hide the real table in the second.
    let m = unsupported("SELECT (WITH orders AS (SELECT 1 AS x) SELECT x FROM orders), (SELECT COUNT(*) FROM orders)");
    assert!(m.contains("subquery"), "{m}");
    // A CTE is not visible in the CTEs before it: `orders` in `a` is the real table.
    let m = unsupported("WITH a AS (SELECT * FROM orders), orders AS (SELECT 1 AS x) SELECT * FROM a");
    assert!(m.contains("WITH"), "{m}");
    // A CTE over no table is just a derived table: home.
    assert_eq!(route_sql("WITH orders AS (SELECT 1 AS x) SELECT * FROM orders").unwrap().target, Target::Home);
}

#[test]
fn inner_aliases_shadow_outer_ones() {
    let other = (1..).find(|x| shard(*x) != shard(42)).unwrap();
    // Inside EXISTS, `c` is orders (pinned to `other`), not the outer customers.
    let sql = format!("SELECT * FROM customers c WHERE c.id = 42 AND EXISTS (SELECT 1 FROM orders c WHERE c.customer_id = {other})");
    assert!(route_sql(&sql).is_err());
    let same = sibling(42);
    let sql = format!("SELECT * FROM customers c WHERE c.id = 42 AND EXISTS (SELECT 1 FROM orders c WHERE c.customer_id = {same})");
    assert_eq!(route_sql(&sql).unwrap().target, Target::Single { shard: shard(42) });
}

#[test]
fn set_with_subqueries() {
    assert_eq!(route_sql("SET @t = (SELECT SUM(total) FROM orders WHERE customer_id = 42)").unwrap(), Route::new(StatementKind::Session, Target::Single { shard: shard(42) }));
    assert!(unsupported("SET @t = (SELECT SUM(total) FROM orders)").contains("SET"));
    assert_eq!(route_sql("SET @t = (SELECT a FROM settings)").unwrap().target, Target::Home);
}

#[test]
fn long_conditions() {
    let k = keys_on_distinct_shards(4);
    let terms: Vec<String> = (0..300).map(|i| format!("customer_id = {}", k[i % 2])).collect();
    let sql = format!("SELECT * FROM orders WHERE {}", terms.join(" OR "));
    let mut want = vec![shard(k[0]), shard(k[1])];
    want.sort();
    assert!(matches!(route_sql(&sql).unwrap().target, Target::Multi { shards, .. } if shards == want));
    let sql = format!("SELECT id FROM orders WHERE {} ORDER BY id LIMIT 1, 1", vec!["note = 'x'"; 300].join(" OR "));
    assert!(matches!(route_sql(&sql).unwrap().target, Target::Scatter { sql: Some(_), .. }));
    let sql = format!("SELECT * FROM orders WHERE {}", vec!["customer_id = 1"; 2000].join(" AND "));
    assert!(matches!(route_sql(&sql), Err(RouteError::NotSupported(_))));
    // Backslashes in a split INSERT's parameters are sent as hex.
    let params = [MyValue::Int(k[0]), MyValue::Bytes(b"a\\b".to_vec()), MyValue::Int(k[1]), MyValue::Bytes(b"\'".to_vec())];
    let t = route_in(Some("shop"), "INSERT INTO orders (customer_id, note) VALUES (?, ?), (?, ?)", &params).unwrap().target;
    let Target::Split { parts } = t else { panic!("{t:?}") };
    let texts: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
    assert!(texts.contains(&format!("INSERT INTO orders (customer_id, note) VALUES ({}, _utf8mb4 X'615C62')", k[0]).as_str()), "{texts:?}");
    assert!(texts.contains(&format!("INSERT INTO orders (customer_id, note) VALUES ({}, '''')", k[1]).as_str()), "{texts:?}");
}

#[test]
fn garbage_never_panics() {
    let cache = ParseCache::new(64);
    let t = topo();
    let valid = [
        "SELECT c.id, COUNT(*), AVG(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id IN (1, 2, ?) GROUP BY c.id ORDER BY 2 DESC LIMIT ?, ?",
        "INSERT INTO orders (customer_id, note) VALUES (?, 'a\\'b'), (2, ?) ON DUPLICATE KEY UPDATE note = VALUES(note)",
        "UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.x = (SELECT 1) WHERE c.id = ? AND o.y IN (SELECT z FROM order_items WHERE customer_id = ?)",
        "SELECT DISTINCT * FROM orders WHERE customer_id = -? ORDER BY created_at DESC, 1 LIMIT 10 OFFSET 20",
        "WITH t AS (SELECT * FROM orders) SELECT * FROM t LEFT JOIN customers USING (id) NATURAL JOIN x",
    ];
    let params = [MyValue::Int(1), MyValue::NULL, MyValue::Bytes(vec![0xff, b'\'']), MyValue::UInt(3), MyValue::Double(f64::NAN)];
    let mut inputs: Vec<String> = Vec::new();
    for v in valid {
        for cut in 0..=v.len() {
            if v.is_char_boundary(cut) {
                inputs.push(v[..cut].to_string());
            }
        }
    }
    // A small deterministic generator (xorshift) for random bytes and token soups.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = ["SELECT", "FROM", "orders", "WHERE", "customer_id", "=", "?", "(", ")", ",", "'x'", "1", "JOIN", "ON", "IN", "AND", "OR", "GROUP BY", "ORDER BY", "LIMIT", "INSERT INTO", "VALUES", "AVG(total)", "COUNT(*)", "UNION", "NULL", "-", ";", "*"];
    for _ in 0..400 {
        let len = (next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (next() % 128) as u8).collect();
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        let soup: Vec<&str> = (0..(next() % 20)).map(|_| words[(next() % words.len() as u64) as usize]).collect();
        inputs.push(soup.join(" "));
    }
    for sql in &inputs {
        for db in [Some("shop"), None] {
            for p in [&params[..], &[]] {
                if let Ok(parsed) = cache.parse(sql) {
                    let _ = route(&parsed, &t, &RouteContext { database: db, params: p });
                }
            }
        }
    }
    assert!(cache.len() <= 64);
}
