//! Which shards a statement's tables need: every table reference, where its matching rows can
//! be (its pin), and which references are co-located (joined on equal shard keys).
//!
//! Contract: pure. `Analyzer` walks a query (FROM, joins, WHERE, subqueries, derived tables,
//! CTEs, UNION parts) or a DML scope and records one [`TableRef`] per table reference; then
//! `decide` says: no sharded table (home), one shard, "spread" over some shards (only when all
//! sharded tables are in the top-level FROM and joined on their keys), or a NotSupported error.
//! It never claims fewer shards than needed:
//! - pins come from top-level AND-ed `=`/`IN`/OR-of-those conditions of WHERE and of the ON of
//!   inner joins not inside the nullable side of an outer join (ON of outer joins never pin);
//! - co-location edges come from `a.key = b.key` conjuncts of WHERE and any ON, and from USING;
//! - an unqualified column is taken as a table's key only when exactly one table of its own
//!   scope has a key of that name; qualified columns resolve innermost-scope first.

use super::key::ShardSet;
use super::RouteContext;
use mysql_common::value::Value as MyValue;
use slotgate_shared::Topology;
use sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart, OrderByKind, Query,
    Select, SetExpr, TableFactor, TableWithJoins, Visit, Visitor,
};
use std::ops::ControlFlow;

/// One table reference found in the statement.
#[derive(Debug, Clone)]
pub(crate) struct TableRef {
    /// `db.table` (or `table` when no database is known), for messages.
    pub name: String,
    /// The shard key column when the table is sharded.
    pub key: Option<String>,
    /// In the FROM of the top-level SELECT (or of the UPDATE/DELETE).
    pub top: bool,
    /// Where the reference sits, for messages ("FROM", "a subquery", "UNION", ...).
    pub origin: &'static str,
    /// Shards that can hold the rows it contributes; None = any shard.
    pub pin: Option<ShardSet>,
    /// Co-location class (references of one class are joined on equal keys).
    pub class: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) id: Option<usize>,
    pub(super) qualifier: String,
    pub(super) database: Option<String>,
    pub(super) aliased: bool,
    pub(super) key: Option<String>,
}

#[derive(Default)]
pub(super) struct FromState<'q> {
    pub(super) entries: Vec<Entry>,
    /// ON conditions and whether they may pin.
    pub(super) on: Vec<(&'q Expr, bool)>,
    pub(super) edges: Vec<(usize, usize)>,
    derived: Vec<&'q Query>,
    exprs: Vec<&'q Expr>,
}

pub(crate) struct Analyzer<'a> {
    pub(super) topo: &'a Topology,
    database: Option<&'a str>,
    pub(super) params: &'a [MyValue],
    pub refs: Vec<TableRef>,
    pub(super) unsupported: Option<String>,
    ctes: Vec<String>,
    pub(super) stack: Vec<Vec<Entry>>,
    pub(super) top_frame: Vec<Entry>,
    origin: &'static str,
    /// The slots of the shard key values seen (see [`Slots`]).
    pub(super) slots: std::cell::Cell<Slots>,
}

/// The shard key slots a statement named: none, exactly one, or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Slots {
    #[default]
    None,
    One(u32),
    Several,
}

impl Slots {
    pub fn add(self, slot: u32) -> Slots {
        match self {
            Slots::None => Slots::One(slot),
            Slots::One(s) if s == slot => self,
            _ => Slots::Several,
        }
    }

    pub fn one(self) -> Option<u32> {
        match self {
            Slots::One(s) => Some(s),
            _ => None,
        }
    }
}

impl<'a> Analyzer<'a> {
    pub fn new(topo: &'a Topology, ctx: &RouteContext<'a>) -> Self {
        Analyzer {
            topo,
            database: ctx.database,
            params: ctx.params,
            refs: Vec::new(),
            unsupported: None,
            ctes: Vec::new(),
            stack: Vec::new(),
            top_frame: Vec::new(),
            origin: "FROM",
            slots: Default::default(),
        }
    }

    pub fn unsupported(&mut self, what: &str) {
        if self.unsupported.is_none() {
            self.unsupported = Some(what.to_string());
        }
    }

