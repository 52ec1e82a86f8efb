//! SELECT routing, and the rewrite of a SELECT that runs on several shards plus its MergePlan.
//!
//! Contract: `route_query` sends a SELECT to the home shard (no sharded table), one shard
//! (every sharded table pinned to it), or several shards with a rewrite that makes merging
//! exact: ORDER BY / GROUP BY expressions and AVG's SUM and COUNT not in the select list are
//! appended as hidden columns; `LIMIT n OFFSET m` becomes `LIMIT m+n` (dropped for GROUP BY /
//! aggregate queries, whose groups must be complete before limiting); parameters are inlined in
//! the rewritten text. What cannot be merged exactly is refused: HAVING, COUNT(DISTINCT)/
//! SUM(DISTINCT)/AVG(DISTINCT), other aggregates (GROUP_CONCAT, STD, ...), aggregates inside
//! expressions, window functions, WITH ROLLUP, UNION, SELECT ... INTO, SQL_CALC_FOUND_ROWS,
//! DISTINCT with hidden columns or with aggregates, `*` with aggregates.

use super::aggregate::{aggregate_of, no_nested_aggregate, AggKind};
use super::foreign::{attach, Node};
use super::literal::render;
use super::merge::{AggFunc, Aggregate, MergePlan, SortKey};
use super::decide::Decision;
use super::scope::Analyzer;
use super::{Route, RouteContext, RouteError, StatementKind, Target};
use mysql_common::value::Value as MyValue;
use slotgate_shared::Topology;
use std::ops::ControlFlow;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, LimitClause, ObjectName, OrderByKind, OrderBySort, Query, SelectItem, SetExpr, Value,
};

/// Routes a SELECT (or any query statement).
pub(crate) fn route_query(q: &Query, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let mut a = Analyzer::new(topo, ctx);
    a.query(q, 0);
    let kind = if a.refs.is_empty() { StatementKind::Session } else { StatementKind::Read };
    let target = match a.decide()? {
        Decision::Unsharded => Target::Home,
        Decision::Single(shard) => Target::Single { shard },
        Decision::Spread { shards, everywhere } => {
            let (sql, merge) = plan_select(q, ctx.params)?;
            if everywhere {
                Target::Scatter { shards, sql, merge }
            } else {
                Target::Multi { shards, merge, sql }
            }
        }
    };
    let slot = matches!(target, Target::Single { .. }).then(|| a.slots.get().one()).flatten();
    let mut route = Route::new(kind, target).on_slot(slot);
    let print = |n: &Node<'_>| match n {
        Node::Query(q) => match plan_select(q, ctx.params)?.0 {
            Some(sql) => Ok(sql),
            None => render(*q, ctx.params),
        },
        _ => Err(RouteError::unsupported("internal: a SELECT route printed another statement")),
    };
    attach(&mut route, Node::Query(q), topo, ctx, &print)?;
    Ok(route)
}

struct Item<'q> {
    expr: Option<&'q Expr>,
    alias: Option<&'q Ident>,
}

struct Planner<'q> {
    items: Vec<Item<'q>>,
    wildcard_at: Option<usize>,
    hidden: Vec<Expr>,
    aggregates: Vec<Aggregate>,
    aggregated: bool,
}

