//! Tests of the foreign-row filter: while a migration copies slots to a shard, multi-shard
//! statements reaching that shard hide the copies; single-shard statements are untouched.

use super::tests::topo;
use super::*;
use mysql_common::value::Value as MyValue;
use slotgate_shared::{SlotRange, TopologyCommand};

/// The test topology with slots 0-1 of their owner being copied to s2.
fn migrating() -> (Topology, usize) {
    let t = topo();
    let owner = t.shard_of_slot(0);
    let to = if owner == 2 { "s3" } else { "s2" };
    let t = TopologyCommand::MigrationBegin { slots: vec![SlotRange { first: 0, last: 1 }], to: to.into(), retire_source: false, split: false }.apply(Some(&t)).unwrap();
    let idx = t.shards.iter().position(|s| s.id == to).unwrap();
    (t, idx)
}

fn routed(sql: &str, params: &[MyValue]) -> Result<(Route, usize), RouteError> {
    let (t, idx) = migrating();
    let p = Parsed::parse(sql)?;
    route(&p, &t, &RouteContext { database: Some("shop"), params }).map(|r| (r, idx))
}

fn text_on_target(sql: &str) -> String {
    let (r, idx) = routed(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    assert_eq!(r.per_shard.len(), 1, "{sql}: only the target holds foreign rows: {:?}", r.per_shard);
    r.text_for(idx).unwrap_or_else(|| panic!("{sql}: no text for the target")).to_string()
}

const HIDE: &str = "CRC32(`orders`.`customer_id`) % 1024 NOT IN (0, 1)";

#[test]
fn scatter_reads_hide_the_copies_on_the_target_only() {
    let t = text_on_target("SELECT COUNT(*) FROM orders");
    assert!(t.contains("WHERE (`orders`.`customer_id` IS NULL OR CRC32(`orders`.`customer_id`) % 1024 NOT IN (0, 1))"), "{t}");
    let t = text_on_target("SELECT o.id FROM orders o WHERE o.status = 'x' ORDER BY o.id LIMIT 3");
    assert!(t.contains("(o.status = 'x') AND (`o`.`customer_id` IS NULL"), "{t}");
    assert!(t.contains("LIMIT 3"), "the route's rewrite is kept: {t}");
    let t = text_on_target("SELECT * FROM shop.orders");
    assert!(t.contains("`shop`.`orders`.`customer_id`"), "{t}");
}

#[test]
fn joins_are_filtered_by_side() {
    let t = text_on_target("SELECT c.id, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id");
    assert!(t.contains("ON (o.customer_id = c.id) AND (`o`.`customer_id` IS NULL"), "the nullable side is filtered in its ON: {t}");
    assert!(t.contains("WHERE (`c`.`id` IS NULL OR CRC32(`c`.`id`)"), "the preserved side in WHERE: {t}");
    let t = text_on_target("SELECT o.id FROM orders o JOIN order_items i ON i.customer_id = o.customer_id WHERE i.n > (SELECT 1)");
    assert_eq!(t.matches("NOT IN (0, 1)").count(), 2, "both sides of a co-located join: {t}");
    let t = text_on_target("SELECT id FROM orders WHERE customer_id IN (1, 2, 3, 4, 5, 6, 7, 8)");
    assert_eq!(t.matches(HIDE).count(), 1, "{t}");
}

#[test]
fn writes_across_shards_skip_the_copies() {
    let t = text_on_target("UPDATE orders SET status = 'x' WHERE status = ?");
    assert!(t.contains("WHERE (status = ?) AND (`orders`.`customer_id` IS NULL"), "{t}");
    let (r, idx) = routed("DELETE FROM orders WHERE status = ?", &[MyValue::Bytes(b"gone".to_vec())]).unwrap();
    let t = r.text_for(idx).unwrap();
    assert!(t.contains("status = 'gone'") && t.contains(HIDE), "parameters are inlined: {t}");
}

#[test]
fn single_shard_and_unsharded_statements_are_untouched() {
    for sql in ["SELECT * FROM orders WHERE customer_id = 42", "SELECT * FROM settings", "UPDATE orders SET status = 'x' WHERE customer_id = 7"] {
        let (r, _) = routed(sql, &[]).unwrap();
        assert!(r.per_shard.is_empty(), "{sql}: {:?}", r.per_shard);
    }
    let (r, _) = routed("SELECT COUNT(*) FROM orders", &[]).unwrap();
    let plain = route(&Parsed::parse("SELECT COUNT(*) FROM orders").unwrap(), &topo(), &RouteContext { database: Some("shop"), params: &[] }).unwrap();
    assert_eq!(r.target, plain.target, "the route itself does not change");
    assert!(plain.per_shard.is_empty(), "no migration, no filter");
}

#[test]
fn joins_that_cannot_be_filtered_exactly_are_refused() {
    for sql in [
        "SELECT * FROM customers c RIGHT JOIN orders o ON o.customer_id = c.id",
        "SELECT * FROM orders o LEFT JOIN order_items i USING (customer_id)",
        "SELECT * FROM orders x LEFT JOIN (orders o JOIN order_items i ON i.customer_id = o.customer_id) ON x.customer_id = o.customer_id",
    ] {
        match routed(sql, &[]) {
            Err(RouteError::NotSupported(m)) => assert!(m.contains("online migration"), "{sql}: {m}"),
            other => panic!("{sql}: expected 1235, got {other:?}"),
        }
    }
}

#[test]
fn a_shard_without_slots_is_not_asked() {
    use slotgate_shared::{Shard, ShardState};
    let shard = Shard { id: "new".into(), state: ShardState::Active, primary: "127.0.0.1:2".into(), replicas: vec![] };
    let t = TopologyCommand::AddShard { shard }.apply(Some(&topo())).unwrap();
    let p = Parsed::parse("SELECT COUNT(*) FROM orders").unwrap();
    let r = route(&p, &t, &RouteContext { database: Some("shop"), params: &[] }).unwrap();
    assert!(matches!(&r.target, Target::Scatter { shards, .. } if shards == &vec![0, 1, 2, 3]), "{:?}", r.target);
    let p = Parsed::parse("DELETE FROM orders WHERE status = 'x'").unwrap();
    let r = route(&p, &t, &RouteContext { database: Some("shop"), params: &[] }).unwrap();
    assert_eq!(r.target, Target::ScatterWrite { shards: vec![0, 1, 2, 3] });
    let p = Parsed::parse("ALTER TABLE orders ADD COLUMN x INT").unwrap();
    let r = route(&p, &t, &RouteContext { database: Some("shop"), params: &[] }).unwrap();
    assert_eq!(r.target, Target::Broadcast { shards: vec![0, 1, 2, 3, 4] }, "DDL reaches the new shard too");
}
