//! INSERT / REPLACE routing, and the split of a multi-row INSERT over shards.
//!
//! Contract: an INSERT into an unsharded table goes home (refused if it reads sharded tables).
//! Into a sharded table it needs a column list naming the shard key and, in every row, a key
//! that is a literal or a bound `?` (NULL, DEFAULT or a missing key: `MissingShardKey`;
//! other expressions: NotSupported). Rows all on one shard: that shard, original text. Rows on
//! several shards: one INSERT per shard (in shard order) holding exactly its rows, in their
//! original order, keeping IGNORE / REPLACE / ON DUPLICATE KEY UPDATE, with parameters inlined.
//! INSERT ... SELECT into a sharded table, subqueries in the values, RETURNING on a split, and
//! ON DUPLICATE KEY UPDATE of the key column are refused.

use super::key::{key_of_expr, KeyLit};
use super::literal::render;
use super::decide::Decision;
use super::scope::{idents, table_name, Analyzer, Slots};
use super::{Route, RouteContext, RouteError, StatementKind, Target};
use slotgate_shared::{slot_of, Topology};
use sqlparser::ast::{Assignment, AssignmentTarget, Expr, Insert, ObjectName, OnInsert, SetExpr, Statement, TableObject};
use std::collections::BTreeMap;

pub(crate) fn route_insert(ins: &Insert, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let write = |target| Ok(Route::new(StatementKind::Write, target));
    let TableObject::TableName(name) = &ins.table else {
        return Err(RouteError::unsupported("INSERT INTO a table function is not supported"));
    };
    let (db, table) = table_name(name, ctx.database).ok_or_else(|| RouteError::unsupported("this INSERT target is not supported"))?;
    let rule = db.as_deref().and_then(|d| topo.rule(d, &table));
    // Tables read by the INSERT itself (INSERT ... SELECT, subqueries in values or assignments).
    let mut a = Analyzer::new(topo, ctx);
    if let Some(q) = &ins.source {
        a.query(q, 1);
    }
    a.scope(&[], None, 1, |a| {
        a.scan(&ins.assignments, 1);
        a.scan(&ins.on, 1);
    });
    let Some(rule) = rule else {
        return match a.decide() {
            Ok(Decision::Unsharded) => write(Target::Home),
            _ => Err(RouteError::unsupported(
                "INSERT into an unsharded table reading sharded tables is not supported: read them first, then insert",
            )),
        };
    };
    let full = format!("{}.{}", db.as_deref().unwrap_or_default(), table);
    let missing = || RouteError::MissingShardKey { table: full.clone(), column: rule.column.clone() };
    let is_key = |n: &ObjectName| idents(n).and_then(|p| p.last().cloned()).is_some_and(|c| c.eq_ignore_ascii_case(&rule.column));
    if !a.refs.is_empty() {
        return Err(RouteError::unsupported(
            "INSERT ... SELECT (or subqueries reading tables) into a sharded table is not supported: select first, then insert the rows",
        ));
    }
    match &ins.on {
        None => {}
        Some(OnInsert::DuplicateKeyUpdate(list)) if list.iter().any(|x| assigns(x, &is_key)) => {
            return Err(RouteError::unsupported(format!(
                "ON DUPLICATE KEY UPDATE of the shard key column '{}' is not supported: a row cannot move between shards",
                rule.column
            )));
        }
        Some(OnInsert::DuplicateKeyUpdate(_)) => {}
        Some(_) => return Err(RouteError::unsupported("this ON CONFLICT clause is not supported")),
    }
    let slots = std::cell::Cell::new(Slots::None);
    let shard_of = |e: &Expr| match key_of_expr(e, ctx.params) {
        KeyLit::Known(k) => {
            let slot = slot_of(&k, topo.slot_count);
            slots.set(slots.get().add(slot));
            Ok(topo.shard_of_slot(slot))
        }
        KeyLit::Null => Err(missing()),
        KeyLit::Unknown if matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("DEFAULT") && i.quote_style.is_none()) => {
            Err(missing())
        }
        KeyLit::Unknown => Err(RouteError::unsupported(format!(
            "the shard key '{}' in an INSERT into a sharded table must be a literal or a ? parameter",
            rule.column
        ))),
    };
    let Some(source) = &ins.source else {
        // INSERT ... SET col = value, ...
        let value = ins.assignments.iter().find(|x| assigns(x, &is_key)).map(|x| &x.value).ok_or_else(missing)?;
        let shard = shard_of(value)?;
        return write(Target::Single { shard }).map(|r: Route| r.on_slot(slots.get().one()));
    };
    let SetExpr::Values(values) = &*source.body else {
        return Err(RouteError::unsupported("INSERT ... SELECT into a sharded table is not supported: select first, then insert the rows"));
    };
    if source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some() {
        return Err(RouteError::unsupported("this INSERT form into a sharded table is not supported"));
    }
    if ins.columns.is_empty() {
        return Err(RouteError::unsupported(format!(
            "INSERT into sharded table {full} without a column list is not supported: name the columns (the shard key '{}' among them)",
            rule.column
        )));
    }
    let key_at = ins.columns.iter().position(is_key).ok_or_else(missing)?;
    let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, row) in values.rows.iter().enumerate() {
        let key = row.content.get(key_at).ok_or_else(missing)?;
        by_shard.entry(shard_of(key)?).or_default().push(i);
    }
    if by_shard.len() <= 1 {
        let shard = by_shard.keys().next().copied().unwrap_or(topo.home_index());
        return write(Target::Single { shard }).map(|r: Route| r.on_slot(slots.get().one()));
    }
    if ins.returning.is_some() {
        return Err(RouteError::unsupported("INSERT ... RETURNING with rows for several shards is not supported: insert them one shard at a time"));
    }
    let mut parts = Vec::with_capacity(by_shard.len());
    for (shard, rows) in by_shard {
        let mut part = ins.clone();
        if let Some(src) = &mut part.source {
            if let SetExpr::Values(v) = &mut *src.body {
                v.rows = rows.iter().filter_map(|i| values.rows.get(*i).cloned()).collect();
            }
        }
        parts.push((shard, render(&Statement::Insert(part), ctx.params)?));
    }
    write(Target::Split { parts })
}

/// Whether an assignment sets a column `is_key` accepts.
fn assigns(a: &Assignment, is_key: &dyn Fn(&ObjectName) -> bool) -> bool {
    match &a.target {
        AssignmentTarget::ColumnName(n) => is_key(n),
        AssignmentTarget::Tuple(names) => names.iter().any(is_key),
    }
}
