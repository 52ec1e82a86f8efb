//! Tests of SELECTs on several shards: the rewritten text and the MergePlan.

use super::tests::{keys_on_distinct_shards, route_in, route_sql, shard};
use super::*;
use mysql_common::value::Value as MyValue;

/// The (sql, plan) of a scatter SELECT; the rewritten text must parse back.
fn scatter(sql: &str) -> (Option<String>, MergePlan) {
    scatter_with(sql, &[])
}

fn scatter_with(sql: &str, params: &[MyValue]) -> (Option<String>, MergePlan) {
    match route_in(Some("shop"), sql, params).unwrap() {
        Route { kind: StatementKind::Read, target: Target::Scatter { shards, sql: out, merge }, .. } => {
            assert_eq!(shards, vec![0, 1, 2, 3]);
            if let Some(text) = &out {
                assert!(Parsed::parse(text).is_ok(), "{text}");
            }
            (out, merge)
        }
        other => panic!("{sql}: expected Scatter, got {other:?}"),
    }
}

fn unsupported(sql: &str) -> String {
    match route_sql(sql) {
        Err(RouteError::NotSupported(m)) => m,
        other => panic!("{sql}: expected NotSupported, got {other:?}"),
    }
}

fn asc(column: usize) -> SortKey {
    SortKey { column, descending: false }
}

fn desc(column: usize) -> SortKey {
    SortKey { column, descending: true }
}

#[test]
fn plain_scatter_is_passthrough() {
    let (sql, plan) = scatter("SELECT id, total FROM orders WHERE total > 10");
    assert_eq!(sql, None);
    assert!(plan.is_passthrough());
    assert_eq!(plan.visible_columns, 2);
}

#[test]
fn order_limit_offset() {
    let (sql, plan) = scatter("SELECT id, total FROM orders ORDER BY total DESC, id LIMIT 10 OFFSET 5");
    assert_eq!(sql.as_deref(), Some("SELECT id, total FROM orders ORDER BY total DESC, id LIMIT 15"));
    assert_eq!(plan.order_by, vec![desc(1), asc(0)]);
    assert_eq!((plan.limit, plan.offset, plan.visible_columns, plan.hidden_columns), (Some(10), 5, 2, 0));
    let (sql, plan) = scatter("SELECT id, total FROM orders ORDER BY 2 LIMIT 5, 10");
    assert_eq!(sql.as_deref(), Some("SELECT id, total FROM orders ORDER BY 2 LIMIT 15"));
    assert_eq!((plan.order_by, plan.limit, plan.offset), (vec![asc(1)], Some(10), 5));
    // LIMIT without OFFSET needs no rewrite.
    let (sql, plan) = scatter("SELECT id AS i FROM orders ORDER BY i LIMIT 3");
    assert_eq!(sql, None);
    assert_eq!((plan.order_by, plan.limit, plan.offset), (vec![asc(0)], Some(3), 0));
    // Parameters: the LIMIT is read from them, the text is self-contained.
    let (sql, plan) = scatter_with("SELECT id FROM orders WHERE note = ? ORDER BY id LIMIT ? OFFSET ?", &[MyValue::Bytes(b"a'b".to_vec()), MyValue::Int(4), MyValue::UInt(2)]);
    assert_eq!(sql.as_deref(), Some("SELECT id FROM orders WHERE note = 'a''b' ORDER BY id LIMIT 6"));
    assert_eq!((plan.limit, plan.offset), (Some(4), 2));
    assert!(unsupported("SELECT id FROM orders LIMIT ?").contains("LIMIT"));
}

