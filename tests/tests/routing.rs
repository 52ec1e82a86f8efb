//! The differential suite of shard-aware routing: the same schema and data loaded once into
//! a single reference MariaDB and once through slotgate over 4 shards; a corpus of statements
//! must give the same rows and affected-row counts (or, for what is unsupported across
//! shards, ERROR 1235 — never a different answer). Then each shard must hold exactly the rows
//! whose slot it owns.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{ProxyOptions, TestProxy};

const RULES: &str = "slot_count = 1024\n\
[[routing.rules]]\ndatabase = \"shop\"\ntable = \"customers\"\ncolumn = \"id\"\n\
[[routing.rules]]\ndatabase = \"shop\"\ntable = \"orders\"\ncolumn = \"customer_id\"\n";

const SCHEMA: &[&str] = &[
    "CREATE DATABASE shop",
    "CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40), country CHAR(2), balance DECIMAL(10,2), score DOUBLE, joined DATE)",
    "CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2), status VARCHAR(10), KEY (customer_id))",
    "CREATE TABLE shop.countries (code CHAR(2) PRIMARY KEY, name VARCHAR(40))",
];

fn data() -> Vec<String> {
    let countries = ["de", "fr", "us", "jp", "br"];
    let mut stmts = vec!["INSERT INTO shop.countries VALUES ('de','Germany'),('fr','France'),('us','USA'),('jp','Japan'),('br','Brazil')".to_string()];
    for chunk in (1..=240).collect::<Vec<i32>>().chunks(40) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let name = if i % 7 == 0 { "NULL".to_string() } else { format!("'{}name{i}'", if i % 2 == 0 { "A" } else { "b" }) };
                format!("({i}, {name}, '{}', {}.{:02}, {}, '2024-{:02}-{:02}')", countries[*i as usize % 5], (i * 37) % 500, i % 100, f64::from(*i) / 8.0, 1 + i % 12, 1 + i % 28)
            })
            .collect();
        stmts.push(format!("INSERT INTO shop.customers (id, name, country, balance, score, joined) VALUES {}", rows.join(", ")));
    }
    for chunk in (1..=600).collect::<Vec<i32>>().chunks(60) {
        let rows: Vec<String> =
            chunk.iter().map(|i| format!("({i}, {}, {}.{:02}, '{}')", 1 + (i * 13) % 240, (i * 7) % 300, i % 100, ["new", "paid", "sent"][*i as usize % 3])).collect();
        stmts.push(format!("INSERT INTO shop.orders (id, customer_id, amount, status) VALUES {}", rows.join(", ")));
    }
    stmts
}