impl Planner<'_> {
    fn col_of(&self, i: usize) -> Option<usize> {
        match self.wildcard_at {
            Some(w) if i >= w => None,
            _ => Some(i),
        }
    }

    fn hidden_col(&self, j: usize) -> usize {
        if self.wildcard_at.is_some() {
            MergePlan::HIDDEN_BASE + j
        } else {
            self.items.len() + j
        }
    }

    /// A column holding `e`: a visible item with that exact expression, or a new hidden one.
    fn column_for(&mut self, e: Expr) -> usize {
        let visible = self.items.iter().enumerate().find(|(i, it)| it.expr == Some(&e) && self.col_of(*i).is_some());
        if let Some((i, _)) = visible {
            return i;
        }
        let j = match self.hidden.iter().position(|h| *h == e) {
            Some(j) => j,
            None => {
                self.hidden.push(e);
                self.hidden.len() - 1
            }
        };
        self.hidden_col(j)
    }

    fn push_aggregate(&mut self, column: usize, func: AggFunc) {
        if !self.aggregates.iter().any(|a| a.column == column) {
            self.aggregates.push(Aggregate { column, func });
        }
    }

    fn add_aggregate(&mut self, column: usize, kind: AggKind, e: &Expr) {
        self.aggregated = true;
        let func = match kind {
            AggKind::Count => AggFunc::Count,
            AggKind::Sum => AggFunc::Sum,
            AggKind::Min => AggFunc::Min,
            AggKind::Max => AggFunc::Max,
            AggKind::Avg => {
                let renamed = |name: &str| match e {
                    Expr::Function(f) => {
                        let mut f = f.clone();
                        f.name = ObjectName::from(vec![Ident::new(name)]);
                        Expr::Function(f)
                    }
                    other => other.clone(),
                };
                let sum = self.column_for(renamed("SUM"));
                let count = self.column_for(renamed("COUNT"));
                self.push_aggregate(sum, AggFunc::Sum);
                self.push_aggregate(count, AggFunc::Count);
                AggFunc::Avg { sum, count }
            }
        };
        self.push_aggregate(column, func);
    }

    /// A hidden column for an ORDER BY / GROUP BY expression not in the select list.
    fn hidden_output(&mut self, e: &Expr) -> Result<usize, RouteError> {
        match aggregate_of(e)? {
            Some(kind) => {
                let c = self.column_for(e.clone());
                self.add_aggregate(c, kind, e);
                Ok(c)
            }
            None => {
                no_nested_aggregate(e)?;
                selectable(e)?;
                Ok(self.column_for(e.clone()))
            }
        }
    }

    /// The result column an ORDER BY / GROUP BY expression refers to.
    fn output(&mut self, e: &Expr) -> Result<usize, RouteError> {
        if let Expr::Value(v) = e {
            if let Value::Number(n, false) = &v.value {
                if let Ok(p) = n.parse::<usize>() {
                    let i = p.checked_sub(1).filter(|i| *i < self.items.len()).ok_or_else(|| {
                        RouteError::unsupported(format!("ORDER BY/GROUP BY position {p} is not in the select list"))
                    })?;
                    return match (self.items[i].expr, self.col_of(i)) {
                        (Some(_), Some(c)) => Ok(c),
                        (Some(x), None) => self.hidden_output(x),
                        (None, _) => Err(RouteError::unsupported(
                            "ORDER BY/GROUP BY the position of a * column across shards is not supported: name the column",
                        )),
                    };
                }
            }
        }
        if let Expr::Identifier(id) = e {
            let by_alias = self.items.iter().position(|it| it.alias.is_some_and(|a| a.value.eq_ignore_ascii_case(&id.value)));
            if let Some(i) = by_alias {
                return match (self.col_of(i), self.items[i].expr) {
                    (Some(c), _) => Ok(c),
                    (None, Some(x)) => self.hidden_output(x),
                    (None, None) => self.hidden_output(e),
                };
            }
        }
        let same = self.items.iter().enumerate().find(|(i, it)| it.expr == Some(e) && self.col_of(*i).is_some()).map(|(i, _)| i);
        match same {
            Some(i) => Ok(i),
            None => self.hidden_output(e),
        }
    }
}