#[test]
fn order_by_hidden_columns() {
    let (sql, plan) = scatter("SELECT id FROM orders ORDER BY created_at DESC, LOWER(note)");
    assert_eq!(sql.as_deref(), Some("SELECT id, created_at, LOWER(note) FROM orders ORDER BY created_at DESC, LOWER(note)"));
    assert_eq!(plan.order_by, vec![desc(1), asc(2)]);
    assert_eq!((plan.visible_columns, plan.hidden_columns), (1, 2));
    // SELECT *: the width is unknown, the hidden column is counted from the end.
    let (sql, plan) = scatter("SELECT * FROM orders ORDER BY created_at LIMIT 3");
    assert_eq!(sql.as_deref(), Some("SELECT *, created_at FROM orders ORDER BY created_at LIMIT 3"));
    assert_eq!(plan.visible_columns, MergePlan::UNKNOWN_WIDTH);
    assert_eq!(plan.hidden_columns, 1);
    assert_eq!(plan.order_by, vec![asc(MergePlan::HIDDEN_BASE)]);
    let resolved = plan.resolve(6);
    assert_eq!((resolved.order_by[0].column, resolved.visible_columns), (5, 5));
    assert!(unsupported("SELECT * FROM orders ORDER BY 1").contains("position"));
    assert!(unsupported("SELECT id FROM orders ORDER BY 3").contains("position 3"));
    // ORDER BY syntax that sqlparser would not read back in the select list (fuzz finding).
    assert!(unsupported("SELECT o.id FROM orders o ORDER BY o. 3").contains("ORDER BY"));
}

#[test]
fn aggregates() {
    let (sql, plan) = scatter("SELECT COUNT(*), SUM(total), MIN(total), MAX(total) FROM orders");
    assert_eq!(sql, None);
    assert_eq!(
        plan.aggregates,
        vec![
            Aggregate { column: 0, func: AggFunc::Count },
            Aggregate { column: 1, func: AggFunc::Sum },
            Aggregate { column: 2, func: AggFunc::Min },
            Aggregate { column: 3, func: AggFunc::Max },
        ]
    );
    assert!(plan.group_by.is_empty());
    let (sql, plan) = scatter("SELECT status, AVG(total) AS a FROM orders GROUP BY status ORDER BY a DESC LIMIT 2");
    assert_eq!(sql.as_deref(), Some("SELECT status, AVG(total) AS a, SUM(total), COUNT(total) FROM orders GROUP BY status ORDER BY a DESC"));
    assert_eq!(plan.group_by, vec![0]);
    assert_eq!(
        plan.aggregates,
        vec![
            Aggregate { column: 2, func: AggFunc::Sum },
            Aggregate { column: 3, func: AggFunc::Count },
            Aggregate { column: 1, func: AggFunc::Avg { sum: 2, count: 3 } },
        ]
    );
    assert_eq!(plan.order_by, vec![desc(1)]);
    assert_eq!((plan.limit, plan.offset, plan.visible_columns, plan.hidden_columns), (Some(2), 0, 2, 2));
    // AVG reuses a selected SUM.
    let (sql, plan) = scatter("SELECT AVG(total), SUM(total) FROM orders");
    assert_eq!(sql.as_deref(), Some("SELECT AVG(total), SUM(total), COUNT(total) FROM orders"));
    assert!(plan.aggregates.contains(&Aggregate { column: 0, func: AggFunc::Avg { sum: 1, count: 2 } }));
    assert_eq!(plan.aggregates.iter().filter(|a| a.column == 1).count(), 1);
}

#[test]
fn group_by() {
    let (sql, plan) = scatter("SELECT COUNT(*) FROM orders GROUP BY status");
    assert_eq!(sql.as_deref(), Some("SELECT COUNT(*), status FROM orders GROUP BY status"));
    assert_eq!((plan.group_by, plan.visible_columns, plan.hidden_columns), (vec![1], 1, 1));
    let (_, plan) = scatter("SELECT DATE(created_at) AS d, COUNT(*) AS n FROM orders GROUP BY d ORDER BY n DESC, 1");
    assert_eq!(plan.group_by, vec![0]);
    assert_eq!(plan.order_by, vec![desc(1), asc(0)]);
    let (sql, plan) = scatter("SELECT customer_id FROM orders GROUP BY customer_id ORDER BY SUM(total) DESC LIMIT 1, 2");
    assert_eq!(sql.as_deref(), Some("SELECT customer_id, SUM(total) FROM orders GROUP BY customer_id ORDER BY SUM(total) DESC"));
    assert_eq!(plan.aggregates, vec![Aggregate { column: 1, func: AggFunc::Sum }]);
    assert_eq!((plan.order_by, plan.limit, plan.offset), (vec![desc(1)], Some(2), 1));
}

