//! Tests of `route` for point routing, INSERT splits, UPDATE/DELETE, DDL, session statements,
//! joins, subqueries, several statements, and robustness on garbage (SELECT merging is in
//! tests_select.rs). Expected shards are computed with `Topology::shard_for_key`.

use super::*;
use mysql_common::value::Value as MyValue;
use slotgate_shared::{KeyValue, Shard, ShardState, ShardingRule};

pub(super) fn topo() -> Topology {
    let shard = |id: &str| Shard { id: id.into(), state: ShardState::Active, primary: "127.0.0.1:1".into(), replicas: vec![] };
    let rule = |t: &str, c: &str| ShardingRule { database: "shop".into(), table: t.into(), column: c.into() };
    let rules = vec![rule("orders", "customer_id"), rule("customers", "id"), rule("order_items", "customer_id"), rule("users", "email")];
    Topology::uniform(1024, vec![shard("s0"), shard("s1"), shard("s2"), shard("s3")], "s1", rules).unwrap()
}

pub(super) fn route_in(db: Option<&str>, sql: &str, params: &[MyValue]) -> Result<Route, RouteError> {
    let p = Parsed::parse(sql)?;
    route(&p, &topo(), &RouteContext { database: db, params })
}

pub(super) fn route_sql(sql: &str) -> Result<Route, RouteError> {
    route_in(Some("shop"), sql, &[])
}

pub(super) fn shard(k: i64) -> usize {
    topo().shard_for_key(&KeyValue::Int(k))
}

/// The slot of key `k` (what a route pinned by it counts load on).
pub(super) fn slot(k: i64) -> Option<u32> {
    Some(slotgate_shared::slot_of(&KeyValue::Int(k), topo().slot_count))
}

/// Keys 1.. grouped: the first key of each shard, in shard order of first appearance.
pub(super) fn keys_on_distinct_shards(n: usize) -> Vec<i64> {
    let mut seen = std::collections::BTreeSet::new();
    (1..10_000).filter(|k| seen.insert(shard(*k))).take(n).collect()
}

/// A key on the same shard as `k`, other than `k`.
pub(super) fn sibling(k: i64) -> i64 {
    (k + 1..).find(|x| shard(*x) == shard(k)).unwrap()
}

fn target(sql: &str) -> Target {
    route_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}")).target
}

fn unsupported(sql: &str) -> String {
    match route_sql(sql) {
        Err(RouteError::NotSupported(m)) => m,
        other => panic!("{sql}: expected NotSupported, got {other:?}"),
    }
}

