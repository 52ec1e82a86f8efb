//! Hiding the rows a shard holds for slots it does not own: while an online migration runs,
//! its target holds copies of the moving slots (until the cutover) and its source holds the
//! moved rows (until the cleanup). A statement that reaches one shard by key never meets them
//! (the key's owner is asked); a statement that reaches several shards would count them twice.
//!
//! Contract: [`per_shard`] gives, for each shard of a multi-shard route that holds foreign
//! rows, the statement with `(key IS NULL OR CRC32(key) % slot_count NOT IN (slots))` added
//! for every sharded table it reads or writes, where that filters the table's rows and nothing
//! else: in the WHERE of its SELECT / UPDATE / DELETE when the table is on the preserved side
//! of its joins, in the ON of its LEFT JOIN when it is on the nullable side. Subqueries, derived
//! tables, CTE bodies and UNION branches are filtered the same way; CTE names are not tables.
//! Where the condition cannot be placed exactly (RIGHT/FULL joins, LEFT JOIN with USING or
//! NATURAL, joins in parentheses around a sharded table) the statement is refused with 1235
//! while the migration runs. Texts are printed by the caller's `print` (its own rewrite).

use super::scope::{idents, table_name};
use super::{Route, RouteContext, RouteError, Target};
use slotgate_shared::Topology;
use sqlparser::ast::{
    BinaryOperator, Delete, Expr, FromTable, JoinConstraint, JoinOperator, Query, Select, SetExpr, TableFactor, TableWithJoins, Update,
    UpdateTableFromKind, VisitMut, VisitorMut,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The node a route was made from.
pub(crate) enum Node<'a> {
    Query(&'a Query),
    Update(&'a Update),
    Delete(&'a Delete),
}

/// Fills `route.per_shard` when the route reaches shards holding foreign rows.
pub(crate) fn attach(route: &mut Route, node: Node<'_>, topo: &Topology, ctx: &RouteContext<'_>, print: &dyn Fn(&Node<'_>) -> Result<String, RouteError>) -> Result<(), RouteError> {
    if !topo.has_foreign_rows() {
        return Ok(());
    }
    let shards = match &route.target {
        Target::Multi { shards, .. } | Target::Scatter { shards, .. } | Target::ScatterWrite { shards } => shards.clone(),
        _ => return Ok(()),
    };
    for s in shards {
        let slots = topo.foreign_slots(s);
        if slots.is_empty() {
            continue;
        }
        let list = slots.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        let mut h = Hider { topo, database: ctx.database, slot_count: topo.slot_count, slots: list, ctes: Vec::new(), marks: Vec::new() };
        let text = match &node {
            Node::Query(q) => {
                let mut q = (*q).clone();
                h.visit(&mut q)?;
                print(&Node::Query(&q))?
            }
            Node::Update(u) => {
                let mut u = (*u).clone();
                let mut from: Vec<&mut TableWithJoins> = vec![&mut u.table];
                if let Some(UpdateTableFromKind::BeforeSet(v) | UpdateTableFromKind::AfterSet(v)) = &mut u.from {
                    from.extend(v.iter_mut());
                }
                let conds = h.from(from)?;
                u.selection = and_all(u.selection.take(), conds);
                h.visit(&mut u)?;
                print(&Node::Update(&u))?
            }
            Node::Delete(d) => {
                let mut d = (*d).clone();
                let mut from: Vec<&mut TableWithJoins> = match &mut d.from {
                    FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v.iter_mut().collect(),
                };
                if let Some(using) = &mut d.using {
                    from.extend(using.iter_mut());
                }
                let conds = h.from(from)?;
                d.selection = and_all(d.selection.take(), conds);
                h.visit(&mut d)?;
                print(&Node::Delete(&d))?
            }
        };
        route.per_shard.push((s, text));
    }
    Ok(())
}

fn and(e: Expr, c: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(Expr::Nested(Box::new(e))), op: BinaryOperator::And, right: Box::new(c) }
}

fn and_all(base: Option<Expr>, conds: Vec<Expr>) -> Option<Expr> {
    conds.into_iter().fold(base, |acc, c| Some(match acc {
        Some(e) => and(e, c),
        None => c,
    }))
}

fn refuse(what: &str) -> RouteError {
    RouteError::unsupported(format!(
        "{what} on a sharded table is not supported while an online migration moves slots (rows of the moving slots exist on two shards): rewrite it with LEFT JOIN ... ON or run it after the migration ends"
    ))
}

struct Hider<'a> {
    topo: &'a Topology,
    database: Option<&'a str>,
    slot_count: u32,
    slots: String,
    /// CTE names in scope.
    ctes: Vec<String>,
    /// How many names each visited query pushed.
    marks: Vec<usize>,
}

impl Hider<'_> {
    fn visit<T: VisitMut>(&mut self, node: &mut T) -> Result<(), RouteError> {
        match node.visit(self) {
            ControlFlow::Break(e) => Err(e),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    /// The condition hiding `factor`'s foreign rows, when it is a sharded table.
    fn factor(&self, factor: &TableFactor) -> Result<Option<Expr>, RouteError> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let Some(parts) = idents(name) else { return Ok(None) };
                if let [single] = parts.as_slice() {
                    if self.ctes.iter().any(|c| c == single) {
                        return Ok(None);
                    }
                }
                let Some((Some(db), table)) = table_name(name, self.database) else { return Ok(None) };
                let Some(rule) = self.topo.rule(&db, &table) else { return Ok(None) };
                let mut path: Vec<String> = match alias {
                    Some(a) => vec![a.name.value.clone()],
                    None => parts,
                };
                path.push(rule.column.clone());
                let col = path.iter().map(|p| format!("`{}`", p.replace('`', "``"))).collect::<Vec<_>>().join(".");
                let text = format!("({col} IS NULL OR CRC32({col}) % {} NOT IN ({}))", self.slot_count, self.slots);
                Parser::new(&MySqlDialect {})
                    .try_with_sql(&text)
                    .and_then(|mut p| p.parse_expr())
                    .map(Some)
                    .map_err(|e| RouteError::unsupported(format!("cannot filter a migration's rows of `{table}`: {e}")))
            }
            TableFactor::NestedJoin { table_with_joins, .. } => {
                let mut inner = (**table_with_joins).clone();
                if !self.from(vec![&mut inner])?.is_empty() {
                    return Err(refuse("a join in parentheses"));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Adds the ON conditions of nullable sides; returns the WHERE conditions.
    fn from(&self, from: Vec<&mut TableWithJoins>) -> Result<Vec<Expr>, RouteError> {
        let mut conds = Vec::new();
        for twj in from {
            let inner = |op: &JoinOperator| {
                matches!(op, JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) | JoinOperator::StraightJoin(_))
            };
            let left = |op: &JoinOperator| matches!(op, JoinOperator::Left(_) | JoinOperator::LeftOuter(_));
            let others = twj.joins.iter().any(|j| !inner(&j.join_operator) && !left(&j.join_operator));
            if let Some(c) = self.factor(&twj.relation)? {
                if others {
                    return Err(refuse("a RIGHT or FULL join"));
                }
                conds.push(c);
            }
            for j in &mut twj.joins {
                let Some(c) = self.factor(&j.relation)? else { continue };
                if others {
                    return Err(refuse("a RIGHT or FULL join"));
                }
                match &mut j.join_operator {
                    op if inner(op) => conds.push(c),
                    JoinOperator::Left(JoinConstraint::On(e)) | JoinOperator::LeftOuter(JoinConstraint::On(e)) => {
                        *e = and(e.clone(), c);
                    }
                    _ => return Err(refuse("LEFT JOIN with USING or NATURAL")),
                }
            }
        }
        Ok(conds)
    }

    fn select(&self, s: &mut Select) -> Result<(), RouteError> {
        let conds = self.from(s.from.iter_mut().collect())?;
        s.selection = and_all(s.selection.take(), conds);
        Ok(())
    }

    fn set_expr(&self, e: &mut SetExpr) -> Result<(), RouteError> {
        match e {
            SetExpr::Select(s) => self.select(s),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left)?;
                self.set_expr(right)
            }
            // Nested queries are visited on their own.
            _ => Ok(()),
        }
    }
}

impl VisitorMut for Hider<'_> {
    type Break = RouteError;

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<RouteError> {
        let names: Vec<String> = q.with.iter().flat_map(|w| w.cte_tables.iter().map(|c| c.alias.name.value.clone())).collect();
        self.marks.push(names.len());
        self.ctes.extend(names);
        match self.set_expr(&mut q.body) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<RouteError> {
        let n = self.marks.pop().unwrap_or(0);
        self.ctes.truncate(self.ctes.len().saturating_sub(n));
        ControlFlow::Continue(())
    }
}