fn limit_number(e: &Expr, params: &[MyValue]) -> Result<u64, RouteError> {
    let bad = || RouteError::unsupported("LIMIT and OFFSET across shards must be numbers or ? parameters");
    let Expr::Value(v) = e else { return Err(bad()) };
    match &v.value {
        Value::Number(n, false) => n.parse().map_err(|_| bad()),
        Value::Placeholder(p) => match super::key::placeholder_index(p).and_then(|i| params.get(i)) {
            Some(MyValue::Int(i)) => u64::try_from(*i).map_err(|_| bad()),
            Some(MyValue::UInt(u)) => Ok(*u),
            Some(MyValue::Bytes(b)) => std::str::from_utf8(b).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(bad),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The text to send to each shard (None = the original) and how to merge the results.
pub(crate) fn plan_select(q: &Query, params: &[MyValue]) -> Result<(Option<String>, MergePlan), RouteError> {
    let unsupported = |what: &str| Err(RouteError::unsupported(format!("{what} across shards is not supported: pin the shard key in WHERE")));
    let SetExpr::Select(s) = &*q.body else {
        return unsupported("UNION/INTERSECT/EXCEPT or a parenthesized query");
    };
    if s.having.is_some() {
        return unsupported("HAVING");
    }
    if s.into.is_some() {
        return unsupported("SELECT ... INTO");
    }
    if s.select_modifiers.as_ref().is_some_and(|m| m.sql_calc_found_rows) {
        return unsupported("SQL_CALC_FOUND_ROWS");
    }
    if !s.named_window.is_empty() {
        return unsupported("WINDOW");
    }
    if s.top.is_some() || s.exclude.is_some() || s.prewhere.is_some() || s.qualify.is_some() || !s.lateral_views.is_empty()
        || !s.connect_by.is_empty() || !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty()
        || s.value_table_mode.is_some()
    {
        return unsupported("this SELECT clause");
    }
    if q.fetch.is_some() || q.for_clause.is_some() || q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty() {
        return unsupported("this query clause");
    }
    let mut p = Planner { items: Vec::new(), wildcard_at: None, hidden: Vec::new(), aggregates: Vec::new(), aggregated: false };
    for (i, item) in s.projection.iter().enumerate() {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                p.wildcard_at.get_or_insert(i);
                p.items.push(Item { expr: None, alias: None });
            }
            SelectItem::UnnamedExpr(e) => p.items.push(Item { expr: Some(e), alias: None }),
            SelectItem::ExprWithAlias { expr, alias } => p.items.push(Item { expr: Some(expr), alias: Some(alias) }),
            SelectItem::ExprWithAliases { .. } => return unsupported("this select list item"),
        }
    }
    for i in 0..p.items.len() {
        let Some(e) = p.items[i].expr else { continue };
        match aggregate_of(e)? {
            Some(kind) => match p.col_of(i) {
                Some(c) => p.add_aggregate(c, kind, e),
                None => return unsupported("SELECT * with aggregates"),
            },
            None => no_nested_aggregate(e)?,
        }
    }
    let mut group_by = Vec::new();
    match &s.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return unsupported("GROUP BY ... WITH ROLLUP");
            }
            for e in exprs {
                if aggregate_of(e)?.is_some() {
                    return unsupported("GROUP BY an aggregate");
                }
                group_by.push(p.output(e)?);
            }
            p.aggregated |= !exprs.is_empty();
        }
        GroupByExpr::All(_) => return unsupported("GROUP BY ALL"),
    }
    let mut order_by = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(list) = &ob.kind else { return unsupported("ORDER BY ALL") };
        if ob.interpolate.is_some() {
            return unsupported("INTERPOLATE");
        }
        for o in list {
            if o.with_fill.is_some() || o.options.nulls_first.is_some() {
                return unsupported("ORDER BY ... NULLS FIRST/LAST or WITH FILL");
            }
            let descending = match &o.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(_) => return unsupported("ORDER BY ... USING"),
            };
            order_by.push(SortKey { column: p.output(&o.expr)?, descending });
        }
    }
    if p.wildcard_at.is_some() && p.aggregated {
        return unsupported("SELECT * with GROUP BY or aggregates");
    }
    let distinct = match &s.distinct {
        None | Some(Distinct::All) => false,
        Some(Distinct::Distinct) => true,
        Some(Distinct::On(_)) => return unsupported("DISTINCT ON"),
    };
    if distinct && (p.aggregated || !p.hidden.is_empty()) {
        return unsupported("SELECT DISTINCT with aggregates, GROUP BY, or ORDER BY on a column that is not selected");
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return unsupported("LIMIT BY");
            }
            let l = limit.as_ref().map(|e| limit_number(e, params)).transpose()?;
            let o = offset.as_ref().map(|o| limit_number(&o.value, params)).transpose()?.unwrap_or(0);
            (l, o)
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit_number(limit, params)?), limit_number(offset, params)?),
    };
    // Shards return offset + limit rows (all rows for aggregates, whose groups must be whole).
    let pushed = match limit {
        Some(n) if !p.aggregated => Some(n.saturating_add(offset)),
        _ => None,
    };
    let limit_unchanged = match &q.limit_clause {
        None => pushed.is_none(),
        Some(LimitClause::LimitOffset { limit: Some(e), offset: None, .. }) => {
            matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, false) if Some(n.as_str()) == pushed.map(|x| x.to_string()).as_deref()))
        }
        Some(_) => false,
    };
    let sql = if p.hidden.is_empty() && limit_unchanged {
        None
    } else {
        let mut out = q.clone();
        if let SetExpr::Select(os) = &mut *out.body {
            os.projection.extend(p.hidden.iter().cloned().map(SelectItem::UnnamedExpr));
        }
        out.limit_clause = pushed.map(|n| LimitClause::LimitOffset {
            limit: Some(Expr::value(Value::Number(n.to_string(), false))),
            offset: None,
            limit_by: Vec::new(),
        });
        Some(render(&out, params)?)
    };
    let plan = MergePlan {
        order_by,
        limit,
        offset,
        group_by,
        aggregates: p.aggregates,
        distinct,
        visible_columns: if p.wildcard_at.is_some() { MergePlan::UNKNOWN_WIDTH } else { p.items.len() },
        hidden_columns: p.hidden.len(),
    };
    Ok((sql, plan))
}

/// Whether `e` can be copied into the select list sent to the shards. sqlparser reads some
/// syntax in ORDER BY that it refuses in a select list (a field access such as `o. 3`), so a
/// hidden column of it would not parse where one MariaDB might still answer: refused instead.
fn selectable(e: &Expr) -> Result<(), RouteError> {
    let found = sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::CompoundFieldAccess { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Break(()) => Err(RouteError::unsupported(format!(
            "ORDER BY / GROUP BY {e} across shards is not supported: order by a column of the select list (or its position), or pin the shard key"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}