#[test]
fn point_selects() {
    let t = topo();
    let s42 = shard(42);
    assert_eq!(route_sql("SELECT * FROM orders WHERE customer_id = 42").unwrap(), Route::new(StatementKind::Read, Target::Single { shard: s42 }).on_slot(slot(42)));
    assert_eq!(route_sql("SELECT * FROM orders WHERE customer_id = 42 AND status = 'x' AND 7 = total").unwrap().slot, slot(42));
    assert_eq!(route_sql("SELECT * FROM orders WHERE customer_id IN (42, 42)").unwrap().slot, slot(42));
    let two = route_sql("SELECT * FROM orders WHERE customer_id IN (42, 43)").unwrap();
    assert!(two.slot.is_none(), "two keys: no single slot {two:?}");
    assert_eq!(route_sql("INSERT INTO orders (customer_id, status) VALUES (42, 'x')").unwrap().slot, slot(42));
    assert_eq!(route_sql("INSERT INTO orders (customer_id, status) VALUES (42, 'x'), (42, 'y')").unwrap().slot, slot(42));
    assert_eq!(route_sql("SELECT * FROM other.orders WHERE customer_id = 1").unwrap().slot, None);
    assert_eq!(route_in(None, "SELECT * FROM shop.orders WHERE customer_id = 42", &[]).unwrap().target, Target::Single { shard: s42 });
    assert_eq!(target("SELECT * FROM orders WHERE 42 = customer_id AND status = 'x'"), Target::Single { shard: s42 });
    assert_eq!(target("SELECT * FROM orders o WHERE (o.customer_id = 42) AND o.total > 5"), Target::Single { shard: s42 });
    assert_eq!(target("SELECT * FROM orders WHERE customer_id = '42'"), Target::Single { shard: s42 });
    assert_eq!(target("SELECT * FROM orders WHERE customer_id = -7"), Target::Single { shard: t.shard_for_key(&KeyValue::Int(-7)) });
    assert_eq!(target("SELECT * FROM orders WHERE customer_id = 1.50"), Target::Single { shard: t.shard_for_key(&KeyValue::Decimal("1.50".into())) });
    let email = t.shard_for_key(&KeyValue::Bytes(b"ann@example.com".to_vec()));
    assert_eq!(target("SELECT * FROM users WHERE email = 'ann@example.com'"), Target::Single { shard: email });
    // Without a database the table is unsharded: home.
    assert_eq!(route_in(None, "SELECT * FROM orders WHERE customer_id = 42", &[]).unwrap().target, Target::Home);
    // Not pinned: OR with another column, inequality, function of the key.
    for sql in [
        "SELECT * FROM orders WHERE customer_id = 42 OR status = 'x'",
        "SELECT * FROM orders WHERE customer_id > 42",
        "SELECT * FROM orders WHERE customer_id + 0 = 42",
        "SELECT * FROM orders WHERE customer_id NOT IN (42)",
    ] {
        assert!(matches!(target(sql), Target::Scatter { .. }), "{sql}");
    }
}

#[test]
fn in_lists_and_or() {
    let k = keys_on_distinct_shards(3);
    let mut want: Vec<usize> = k.iter().map(|x| shard(*x)).collect();
    want.sort();
    let sql = format!("SELECT * FROM orders WHERE customer_id IN ({}, {}, {})", k[0], k[1], k[2]);
    match target(&sql) {
        Target::Multi { shards, merge, sql } => {
            assert_eq!(shards, want);
            assert!(merge.is_passthrough() || merge.visible_columns == MergePlan::UNKNOWN_WIDTH);
            assert_eq!(sql, None);
        }
        other => panic!("{other:?}"),
    }
    let sql = format!("SELECT * FROM orders WHERE customer_id = {} OR customer_id = {}", k[0], k[1]);
    assert!(matches!(target(&sql), Target::Multi { shards, .. } if shards.len() == 2));
    let sql = format!("SELECT * FROM orders WHERE customer_id IN ({}, {})", k[0], sibling(k[0]));
    assert_eq!(target(&sql), Target::Single { shard: shard(k[0]) });
    let sql = format!("SELECT * FROM orders WHERE customer_id IN ({}, {}) AND customer_id = {}", k[0], k[1], k[1]);
    assert_eq!(target(&sql), Target::Single { shard: shard(k[1]) });
}

#[test]
fn placeholders() {
    let s42 = shard(42);
    let one = |sql: &str, params: &[MyValue]| route_in(Some("shop"), sql, params).unwrap().target;
    assert_eq!(one("SELECT * FROM orders WHERE status = ? AND customer_id = ?", &[MyValue::Bytes(b"x".to_vec()), MyValue::Int(42)]), Target::Single { shard: s42 });
    assert_eq!(one("SELECT * FROM orders WHERE customer_id = ?", &[MyValue::UInt(42)]), Target::Single { shard: s42 });
    assert_eq!(one("SELECT * FROM orders WHERE customer_id = ?", &[MyValue::Bytes(b"42".to_vec())]), Target::Single { shard: s42 });
    // NULL matches nothing: the home shard.
    assert_eq!(one("SELECT * FROM orders WHERE customer_id = ?", &[MyValue::NULL]), Target::Single { shard: topo().home_index() });
    assert_eq!(one("SELECT * FROM orders WHERE customer_id = NULL", &[]), Target::Single { shard: topo().home_index() });
    // A missing or unusable parameter is not a pin.
    assert!(matches!(one("SELECT * FROM orders WHERE customer_id = ?", &[]), Target::Scatter { .. }));
    assert!(matches!(one("SELECT * FROM orders WHERE customer_id = ?", &[MyValue::Double(42.0)]), Target::Scatter { .. }));
    let k = keys_on_distinct_shards(2);
    let t = one("UPDATE orders SET status = ? WHERE customer_id IN (?, ?)", &[MyValue::Bytes(b"s".to_vec()), MyValue::Int(k[0]), MyValue::Int(k[1])]);
    assert!(matches!(t, Target::Multi { ref shards, ref merge, sql: None } if shards.len() == 2 && merge.is_passthrough()), "{t:?}");
}