#[test]
fn distinct() {
    let (sql, plan) = scatter("SELECT DISTINCT status FROM orders ORDER BY status LIMIT 5");
    assert_eq!(sql, None);
    assert!(plan.distinct);
    assert_eq!((plan.order_by, plan.limit), (vec![asc(0)], Some(5)));
    assert!(unsupported("SELECT DISTINCT status FROM orders ORDER BY created_at").contains("DISTINCT"));
    assert!(unsupported("SELECT DISTINCT status, COUNT(*) FROM orders GROUP BY status").contains("DISTINCT"));
}

#[test]
fn refused_across_shards() {
    for (sql, word) in [
        ("SELECT COUNT(DISTINCT customer_id) FROM orders", "DISTINCT"),
        ("SELECT SUM(DISTINCT total) FROM orders", "DISTINCT"),
        ("SELECT SUM(total) + 1 FROM orders", "inside expressions"),
        ("SELECT status, COUNT(*) FROM orders GROUP BY status HAVING COUNT(*) > 1", "HAVING"),
        ("SELECT GROUP_CONCAT(note) FROM orders", "GROUP_CONCAT"),
        ("SELECT ROW_NUMBER() OVER (ORDER BY id) FROM orders", "window"),
        ("SELECT status, COUNT(*) FROM orders GROUP BY status WITH ROLLUP", "ROLLUP"),
        ("SELECT SQL_CALC_FOUND_ROWS id FROM orders LIMIT 1", "SQL_CALC_FOUND_ROWS"),
        ("SELECT id INTO @x FROM orders LIMIT 1", "INTO"),
        ("SELECT *, COUNT(*) FROM orders", "SELECT *"),
        ("SELECT * FROM orders GROUP BY status", "SELECT *"),
    ] {
        let m = unsupported(sql);
        assert!(m.contains(word), "{sql}: {m}");
    }
    // The same statements pinned to one shard are fine.
    assert_eq!(route_sql("SELECT COUNT(DISTINCT note) FROM orders WHERE customer_id = 42").unwrap().target, Target::Single { shard: shard(42) });
    assert_eq!(route_sql("SELECT status FROM orders WHERE customer_id = 42 GROUP BY status HAVING COUNT(*) > 1").unwrap().target, Target::Single { shard: shard(42) });
}

#[test]
fn multi_shard_select_has_a_plan() {
    let k = keys_on_distinct_shards(2);
    let sql = format!("SELECT id, total FROM orders WHERE customer_id IN ({}, {}) ORDER BY total LIMIT 2 OFFSET 1", k[0], k[1]);
    match route_sql(&sql).unwrap().target {
        Target::Multi { shards, merge, sql } => {
            let mut want = vec![shard(k[0]), shard(k[1])];
            want.sort();
            assert_eq!(shards, want);
            assert_eq!(sql.unwrap(), format!("SELECT id, total FROM orders WHERE customer_id IN ({}, {}) ORDER BY total LIMIT 3", k[0], k[1]));
            assert_eq!((merge.order_by, merge.limit, merge.offset), (vec![asc(1)], Some(2), 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn join_scatter_uses_the_outer_plan() {
    let (sql, plan) = scatter("SELECT c.name, SUM(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY 2 DESC LIMIT 3");
    assert_eq!(sql.as_deref(), Some("SELECT c.name, SUM(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY 2 DESC"));
    assert_eq!(plan.group_by, vec![0]);
    assert_eq!(plan.aggregates, vec![Aggregate { column: 1, func: AggFunc::Sum }]);
    assert_eq!((plan.order_by, plan.limit), (vec![desc(1)], Some(3)));
}
