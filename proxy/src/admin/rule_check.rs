//! The precheck of `rule add`: what one MariaDB enforces that shards cannot.
//!
//! Contract: before a sharding rule for `db.table` by `column` is accepted without `--force`,
//! the table's definition is read from the home shard's primary (information_schema). If the
//! table exists there, the rule is refused when the column is not one of its columns, or when
//! its primary key or a unique key does not contain the column: each shard would enforce that
//! key only for its own rows, so two rows with the same key but different shard-column values
//! could both be inserted where one MariaDB answers 1062. A table not yet created passes (its
//! CREATE TABLE runs on every shard later); a home shard that cannot be asked refuses, saying
//! how to retry or force.

use crate::backend::Backends;
use mysql_async::prelude::Queryable;
use slotgate_shared::{ShardingRule, Topology};
use std::time::Duration;

/// One unique key of a table: its name and its columns in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    pub name: String,
    pub columns: Vec<String>,
}

/// Groups `(index name, column)` rows, in key order, into keys.
pub fn group_keys(rows: Vec<(String, String)>) -> Vec<UniqueKey> {
    let mut keys: Vec<UniqueKey> = Vec::new();
    for (name, column) in rows {
        match keys.last_mut() {
            Some(k) if k.name == name => k.columns.push(column),
            _ => keys.push(UniqueKey { name, columns: vec![column] }),
        }
    }
    keys
}

/// The refusal for a rule by `column` over a table with `columns` and `keys`, if any.
/// Column names compare case-insensitively, as MariaDB compares them.
pub fn refusal(rule: &ShardingRule, columns: &[String], keys: &[UniqueKey]) -> Option<String> {
    let table = format!("{}.{}", rule.database, rule.table);
    if !columns.iter().any(|c| c.eq_ignore_ascii_case(&rule.column)) {
        return Some(format!(
            "table {table} has no column {:?} (its columns: {}); the rule would route no row by it: check the name, or pass --force",
            rule.column,
            columns.join(", ")
        ));
    }
    let uncovered: Vec<String> = keys
        .iter()
        .filter(|k| !k.columns.iter().any(|c| c.eq_ignore_ascii_case(&rule.column)))
        .map(|k| {
            let what = if k.name == "PRIMARY" { "PRIMARY KEY".to_string() } else { format!("UNIQUE KEY {}", k.name) };
            format!("{what} ({})", k.columns.join(", "))
        })
        .collect();
    if uncovered.is_empty() {
        return None;
    }
    Some(format!(
        "{table} has {} without the shard column {}: each shard would enforce it only for its own rows, so a duplicate with another {} would be accepted where one MariaDB answers 1062; add {} to the key, or pass --force to accept uniqueness per shard",
        uncovered.join(" and "),
        rule.column,
        rule.column,
        rule.column
    ))
}

/// Reads the table's columns and unique keys from the home shard and applies [`refusal`].
pub async fn check_rule(backends: &Backends, t: &Topology, rule: &ShardingRule) -> Result<(), String> {
    let home = t.shards.get(t.home_index()).map(|s| s.id.as_str()).unwrap_or_default();
    let cannot = |e: String| {
        format!(
            "cannot read the definition of {}.{} on the home shard {home:?} ({e}); retry when it answers, or pass --force",
            rule.database, rule.table
        )
    };
    let pool = backends.primary(home).ok_or_else(|| cannot("no pool for this shard".into()))?;
    let work = async {
        let mut c = pool.acquire(false).await.map_err(|e| e.to_string())?;
        let args = (rule.database.as_str(), rule.table.as_str());
        let columns: Vec<String> = c
            .conn()
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                args,
            )
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<(String, String)> = c
            .conn()
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                args,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((columns, group_keys(rows)))
    };
    let (columns, keys) = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| cannot("timed out after 10 s".into()))?
        .map_err(cannot)?;
    if columns.is_empty() {
        // Not created yet: nothing to check.
        return Ok(());
    }
    match refusal(rule, &columns, &keys) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(column: &str) -> ShardingRule {
        ShardingRule { database: "d".into(), table: "orders".into(), column: column.into() }
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_group_in_order() {
        let keys = group_keys(vec![
            ("PRIMARY".into(), "a".into()),
            ("PRIMARY".into(), "b".into()),
            ("u".into(), "c".into()),
        ]);
        assert_eq!(keys, vec![UniqueKey { name: "PRIMARY".into(), columns: cols(&["a", "b"]) }, UniqueKey { name: "u".into(), columns: cols(&["c"]) }]);
    }

    #[test]
    fn a_key_without_the_shard_column_is_refused() {
        let keys = group_keys(vec![("PRIMARY".into(), "order_id".into()), ("by_user".into(), "User_Id".into())]);
        let why = refusal(&rule("user_id"), &cols(&["order_id", "user_id"]), &keys).expect("refused");
        assert!(why.contains("PRIMARY KEY (order_id)") && why.contains("1062") && why.contains("--force"), "{why}");
        assert!(!why.contains("by_user"), "{why}");
    }

    #[test]
    fn keys_with_the_shard_column_pass() {
        let keys = group_keys(vec![("PRIMARY".into(), "user_id".into()), ("PRIMARY".into(), "order_id".into())]);
        assert_eq!(refusal(&rule("USER_ID"), &cols(&["order_id", "user_id"]), &keys), None);
        assert_eq!(refusal(&rule("user_id"), &cols(&["user_id"]), &[]), None);
    }

    #[test]
    fn an_unknown_column_is_refused() {
        let why = refusal(&rule("uid"), &cols(&["id", "name"]), &[]).expect("refused");
        assert!(why.contains("no column \"uid\"") && why.contains("id, name"), "{why}");
    }
}