fn split_parts(t: Target) -> Vec<(usize, String)> {
    match t {
        Target::Split { parts } => parts,
        other => panic!("expected Split, got {other:?}"),
    }
}

/// The first column of each VALUES row of an INSERT text.
fn first_values(sql: &str) -> Vec<String> {
    let p = Parsed::parse(sql).unwrap();
    let sqlparser::ast::Statement::Insert(i) = &p.statements[0] else { panic!("{sql}") };
    let sqlparser::ast::SetExpr::Values(v) = &*i.source.as_ref().unwrap().body else { panic!() };
    v.rows.iter().map(|r| r.content[0].to_string()).collect()
}

#[test]
fn insert_split() {
    let k = keys_on_distinct_shards(3);
    let keys = [k[0], k[1], sibling(k[0]), k[2], sibling(k[1])];
    let rows: Vec<String> = keys.iter().map(|x| format!("({x}, 'n''{x}')")).collect();
    let sql = format!("INSERT IGNORE INTO orders (customer_id, note) VALUES {} ON DUPLICATE KEY UPDATE note = VALUES(note)", rows.join(", "));
    let parts = split_parts(target(&sql));
    assert_eq!(parts.len(), 3);
    let mut shards: Vec<usize> = parts.iter().map(|p| p.0).collect();
    shards.dedup();
    assert_eq!(shards.len(), 3);
    for (s, text) in &parts {
        let want: Vec<String> = keys.iter().filter(|x| shard(**x) == *s).map(|x| x.to_string()).collect();
        assert_eq!(first_values(text), want, "{text}");
        assert!(text.starts_with("INSERT IGNORE INTO orders (customer_id, note) VALUES"), "{text}");
        assert!(text.ends_with("ON DUPLICATE KEY UPDATE note = VALUES(note)"), "{text}");
        for x in keys.iter().filter(|x| shard(**x) == *s) {
            assert!(text.contains(&format!("'n''{x}'")), "{text}");
        }
    }
    // All rows on one shard: the original text.
    let sql = format!("INSERT INTO orders (note, customer_id) VALUES ('a', {}), ('b', {})", k[0], sibling(k[0]));
    assert_eq!(route_sql(&sql).unwrap(), Route::new(StatementKind::Write, Target::Single { shard: shard(k[0]) }));
    // REPLACE and parameters (inlined in the parts).
    let params = [MyValue::Int(k[0]), MyValue::Bytes(b"it's".to_vec()), MyValue::Int(k[1]), MyValue::NULL];
    let parts = split_parts(route_in(Some("shop"), "REPLACE INTO orders (customer_id, note) VALUES (?, ?), (?, ?)", &params).unwrap().target);
    assert_eq!(parts.len(), 2);
    let texts: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
    assert!(texts.contains(&format!("REPLACE INTO orders (customer_id, note) VALUES ({}, 'it''s')", k[0]).as_str()), "{texts:?}");
    assert!(texts.contains(&format!("REPLACE INTO orders (customer_id, note) VALUES ({}, NULL)", k[1]).as_str()), "{texts:?}");
    // INSERT ... SET.
    assert_eq!(target("INSERT INTO orders SET note = 'x', customer_id = 42"), Target::Single { shard: shard(42) });
}

