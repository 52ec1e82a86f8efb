//! UPDATE / DELETE routing.
//!
//! Contract: a statement whose sharded tables are all pinned to one shard (WHERE key = / IN,
//! co-located joins) runs there with its original text; pinned to several shards it runs on
//! those (`Multi`, passthrough merge: affected rows are summed); unpinned it runs on every
//! shard (`ScatterWrite`). Refused: setting the shard key to a value not provably on the
//! row's own shard (a row cannot move between shards), LIMIT on several shards, joins or
//! subqueries that are not co-located.

use super::foreign::{attach, Node};
use super::key::{key_of_expr, KeyLit};
use super::literal::render;
use super::merge::MergePlan;
use super::decide::Decision;
use super::scope::Analyzer;
use super::{Route, RouteContext, RouteError, StatementKind, Target};
use slotgate_shared::Topology;
use sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr, FromTable, ObjectName, ObjectNamePart, TableWithJoins, Update, UpdateTableFromKind,
};

pub(crate) fn route_update(u: &Update, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let mut from: Vec<&TableWithJoins> = vec![&u.table];
    if let Some(UpdateTableFromKind::BeforeSet(v) | UpdateTableFromKind::AfterSet(v)) = &u.from {
        from.extend(v.iter());
    }
    let mut exprs: Vec<&Expr> = u.assignments.iter().map(|a| &a.value).collect();
    exprs.extend(u.selection.iter());
    exprs.extend(u.order_by.iter().map(|o| &o.expr));
    exprs.extend(u.limit.iter());
    let mut route = route_dml(&from, u.selection.as_ref(), &exprs, &u.assignments, u.limit.is_some(), topo, ctx)?;
    attach(&mut route, Node::Update(u), topo, ctx, &print(ctx))?;
    Ok(route)
}

pub(crate) fn route_delete(d: &Delete, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let mut from: Vec<&TableWithJoins> = match &d.from {
        FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v.iter().collect(),
    };
    if let Some(using) = &d.using {
        from.extend(using.iter());
    }
    let mut exprs: Vec<&Expr> = d.selection.iter().collect();
    exprs.extend(d.order_by.iter().map(|o| &o.expr));
    exprs.extend(d.limit.iter());
    let mut route = route_dml(&from, d.selection.as_ref(), &exprs, &[], d.limit.is_some(), topo, ctx)?;
    attach(&mut route, Node::Delete(d), topo, ctx, &print(ctx))?;
    Ok(route)
}

/// An UPDATE or DELETE printed with its parameters inlined.
fn print<'c>(ctx: &'c RouteContext<'_>) -> impl Fn(&Node<'_>) -> Result<String, RouteError> + 'c {
    move |n| match n {
        Node::Update(u) => render(*u, ctx.params),
        Node::Delete(d) => render(*d, ctx.params),
        Node::Query(q) => render(*q, ctx.params),
    }
}

fn route_dml(
    from: &[&TableWithJoins],
    selection: Option<&Expr>,
    exprs: &[&Expr],
    assignments: &[Assignment],
    has_limit: bool,
    topo: &Topology,
    ctx: &RouteContext<'_>,
) -> Result<Route, RouteError> {
    let mut a = Analyzer::new(topo, ctx);
    a.scope(from, selection, 0, |a| {
        for e in exprs {
            a.scan(*e, 0);
        }
    });
    let decision = a.decide()?;
    // Assignments to a shard key: allowed only to a known value on the row's own shard.
    let mut key_targets = Vec::new();
    for asg in assignments {
        let names: Vec<&ObjectName> = match &asg.target {
            AssignmentTarget::ColumnName(n) => vec![n],
            AssignmentTarget::Tuple(ns) => ns.iter().collect(),
        };
        for n in names {
            let Some(col) = column_expr(n) else { continue };
            if let Some(id) = a.resolve_top(&col) {
                let column = a.refs.get(id).and_then(|r| r.key.clone()).unwrap_or_default();
                key_targets.push((column, &asg.value, matches!(asg.target, AssignmentTarget::Tuple(_))));
            }
        }
    }
    let write = |target| Ok(Route::new(StatementKind::Write, target));
    let moves = |shard: Option<usize>| -> Result<(), RouteError> {
        for (column, value, tuple) in &key_targets {
            let same = match (shard, key_of_expr(value, ctx.params), tuple) {
                (Some(s), KeyLit::Known(k), false) => topo.shard_for_key(&k) == s,
                _ => false,
            };
            if !same {
                return Err(RouteError::unsupported(format!(
                    "updating the shard key column '{column}' is not supported: a row cannot move between shards; delete it and insert it again"
                )));
            }
        }
        Ok(())
    };
    match decision {
        Decision::Unsharded => write(Target::Home),
        Decision::Single(shard) => {
            moves(Some(shard))?;
            write(Target::Single { shard }).map(|r: Route| r.on_slot(a.slots.get().one()))
        }
        Decision::Spread { shards, everywhere } => {
            moves(None)?;
            if has_limit {
                return Err(RouteError::unsupported(
                    "UPDATE/DELETE with LIMIT across shards is not supported: pin the shard key in WHERE",
                ));
            }
            if everywhere {
                write(Target::ScatterWrite { shards })
            } else {
                write(Target::Multi { shards, merge: MergePlan::passthrough(), sql: None })
            }
        }
    }
}

/// A SET target as a column expression.
fn column_expr(n: &ObjectName) -> Option<Expr> {
    let parts: Option<Vec<_>> = n
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.clone()),
            _ => None,
        })
        .collect();
    let mut parts = parts?;
    match parts.len() {
        1 => parts.pop().map(Expr::Identifier),
        2 | 3 => Some(Expr::CompoundIdentifier(parts)),
        _ => None,
    }
}