/// Statements whose results must match the reference exactly.
fn corpus() -> Vec<String> {
    let mut q = Vec::new();
    for k in (1..=240).step_by(7).chain([2, 3, 17, 42, 99, 100, 123, 200, 239, 240, 241, 0, -5]) {
        q.push(format!("SELECT * FROM customers WHERE id = {k}"));
        q.push(format!("SELECT id, name, balance FROM customers WHERE id = '{k}'"));
        q.push(format!("SELECT o.id, o.amount FROM orders o WHERE o.customer_id = {k} ORDER BY o.id"));
        q.push(format!("SELECT c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = {k} ORDER BY o.id"));
        q.push(format!("SELECT COUNT(*), SUM(amount) FROM orders WHERE customer_id = {k}"));
    }
    for (a, b, c) in [(1, 2, 3), (10, 20, 30), (5, 150, 239), (7, 8, 9), (100, 101, 102)] {
        q.push(format!("SELECT id, name FROM customers WHERE id IN ({a}, {b}, {c}) ORDER BY id"));
        q.push(format!("SELECT id, country FROM customers WHERE id IN ({a}, {b}, {c}) AND country <> 'zz' ORDER BY id DESC"));
        q.push(format!("SELECT COUNT(*) FROM orders WHERE customer_id IN ({a}, {b}, {c})"));
    }
    for (lo, hi) in [(1, 50), (30, 90), (100, 240), (200, 1000)] {
        q.push(format!("SELECT id, name FROM customers WHERE id BETWEEN {lo} AND {hi} ORDER BY id"));
        q.push(format!("SELECT id FROM customers WHERE id > {lo} AND id < {hi} ORDER BY id LIMIT 5"));
        q.push(format!("SELECT id, balance FROM customers WHERE id >= {lo} ORDER BY balance DESC, id LIMIT 7 OFFSET 3"));
        q.push(format!("SELECT COUNT(*), MIN(balance), MAX(balance), SUM(balance) FROM customers WHERE id BETWEEN {lo} AND {hi}"));
    }
    for limit in [1, 5, 10, 50] {
        q.push(format!("SELECT id, name FROM customers ORDER BY name, id LIMIT {limit}"));
        q.push(format!("SELECT id, score FROM customers ORDER BY score DESC, id LIMIT {limit} OFFSET 2"));
        q.push(format!("SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT {limit}"));
    }
    for country in ["de", "fr", "us", "jp", "br", "xx"] {
        q.push(format!("SELECT COUNT(*), SUM(balance), MIN(balance), MAX(balance), AVG(balance) FROM customers WHERE country = '{country}'"));
        q.push(format!("SELECT id FROM customers WHERE country = '{country}' ORDER BY id"));
        q.push(format!("SELECT AVG(score), COUNT(name) FROM customers WHERE country = '{country}'"));
    }
    q.extend(
        [
            "SELECT COUNT(*) FROM customers",
            "SELECT COUNT(*) FROM orders",
            "SELECT COUNT(name), COUNT(*) FROM customers",
            "SELECT SUM(amount), AVG(amount), MIN(amount), MAX(amount) FROM orders",
            "SELECT MIN(joined), MAX(joined), MIN(name), MAX(name) FROM customers",
            "SELECT country, COUNT(*), SUM(balance) FROM customers GROUP BY country",
            "SELECT country, COUNT(*) AS n FROM customers GROUP BY country ORDER BY n DESC, country",
            "SELECT country, AVG(balance), MAX(score) FROM customers GROUP BY country",
            "SELECT status, COUNT(*), SUM(amount) FROM orders GROUP BY status ORDER BY status",
            "SELECT DISTINCT country FROM customers ORDER BY country",
            "SELECT DISTINCT status FROM orders ORDER BY status DESC",
            "SELECT * FROM countries ORDER BY code",
            "SELECT name FROM countries WHERE code = 'jp'",
            "SELECT 1",
            "SELECT 1 + 1 AS two, 'x' AS s",
            "SELECT DATABASE()",
            "SELECT c.id, o.id FROM customers c JOIN orders o ON c.id = o.customer_id ORDER BY o.id LIMIT 20",
            "SELECT COUNT(*) FROM customers c JOIN orders o ON c.id = o.customer_id",
            "SELECT id, name FROM customers WHERE name LIKE 'A%' ORDER BY id LIMIT 10",
            "SELECT id, name FROM customers WHERE name IS NULL ORDER BY id",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    q
}

/// Writes whose affected-row counts must match, followed by a check query.
fn writes() -> Vec<String> {
    vec![
        "UPDATE customers SET balance = balance + 1 WHERE id = 17".into(),
        "UPDATE customers SET score = score * 2 WHERE id IN (1, 2, 3, 4, 5, 6)".into(),
        "UPDATE customers SET country = 'de' WHERE country = 'br'".into(),
        "UPDATE orders SET status = 'paid' WHERE amount > 250".into(),
        "DELETE FROM orders WHERE id = 5 AND customer_id = 66".into(),
        "DELETE FROM orders WHERE status = 'new' AND amount < 10".into(),
        "INSERT INTO customers (id, name, country, balance) VALUES (1001, 'x1', 'fr', 1.00), (1002, 'x2', 'us', 2.00), (1003, 'x3', 'jp', 3.00), (1004, 'x4', 'de', 4.00)".into(),
        "INSERT INTO customers (id, name, country, balance) VALUES (1001, 'dup', 'fr', 9.00), (1005, 'x5', 'fr', 5.00) ON DUPLICATE KEY UPDATE balance = VALUES(balance)".into(),
        "REPLACE INTO customers (id, name, country, balance) VALUES (1002, 'r2', 'us', 7.50), (1006, 'r6', 'us', 6.50)".into(),
        "DELETE FROM customers WHERE id > 1000".into(),
        "UPDATE countries SET name = 'Deutschland' WHERE code = 'de'".into(),
    ]
}

async fn rows(c: &mut Conn, q: &str) -> Result<Vec<Vec<Value>>, mysql_async::Error> {
    let r: Vec<Row> = c.query(q).await?;
    Ok(r.into_iter().map(|r| r.unwrap()).collect())
}

fn sorted(mut v: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    v.sort_by_key(|r| format!("{r:?}"));
    v
}

struct Setup {
    reference: MariaDb,
    shards: Vec<MariaDb>,
    proxy: TestProxy,
}

async fn setup() -> Setup {
    let (reference, s0, s1, s2, s3) = tokio::try_join!(MariaDb::start(), MariaDb::start(), MariaDb::start(), MariaDb::start(), MariaDb::start()).unwrap();
    let shards = vec![s0, s1, s2, s3];
    let refs: Vec<&MariaDb> = shards.iter().collect();
    let proxy = TestProxy::start_with(&refs, ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await.unwrap();
    let mut r = reference.conn().await.unwrap();
    let mut p = proxy.conn(None).await.unwrap();
    for s in SCHEMA {
        r.query_drop(*s).await.unwrap();
        p.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    for s in data() {
        r.query_drop(&s).await.unwrap();
        p.query_drop(&s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p.affected_rows(), r.affected_rows(), "{s}");
    }
    Setup { reference, shards, proxy }
}

#[tokio::test]
async fn same_answers_as_one_mariadb() {
    let s = setup().await;
    let mut r = s.reference.conn_db("shop").await.unwrap();
    let mut p = s.proxy.conn(Some("shop")).await.unwrap();
    let mut checked = 0;
    for q in corpus() {
        let want = rows(&mut r, &q).await.unwrap_or_else(|e| panic!("reference: {q}: {e}"));
        let got = rows(&mut p, &q).await.unwrap_or_else(|e| panic!("slotgate: {q}: {e}"));
        let ordered = q.contains("ORDER BY") && !q.contains("GROUP BY") || q.contains("GROUP BY") && q.contains("ORDER BY");
        if ordered {
            assert_eq!(got, want, "{q}");
        } else {
            assert_eq!(sorted(got), sorted(want), "{q}");
        }
        checked += 1;
    }
    for w in writes() {
        r.query_drop(&w).await.unwrap();
        p.query_drop(&w).await.unwrap_or_else(|e| panic!("slotgate: {w}: {e}"));
        assert_eq!(p.affected_rows(), r.affected_rows(), "{w}");
        for q in ["SELECT * FROM customers ORDER BY id", "SELECT * FROM orders ORDER BY id", "SELECT * FROM countries ORDER BY code"] {
            assert_eq!(rows(&mut p, q).await.unwrap(), rows(&mut r, q).await.unwrap(), "after {w}: {q}");
        }
        checked += 1;
    }
    // Binary protocol, routed by bound values.
    for k in [3, 42, 240] {
        let q = "SELECT id, name, balance, joined FROM customers WHERE id = ?";
        let want: Vec<Row> = r.exec(q, (k,)).await.unwrap();
        let got: Vec<Row> = p.exec(q, (k,)).await.unwrap();
        assert_eq!(got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(), want.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>());
        let q = "SELECT id, amount FROM orders WHERE customer_id IN (?, ?) ORDER BY id";
        let want: Vec<Row> = r.exec(q, (k, k + 1)).await.unwrap();
        let got: Vec<Row> = p.exec(q, (k, k + 1)).await.unwrap();
        assert_eq!(got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(), want.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>());
        checked += 2;
    }
    let q = "SELECT country, COUNT(*), SUM(balance) FROM customers WHERE id > ? GROUP BY country";
    let want: Vec<Row> = r.exec(q, (10,)).await.unwrap();
    let got: Vec<Row> = p.exec(q, (10,)).await.unwrap();
    assert_eq!(got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(), want.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>());
    p.exec_drop("INSERT INTO customers (id, name) VALUES (?, ?), (?, ?)", (2001, "p1", 2002, "p2")).await.unwrap();
    assert_eq!(p.affected_rows(), 2);
    assert!(checked > 300, "{checked} statements compared");
}

#[tokio::test]
async fn unsupported_statements_get_1235_and_bad_keys_a_clear_error() {
    let s = setup().await;
    let mut p = s.proxy.conn(Some("shop")).await.unwrap();
    for q in [
        "SELECT c.name, o.amount FROM customers c JOIN orders o ON o.amount = c.balance",
        "SELECT c.name FROM customers c JOIN countries k ON k.code = c.country",
        "SELECT COUNT(DISTINCT country) FROM customers",
    ] {
        match p.query_drop(q).await.unwrap_err() {
            mysql_async::Error::Server(e) => assert_eq!(e.code, 1235, "{q}: {}", e.message),
            other => panic!("{q}: {other:?}"),
        }
    }
    for q in ["INSERT INTO customers (name) VALUES ('nokey')", "INSERT INTO customers (id, name) VALUES (NULL, 'nullkey')"] {
        match p.query_drop(q).await.unwrap_err() {
            mysql_async::Error::Server(e) => {
                assert_eq!(e.code, 1048, "{q}: {}", e.message);
                assert!(e.message.contains("id"), "{}", e.message);
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    let one: Option<i64> = p.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "the session goes on");
}

#[tokio::test]
async fn each_shard_holds_exactly_the_rows_of_its_slots() {
    let s = setup().await;
    let mut total = 0;
    for (i, shard) in s.shards.iter().enumerate() {
        let (lo, hi) = (i * 256, i * 256 + 255);
        let mut c = shard.conn_db("shop").await.unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM customers").await.unwrap().unwrap();
        let stray: i64 = c.query_first(format!("SELECT COUNT(*) FROM customers WHERE CRC32(id) % 1024 NOT BETWEEN {lo} AND {hi}")).await.unwrap().unwrap();
        let stray_orders: i64 =
            c.query_first(format!("SELECT COUNT(*) FROM orders WHERE CRC32(customer_id) % 1024 NOT BETWEEN {lo} AND {hi}")).await.unwrap().unwrap();
        assert_eq!((stray, stray_orders), (0, 0), "shard s{i}");
        assert!(n > 20, "shard s{i} holds {n} customers: the keys spread");
        total += n;
        // Unsharded tables (and their DDL) live on the home shard only.
        let countries = c.query_first::<i64, _>("SELECT COUNT(*) FROM countries").await;
        if i == 0 {
            assert_eq!(countries.unwrap(), Some(5));
        } else {
            match countries.unwrap_err() {
                mysql_async::Error::Server(e) => assert_eq!(e.code, 1146, "countries exists on s{i}"),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(total, 240);
}

#[tokio::test]
async fn transactions_across_shards() {
    let s = setup().await;
    let mut p = s.proxy.conn(Some("shop")).await.unwrap();
    let mut other = s.proxy.conn(Some("shop")).await.unwrap();
    // Keys on different shards.
    let (a, b) = (1, 2);
    p.query_drop("BEGIN").await.unwrap();
    p.query_drop(format!("UPDATE customers SET balance = 0 WHERE id = {a}")).await.unwrap();
    p.query_drop(format!("UPDATE customers SET balance = 0 WHERE id = {b}")).await.unwrap();
    let seen: Vec<String> = other.query(format!("SELECT CAST(balance AS CHAR) FROM customers WHERE id IN ({a},{b}) ORDER BY id")).await.unwrap();
    assert!(seen.iter().all(|v| v != "0.00"), "uncommitted changes are invisible: {seen:?}");
    p.query_drop("ROLLBACK").await.unwrap();
    let zeros: i64 = p.query_first(format!("SELECT COUNT(*) FROM customers WHERE id IN ({a},{b}) AND balance = 0")).await.unwrap().unwrap();
    assert_eq!(zeros, 0);
    p.query_drop("START TRANSACTION").await.unwrap();
    p.query_drop(format!("UPDATE customers SET balance = 1 WHERE id = {a}")).await.unwrap();
    p.query_drop(format!("UPDATE customers SET balance = 1 WHERE id = {b}")).await.unwrap();
    p.query_drop("COMMIT").await.unwrap();
    let ones: i64 = other.query_first(format!("SELECT COUNT(*) FROM customers WHERE id IN ({a},{b}) AND balance = 1")).await.unwrap().unwrap();
    assert_eq!(ones, 2);
    assert!(s.proxy.metric("slotgate_multi_shard_transactions_total").await.unwrap() >= 2.0);
}

#[tokio::test]
async fn single_transaction_mode_refuses_a_second_shard_and_keeps_the_transaction() {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start()).unwrap();
    let opts = ProxyOptions { routing_extra: format!("transaction_mode = \"single\"\n{RULES}"), ..Default::default() };
    let proxy = TestProxy::start_with(&[&s0, &s1], opts).await.unwrap();
    let mut p = proxy.conn(None).await.unwrap();
    for q in SCHEMA {
        p.query_drop(*q).await.unwrap();
    }
    p.query_drop("USE shop").await.unwrap();
    // Find two keys on different shards: with 2 shards, slots 0-511 and 512-1023.
    let shard_of = |k: i64| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(k), 1024) / 512;
    let a = 1;
    let b = (2..100).find(|k| shard_of(*k) != shard_of(a)).unwrap();
    p.query_drop(format!("INSERT INTO customers (id, name) VALUES ({a}, 'a'), ({b}, 'b')")).await.unwrap();
    p.query_drop("BEGIN").await.unwrap();
    p.query_drop(format!("UPDATE customers SET name = 'a2' WHERE id = {a}")).await.unwrap();
    match p.query_drop(format!("UPDATE customers SET name = 'b2' WHERE id = {b}")).await.unwrap_err() {
        mysql_async::Error::Server(e) => {
            assert_eq!(e.code, 1235);
            assert!(e.message.contains("transaction_mode"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    p.query_drop("COMMIT").await.unwrap();
    let names: Vec<String> = p.query("SELECT name FROM customers ORDER BY id").await.unwrap();
    assert!(names.contains(&"a2".to_string()) && names.contains(&"b".to_string()), "{names:?}");
}

/// Two shards with 200 customers; returns (reference-free setup, keys on s0, keys on s1).
async fn two_shards() -> (MariaDb, MariaDb, TestProxy, Vec<i64>, Vec<i64>) {
    let (s0, s1) = tokio::try_join!(MariaDb::start(), MariaDb::start()).unwrap();
    let proxy = TestProxy::start_with(&[&s0, &s1], ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await.unwrap();
    let mut p = proxy.conn(None).await.unwrap();
    for q in SCHEMA {
        p.query_drop(*q).await.unwrap();
    }
    let rows: Vec<String> = (1..=200).map(|i| format!("({i}, 'n{i}')")).collect();
    p.query_drop(format!("INSERT INTO shop.customers (id, name) VALUES {}", rows.join(","))).await.unwrap();
    let on = |s: u32| (1..=200i64).filter(|k| slotgate_shared::slot_of(&slotgate_shared::KeyValue::Int(*k), 1024) / 512 == s).collect::<Vec<_>>();
    let (k0, k1) = (on(0), on(1));
    (s0, s1, proxy, k0, k1)
}

#[tokio::test]
async fn prepared_begin_and_rollback_span_every_shard() {
    let (_s0, s1, proxy, k0, k1) = two_shards().await;
    let mut p = proxy.conn(Some("shop")).await.unwrap();
    p.exec_drop("BEGIN", ()).await.unwrap();
    p.exec_drop("DELETE FROM customers WHERE id = ?", (k0[0],)).await.unwrap();
    p.exec_drop("DELETE FROM customers WHERE id = ?", (k1[0],)).await.unwrap();
    // Not committed: the shard still shows the row to others.
    let seen: Option<i64> = s1.conn_db("shop").await.unwrap().query_first(format!("SELECT COUNT(*) FROM customers WHERE id = {}", k1[0])).await.unwrap();
    assert_eq!(seen, Some(1), "a prepared BEGIN opened the transaction on the second shard too");
    p.exec_drop("ROLLBACK", ()).await.unwrap();
    let n: Option<i64> = p.query_first(format!("SELECT COUNT(*) FROM customers WHERE id IN ({}, {})", k0[0], k1[0])).await.unwrap();
    assert_eq!(n, Some(2), "ROLLBACK undid both shards");
}

#[tokio::test]
async fn a_deadlock_on_one_shard_rolls_back_the_whole_transaction() {
    let (_s0, s1, proxy, k0, k1) = two_shards().await;
    let (a, b, c) = (k0[0], k1[0], k1[1]);
    let mut p = proxy.conn(Some("shop")).await.unwrap();
    p.query_drop("BEGIN").await.unwrap();
    p.query_drop(format!("UPDATE customers SET name = 'A' WHERE id = {a}")).await.unwrap();
    p.query_drop(format!("UPDATE customers SET name = 'A' WHERE id = {b}")).await.unwrap();
    // A heavier transaction directly on s1 takes c, then waits for b: InnoDB picks the lighter
    // one, the proxy's, as the deadlock victim.
    let mut d = s1.conn_db("shop").await.unwrap();
    d.query_drop("BEGIN").await.unwrap();
    for k in &k1[2..40] {
        d.query_drop(format!("UPDATE customers SET name = 'D' WHERE id = {k}")).await.unwrap();
    }
    d.query_drop(format!("UPDATE customers SET name = 'D' WHERE id = {c}")).await.unwrap();
    let waiter = tokio::spawn(async move {
        let r = d.query_drop(format!("UPDATE customers SET name = 'D' WHERE id = {b}")).await;
        (r, d)
    });
    let mut probe = s1.conn().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: Option<i64> = probe.query_first("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'").await.unwrap();
        if waiting.is_some_and(|n| n >= 1) {
            break;
        }
        assert!(!waiter.is_finished(), "the direct transaction did not wait for the lock");
        assert!(std::time::Instant::now() < deadline, "the direct transaction never waited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let err = p.query_drop(format!("UPDATE customers SET name = 'A' WHERE id = {c}")).await.unwrap_err();
    match err {
        mysql_async::Error::Server(e) => assert_eq!(e.code, 1213, "{}", e.message),
        other => panic!("{other:?}"),
    }
    let (r, mut d) = waiter.await.unwrap();
    r.unwrap();
    d.query_drop("COMMIT").await.unwrap();
    // The proxy's transaction is over everywhere: COMMIT commits nothing of it.
    p.query_drop("COMMIT").await.unwrap();
    let name: Option<String> = p.query_first(format!("SELECT name FROM customers WHERE id = {a}")).await.unwrap();
    assert_eq!(name, Some(format!("n{a}")), "the s0 part of the deadlocked transaction was rolled back");
}