#[test]
fn insert_refusals() {
    let missing = |sql: &str, params: &[MyValue]| {
        assert!(matches!(route_in(Some("shop"), sql, params), Err(RouteError::MissingShardKey { ref column, .. }) if column == "customer_id"), "{sql}");
    };
    missing("INSERT INTO orders (note) VALUES ('x')", &[]);
    missing("INSERT INTO orders (customer_id, note) VALUES (NULL, 'x')", &[]);
    missing("INSERT INTO orders (customer_id, note) VALUES (1, 'x'), (NULL, 'y')", &[]);
    missing("INSERT INTO orders (customer_id) VALUES (?)", &[MyValue::NULL]);
    missing("INSERT INTO orders (customer_id) VALUES (DEFAULT)", &[]);
    missing("INSERT INTO orders SET note = 'x'", &[]);
    assert!(unsupported("INSERT INTO orders VALUES (1, 'x')").contains("column list"));
    assert!(unsupported("INSERT INTO orders (customer_id) VALUES (1 + 1)").contains("literal"));
    assert!(unsupported("INSERT INTO orders (customer_id) SELECT id FROM customers").contains("SELECT"));
    assert!(unsupported("INSERT INTO orders (customer_id) SELECT 5").contains("SELECT"));
    assert!(unsupported("INSERT INTO orders (customer_id) VALUES (1) ON DUPLICATE KEY UPDATE customer_id = 2").contains("shard key"));
    assert!(unsupported("INSERT INTO settings (a) SELECT total FROM orders").contains("unsharded"));
    assert_eq!(target("INSERT INTO settings (a) SELECT b FROM other_settings"), Target::Home);
    assert_eq!(route_sql("INSERT INTO settings VALUES (1)").unwrap(), Route::new(StatementKind::Write, Target::Home));
}

#[test]
fn update_and_delete() {
    let s42 = shard(42);
    let all: Vec<usize> = (0..4).collect();
    assert_eq!(route_sql("UPDATE orders SET status = 'x' WHERE customer_id = 42").unwrap(), Route::new(StatementKind::Write, Target::Single { shard: s42 }).on_slot(slot(42)));
    assert_eq!(target("DELETE FROM orders WHERE customer_id = 42 LIMIT 1"), Target::Single { shard: s42 });
    assert_eq!(target("UPDATE orders SET status = 'x' WHERE status = 'y'"), Target::ScatterWrite { shards: all.clone() });
    assert_eq!(target("DELETE FROM orders"), Target::ScatterWrite { shards: all.clone() });
    assert_eq!(target("UPDATE settings SET a = 1"), Target::Home);
    assert!(unsupported("UPDATE orders SET customer_id = 7 WHERE status = 'x'").contains("shard key"));
    let other = (1..).find(|x| shard(*x) != s42).unwrap();
    assert!(unsupported(&format!("UPDATE orders SET customer_id = {other} WHERE customer_id = 42")).contains("shard key"));
    let same = sibling(42);
    assert_eq!(target(&format!("UPDATE orders SET customer_id = {same} WHERE customer_id = 42")), Target::Single { shard: s42 });
    assert!(unsupported("DELETE FROM orders WHERE status = 'x' LIMIT 10").contains("LIMIT"));
    // Multi-table forms, co-located.
    assert_eq!(target("UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.status = c.status WHERE c.id = 42"), Target::Single { shard: s42 });
    assert_eq!(target("DELETE o FROM orders o JOIN order_items i ON i.customer_id = o.customer_id WHERE i.x = 1"), Target::ScatterWrite { shards: all });
    assert!(unsupported("DELETE FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE vip = 1)").contains("subquery"));
    assert!(unsupported("UPDATE orders SET status = 'x' WHERE customer_id IN (SELECT a FROM settings)").contains("not sharded"));
}