    /// Analyzes a query; `depth` 0 is the statement's top level.
    pub fn query(&mut self, q: &Query, depth: usize) {
        // CTE names are visible in the CTEs after them (and, WITH RECURSIVE, in their own),
        // and in the query body; not outside this query.
        let visible = self.ctes.len();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                if with.recursive {
                    self.ctes.push(cte.alias.name.value.clone());
                }
                self.nested("a WITH query", |a| a.query(&cte.query, depth + 1));
                if !with.recursive {
                    self.ctes.push(cte.alias.name.value.clone());
                }
            }
        }
        let mut extra: Vec<&Expr> = Vec::new();
        if let Some(ob) = &q.order_by {
            if let OrderByKind::Expressions(list) = &ob.kind {
                extra.extend(list.iter().map(|o| &o.expr));
            }
        }
        match &q.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
                extra.extend(limit.iter());
                extra.extend(offset.iter().map(|o| &o.value));
                extra.extend(limit_by.iter());
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => extra.extend([offset, limit]),
            None => {}
        }
        self.set_expr(&q.body, depth, &extra);
        self.ctes.truncate(visible);
    }

    fn set_expr(&mut self, body: &SetExpr, depth: usize, extra: &[&Expr]) {
        match body {
            SetExpr::Select(s) => self.select(s, depth, extra),
            SetExpr::Query(q) => {
                self.nested("a parenthesized query", |a| a.query(q, depth + 1));
                self.scan_all(extra, depth);
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.nested("UNION/INTERSECT/EXCEPT", |a| {
                    a.set_expr(left, depth + 1, &[]);
                    a.set_expr(right, depth + 1, &[]);
                });
                self.scan_all(extra, depth);
            }
            SetExpr::Values(v) => {
                self.scan(v, depth);
                self.scan_all(extra, depth);
            }
            SetExpr::Table(t) => match &t.table_name {
                Some(name) => {
                    let db = t.schema_name.clone().or_else(|| self.database.map(String::from));
                    self.add_ref(db.as_deref(), name, depth == 0);
                }
                None => self.unsupported("TABLE without a name"),
            },
            _ => self.unsupported("this kind of statement inside a query"),
        }
    }

    fn nested(&mut self, origin: &'static str, f: impl FnOnce(&mut Self)) {
        let saved = std::mem::replace(&mut self.origin, origin);
        f(self);
        self.origin = saved;
    }

    fn select(&mut self, s: &Select, depth: usize, extra: &[&Expr]) {
        if s.top.is_some() || s.prewhere.is_some() || s.qualify.is_some() || !s.lateral_views.is_empty() || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty()
        {
            self.unsupported("this SELECT clause");
        }
        let from: Vec<&TableWithJoins> = s.from.iter().collect();
        self.scope(&from, s.selection.as_ref(), depth, |a| {
            a.scan(&s.projection, depth);
            a.scan(&s.selection, depth);
            a.scan(&s.group_by, depth);
            a.scan(&s.having, depth);
            a.scan(&s.named_window, depth);
            a.scan(&s.distinct, depth);
            for e in extra {
                a.scan(*e, depth);
            }
        });
    }

    /// Analyzes one scope: its FROM tables, joins and WHERE; then `scan` looks for subqueries
    /// in the scope's other parts (they may refer to this scope's tables).
    pub fn scope(&mut self, from: &[&TableWithJoins], selection: Option<&Expr>, depth: usize, scan: impl FnOnce(&mut Self)) {
        let top = depth == 0;
        let mut st = FromState::default();
        for twj in from {
            self.walk_twj(twj, false, top, &mut st);
        }
        for q in &st.derived {
            self.nested("a derived table", |a| a.query(q, depth + 1));
        }
        self.stack.push(st.entries.clone());
        self.settle(&st, selection);
        if top {
            self.top_frame = st.entries.clone();
        }
        for (e, _) in &st.on {
            self.scan(*e, depth);
        }
        for e in &st.exprs {
            self.scan(*e, depth);
        }
        scan(self);
        self.stack.pop();
    }

    fn scan_all(&mut self, exprs: &[&Expr], depth: usize) {
        for e in exprs {
            self.scan(*e, depth);
        }
    }

    /// Analyzes the outermost queries nested in `node` as subqueries of the scope at `depth`.
    pub fn scan<T: Visit + ?Sized>(&mut self, node: &T, depth: usize) {
        struct Scan<'x, 'a> {
            a: &'x mut Analyzer<'a>,
            nesting: usize,
            at: usize,
        }
        impl Visitor for Scan<'_, '_> {
            type Break = ();
            fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
                if self.nesting == 0 {
                    let at = self.at;
                    self.a.nested("a subquery", |a| a.query(q, at));
                }
                self.nesting += 1;
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
                self.nesting = self.nesting.saturating_sub(1);
                ControlFlow::Continue(())
            }
        }
        let _ = node.visit(&mut Scan { a: self, nesting: 0, at: depth + 1 });
    }

    fn walk_twj<'q>(&mut self, twj: &'q TableWithJoins, nullable: bool, top: bool, st: &mut FromState<'q>) {
        let start = st.on.len();
        self.walk_factor(&twj.relation, nullable, top, st);
        for join in &twj.joins {
            let before = st.entries.len();
            let (constraint, inner, right) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) | JoinOperator::StraightJoin(c) => {
                    (c, true, false)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (c, false, false),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (c, false, true),
                _ => {
                    self.unsupported("this kind of join");
                    self.walk_factor(&join.relation, true, top, st);
                    continue;
                }
            };
            if right {
                // Everything joined so far is the nullable side now: its ON may not pin.
                for item in &mut st.on[start..] {
                    item.1 = false;
                }
            }
            self.walk_factor(&join.relation, nullable || !(inner || right), top, st);
            match constraint {
                JoinConstraint::On(e) => st.on.push((e, inner && !nullable)),
                JoinConstraint::Using(cols) => {
                    for col in cols {
                        let Some(ObjectNamePart::Identifier(name)) = col.0.last() else { continue };
                        let with_key = |es: &[Entry]| -> Vec<usize> {
                            es.iter()
                                .filter(|e| e.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(&name.value)))
                                .filter_map(|e| e.id)
                                .collect()
                        };
                        let (l, r) = (with_key(&st.entries[..before]), with_key(&st.entries[before..]));
                        if let ([l], [r]) = (l.as_slice(), r.as_slice()) {
                            st.edges.push((*l, *r));
                        }
                    }
                }
                JoinConstraint::Natural | JoinConstraint::None => {}
            }
        }
    }

    fn walk_factor<'q>(&mut self, factor: &'q TableFactor, nullable: bool, top: bool, st: &mut FromState<'q>) {
        match factor {
            TableFactor::Table { name, alias, args, .. } => {
                if args.is_some() {
                    self.unsupported("table-valued functions");
                    return;
                }
                let Some(parts) = idents(name) else {
                    self.unsupported("this kind of table name");
                    return;
                };
                let alias = alias.as_ref().map(|a| a.name.value.clone());
                if let [single] = parts.as_slice() {
                    if self.ctes.iter().any(|c| c == single) {
                        st.entries.push(Entry { id: None, qualifier: alias.unwrap_or_else(|| single.clone()), database: None, aliased: true, key: None });
                        return;
                    }
                    if single.eq_ignore_ascii_case("dual") {
                        return;
                    }
                }
                let (db, table) = match parts.as_slice() {
                    [t] => (self.database.map(String::from), t.clone()),
                    [d, t] => (Some(d.clone()), t.clone()),
                    _ => {
                        self.unsupported("table names with more than two parts");
                        return;
                    }
                };
                let id = self.add_ref(db.as_deref(), &table, top);
                let key = self.refs.get(id).and_then(|r| r.key.clone());
                st.entries.push(Entry { id: Some(id), qualifier: alias.clone().unwrap_or(table), database: db, aliased: alias.is_some(), key });
            }
            TableFactor::Derived { subquery, alias, .. } => {
                st.derived.push(subquery);
                let q = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_default();
                st.entries.push(Entry { id: None, qualifier: q, database: None, aliased: true, key: None });
            }
            TableFactor::NestedJoin { table_with_joins, .. } => self.walk_twj(table_with_joins, nullable, top, st),
            TableFactor::JsonTable { json_expr, alias, .. } => {
                st.exprs.push(json_expr);
                let q = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_default();
                st.entries.push(Entry { id: None, qualifier: q, database: None, aliased: true, key: None });
            }
            _ => self.unsupported("this kind of table source"),
        }
    }

    fn add_ref(&mut self, db: Option<&str>, table: &str, top: bool) -> usize {
        let key = db.and_then(|d| self.topo.rule(d, table)).map(|r| r.column.clone());
        let id = self.refs.len();
        let name = match db {
            Some(d) => format!("{d}.{table}"),
            None => table.to_string(),
        };
        self.refs.push(TableRef { name, key, top, origin: self.origin, pin: None, class: id });
        id
    }
}

/// The plain identifiers of a name (None if a part is not an identifier).
pub(crate) fn idents(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(Ident { value, .. }) => Some(value.clone()),
            _ => None,
        })
        .collect()
}

/// `(database, table)` of a table name, the database defaulting to `default_db`.
pub(crate) fn table_name(name: &ObjectName, default_db: Option<&str>) -> Option<(Option<String>, String)> {
    match idents(name)?.as_slice() {
        [t] => Some((default_db.map(String::from), t.clone())),
        [d, t] => Some((Some(d.clone()), t.clone())),
        _ => None,
    }
}