#[test]
fn ddl() {
    let all = Target::Broadcast { shards: vec![0, 1, 2, 3] };
    for sql in [
        "CREATE TABLE orders (customer_id INT, note TEXT)",
        "CREATE TABLE IF NOT EXISTS shop.orders (customer_id INT)",
        "ALTER TABLE orders ADD COLUMN x INT",
        "DROP TABLE orders",
        "DROP TABLE IF EXISTS orders, customers",
        "TRUNCATE TABLE orders",
        "TRUNCATE orders",
        "CREATE INDEX i ON orders (note)",
        "DROP INDEX i ON orders",
        "CREATE DATABASE shop2",
        "CREATE SCHEMA shop2",
        "DROP DATABASE shop2",
        "DROP SCHEMA IF EXISTS x",
        "RENAME TABLE orders TO orders_old",
        "RENAME TABLE orders_new TO orders",
    ] {
        assert_eq!(route_sql(sql).unwrap(), Route::new(StatementKind::Ddl, all.clone()), "{sql}");
    }
    for sql in ["CREATE TABLE settings (a INT)", "ALTER TABLE settings ADD b INT", "DROP TABLE other.orders", "CREATE INDEX i ON settings (a)"] {
        assert_eq!(route_sql(sql).unwrap(), Route::new(StatementKind::Ddl, Target::Home), "{sql}");
    }
    assert!(unsupported("DROP TABLE orders, settings").contains("mixing"));
    assert!(unsupported("CREATE TABLE copy AS SELECT * FROM orders").contains("CREATE TABLE"));
    assert!(unsupported("CREATE VIEW v AS SELECT * FROM orders").contains("sharded"));
    assert!(unsupported("LOCK TABLES orders READ").contains("LOCK TABLES"));
}

#[test]
fn session_and_home() {
    for sql in [
        "SELECT 1",
        "SELECT @@version",
        "SELECT DATABASE()",
        "SELECT NOW()",
        "SELECT 1 FROM DUAL",
        "SET NAMES utf8mb4",
        "SET autocommit = 0",
        "USE shop",
        "SHOW WARNINGS",
        "SHOW VARIABLES LIKE 'x%'",
        "BEGIN",
        "START TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "ROLLBACK TO SAVEPOINT a",
        "EXPLAIN SELECT * FROM orders",
        "UNLOCK TABLES",
        "",
        "/* just a comment */",
    ] {
        assert_eq!(route_sql(sql).unwrap(), Route::new(StatementKind::Session, Target::Home), "{sql}");
    }
    // Schema metadata goes to the home shard, which holds every table.
    for sql in [
        "SELECT * FROM settings",
        "SELECT * FROM other.orders WHERE customer_id = 1",
        "SELECT * FROM information_schema.tables",
        "SHOW TABLES",
        "SHOW DATABASES",
        "SHOW CREATE TABLE orders",
        "SHOW COLUMNS FROM orders",
        "DESCRIBE orders",
        "DESC settings",
    ] {
        assert_eq!(route_sql(sql).unwrap(), Route::new(StatementKind::Read, Target::Home), "{sql}");
    }
}

#[test]
fn several_statements() {
    let k = keys_on_distinct_shards(2);
    let sql = format!("SELECT * FROM orders WHERE customer_id = {}; SELECT * FROM orders WHERE customer_id = {}", k[0], k[1]);
    assert!(unsupported(&sql).contains("one by one"));
    let sql = format!("UPDATE orders SET a = 1 WHERE customer_id = {}; SELECT * FROM orders WHERE customer_id = {}", k[0], sibling(k[0]));
    assert_eq!(route_sql(&sql).unwrap(), Route::new(StatementKind::Write, Target::Single { shard: shard(k[0]) }));
    assert_eq!(route_sql("SET @a = 1; SELECT 1; SELECT * FROM settings").unwrap(), Route::new(StatementKind::Read, Target::Home));
    assert!(unsupported("SELECT 1; SELECT * FROM orders").contains("one by one"));
    assert!(unsupported("INSERT INTO settings VALUES (1); DROP TABLE orders").contains("one by one"));
    // USE inside the query changes the database of the statements after it.
    // (Without that, `orders` would be unsharded here and everything would go home.)
    let home = topo().home_index();
    let on_home = (1..).find(|x| shard(*x) == home).unwrap();
    let off_home = (1..).find(|x| shard(*x) != home).unwrap();
    let r = route_in(None, &format!("USE shop; SELECT * FROM orders WHERE customer_id = {on_home}"), &[]).unwrap();
    assert_eq!(r.target, Target::Single { shard: home });
    assert!(route_in(None, &format!("USE shop; SELECT * FROM orders WHERE customer_id = {off_home}"), &[]).is_err());
    assert_eq!(route_in(None, &format!("SELECT * FROM orders WHERE customer_id = {off_home}"), &[]).unwrap().target, Target::Home);
}

#[test]
fn joins() {
    let s42 = shard(42);
    let all: Vec<usize> = (0..4).collect();
    for sql in [
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 42",
        "SELECT * FROM customers c, orders o WHERE o.customer_id = c.id AND o.customer_id = 42",
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.customer_id = o.customer_id WHERE i.customer_id = 42",
        "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.id = 42",
        "SELECT * FROM shop.customers JOIN shop.orders ON shop.orders.customer_id = shop.customers.id WHERE customers.id = 42",
        // Not joined on the key, but both pinned to the same shard.
        "SELECT * FROM customers c JOIN orders o ON o.note = c.name WHERE c.id = 42 AND o.customer_id = 42",
    ] {
        assert_eq!(target(sql), Target::Single { shard: s42 }, "{sql}");
    }
    for sql in [
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id",
        "SELECT c.name, o.total FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.total > 3",
        "SELECT * FROM orders JOIN order_items USING (customer_id)",
        // ON of an outer join does not pin the preserved side.
        "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND c.id = 42",
        // Nor does an inner ON nested in the nullable side.
        "SELECT * FROM customers c LEFT JOIN (orders o JOIN order_items i ON i.customer_id = o.customer_id AND o.customer_id = 42) ON o.customer_id = c.id",
        "SELECT * FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.customer_id = 42 RIGHT JOIN customers c ON c.id = o.customer_id",
    ] {
        assert!(matches!(target(sql), Target::Scatter { ref shards, .. } if *shards == all), "{sql}");
    }
    for sql in [
        "SELECT * FROM customers c JOIN orders o ON o.note = c.name",
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id + 1",
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id OR o.x = 1",
        "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = 42 WHERE c.id = 42",
    ] {
        assert!(unsupported(sql).contains("join"), "{sql}");
    }
    assert!(unsupported("SELECT * FROM orders o JOIN settings s ON s.a = o.status WHERE o.customer_id = 42").contains("not sharded"));
}

#[test]
fn subqueries() {
    let s42 = shard(42);
    for sql in [
        "SELECT * FROM customers WHERE id = 42 AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = customers.id)",
        "SELECT * FROM customers c WHERE c.id = 42 AND c.x IN (SELECT note FROM orders WHERE customer_id = 42)",
        "SELECT (SELECT COUNT(*) FROM orders WHERE customer_id = 42)",
        "SELECT * FROM (SELECT * FROM orders WHERE customer_id = 42) t",
        "WITH t AS (SELECT * FROM orders WHERE customer_id = 42) SELECT * FROM t",
        "SELECT note FROM orders WHERE customer_id = 42 UNION SELECT name FROM customers WHERE id = 42",
    ] {
        assert_eq!(route_sql(sql).unwrap(), Route::new(StatementKind::Read, Target::Single { shard: s42 }).on_slot(slot(42)), "{sql}");
    }
    for sql in [
        "SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders)",
        "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
        "SELECT * FROM (SELECT * FROM orders) t",
        "SELECT (SELECT COUNT(*) FROM orders)",
    ] {
        let m = unsupported(sql);
        assert!(m.contains("pinned to one shard"), "{sql}: {m}");
    }
    assert!(unsupported("SELECT note FROM orders UNION SELECT name FROM customers").contains("UNION"));
    assert!(unsupported("WITH t AS (SELECT * FROM orders) SELECT * FROM t").contains("WITH"));
    // Subqueries over unsharded tables only: home.
    assert_eq!(target("SELECT * FROM settings WHERE a IN (SELECT b FROM other_settings)"), Target::Home);
}
