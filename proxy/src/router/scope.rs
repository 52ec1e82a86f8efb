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

use super::key::{conjuncts, implied_pins, key_of_expr, KeyLit, ShardSet};
use super::{RouteContext, RouteError};
use mysql_common::value::Value as MyValue;
use slotgate_shared::Topology;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart, OrderByKind, Query,
    Select, SetExpr, TableFactor, TableWithJoins, Visit, Visitor,
};
use std::collections::{HashMap, HashSet};
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

/// Where a statement must run, as far as its tables are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Unsharded,
    Single(usize),
    /// These shards (sorted), all sharded tables co-located in the top-level FROM.
    Spread(Vec<usize>),
}

#[derive(Debug, Clone)]
struct Entry {
    id: Option<usize>,
    qualifier: String,
    database: Option<String>,
    aliased: bool,
    key: Option<String>,
}

#[derive(Default)]
struct FromState<'q> {
    entries: Vec<Entry>,
    /// ON conditions and whether they may pin.
    on: Vec<(&'q Expr, bool)>,
    edges: Vec<(usize, usize)>,
    derived: Vec<&'q Query>,
    exprs: Vec<&'q Expr>,
}

pub(crate) struct Analyzer<'a> {
    topo: &'a Topology,
    database: Option<&'a str>,
    params: &'a [MyValue],
    pub refs: Vec<TableRef>,
    unsupported: Option<String>,
    ctes: HashSet<String>,
    stack: Vec<Vec<Entry>>,
    top_frame: Vec<Entry>,
    origin: &'static str,
}

impl<'a> Analyzer<'a> {
    pub fn new(topo: &'a Topology, ctx: &RouteContext<'a>) -> Self {
        Analyzer {
            topo,
            database: ctx.database,
            params: ctx.params,
            refs: Vec::new(),
            unsupported: None,
            ctes: HashSet::new(),
            stack: Vec::new(),
            top_frame: Vec::new(),
            origin: "FROM",
        }
    }

    pub fn unsupported(&mut self, what: &str) {
        if self.unsupported.is_none() {
            self.unsupported = Some(what.to_string());
        }
    }

    /// Analyzes a query; `depth` 0 is the statement's top level.
    pub fn query(&mut self, q: &Query, depth: usize) {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
            for cte in &with.cte_tables {
                self.nested("a WITH query", |a| a.query(&cte.query, depth + 1));
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
    }

    fn set_expr(&mut self, body: &SetExpr, depth: usize, extra: &[&Expr]) {
        match body {
            SetExpr::Select(s) => self.select(s, depth, extra),
            SetExpr::Query(q) => {
                self.nested("a parenthesized query", |a| a.query(q, depth + 1));
                self.scan(extra, depth);
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.nested("UNION/INTERSECT/EXCEPT", |a| {
                    a.set_expr(left, depth + 1, &[]);
                    a.set_expr(right, depth + 1, &[]);
                });
                self.scan(extra, depth);
            }
            SetExpr::Values(v) => {
                let exprs: Vec<&Expr> = v.rows.iter().flat_map(|r| r.content.iter()).chain(extra.iter().copied()).collect();
                self.scan(&exprs, depth);
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
        let from: Vec<&TableWithJoins> = s.from.iter().collect();
        // Everything but FROM, searched for subqueries (FROM's parts are handled by `scope`).
        let mut rest = s.clone();
        rest.from.clear();
        let mut scan_items: Vec<Query> = nested_queries(&rest);
        for e in extra {
            scan_items.extend(nested_queries(*e));
        }
        self.scope(&from, s.selection.as_ref(), scan_items, depth);
    }

    /// Analyzes one scope: its FROM tables, joins, WHERE, and the subqueries given.
    pub fn scope(&mut self, from: &[&TableWithJoins], selection: Option<&Expr>, subqueries: Vec<Query>, depth: usize) {
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
        let mut subqueries = subqueries;
        for (e, _) in &st.on {
            subqueries.extend(nested_queries(*e));
        }
        for e in &st.exprs {
            subqueries.extend(nested_queries(*e));
        }
        for q in &subqueries {
            self.nested("a subquery", |a| a.query(q, depth + 1));
        }
        self.stack.pop();
    }

    /// Co-location classes and pins of the innermost frame.
    fn settle(&mut self, st: &FromState<'_>, selection: Option<&Expr>) {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        fn find(parent: &mut HashMap<usize, usize>, x: usize) -> usize {
            let mut r = x;
            while let Some(&p) = parent.get(&r) {
                if p == r {
                    break;
                }
                r = p;
            }
            parent.insert(x, r);
            r
        }
        let conds: Vec<&Expr> = st.on.iter().map(|(e, _)| *e).chain(selection).collect();
        let mut pairs: Vec<(usize, usize)> = st.edges.clone();
        for cond in &conds {
            for c in conjuncts(cond) {
                if let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = c {
                    if let (Some(a), Some(b)) = (self.resolve(left), self.resolve(right)) {
                        pairs.push((a, b));
                    }
                }
            }
        }
        for (a, b) in pairs {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent.insert(ra, rb);
            }
        }
        let current: HashSet<usize> = st.entries.iter().filter_map(|e| e.id).collect();
        let mut class_pin: HashMap<usize, ShardSet> = HashMap::new();
        let outer: Vec<usize> = parent.keys().copied().filter(|id| !current.contains(id)).collect();
        for id in outer {
            if let Some(pin) = self.refs.get(id).and_then(|r| r.pin.clone()) {
                let root = find(&mut parent, id);
                meet(&mut class_pin, root, pin);
            }
        }
        let pin_conds: Vec<&Expr> = st.on.iter().filter(|(_, p)| *p).map(|(e, _)| *e).chain(selection).collect();
        for cond in pin_conds {
            let pins = implied_pins(cond, &|e| self.resolve(e), &|e| self.shards_of(e));
            for (id, set) in pins {
                let root = find(&mut parent, id);
                meet(&mut class_pin, root, set);
            }
        }
        for id in current {
            let root = find(&mut parent, id);
            if let Some(r) = self.refs.get_mut(id) {
                r.pin = class_pin.get(&root).cloned();
                r.class = root;
            }
        }
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
                    if self.ctes.contains(single) {
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

    /// The id of the sharded table whose key `expr` is (a column reference), if any.
    pub fn resolve(&self, expr: &Expr) -> Option<usize> {
        match expr {
            Expr::Nested(e) => self.resolve(e),
            Expr::Identifier(id) => {
                if id.value.starts_with('@') {
                    return None;
                }
                let frame = self.stack.last()?;
                let mut found = frame.iter().filter(|e| e.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(&id.value)));
                let first = found.next()?;
                if found.next().is_some() {
                    return None;
                }
                first.id
            }
            Expr::CompoundIdentifier(parts) => {
                let (db, table, column) = match parts.as_slice() {
                    [t, c] => (None, t, c),
                    [d, t, c] => (Some(d), t, c),
                    _ => return None,
                };
                for frame in self.stack.iter().rev() {
                    let matches: Vec<&Entry> = frame
                        .iter()
                        .filter(|e| {
                            e.qualifier == table.value
                                && db.is_none_or(|d| !e.aliased && e.database.as_deref() == Some(d.value.as_str()))
                        })
                        .collect();
                    match matches.as_slice() {
                        [] => continue,
                        [e] => return if e.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(&column.value)) { e.id } else { None },
                        _ => return None,
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// `resolve` against the top-level FROM (for UPDATE's SET targets).
    pub fn resolve_top(&mut self, expr: &Expr) -> Option<usize> {
        self.stack.push(self.top_frame.clone());
        let r = self.resolve(expr);
        self.stack.pop();
        r
    }

    /// Shards of a value expression: one for a known key, none for NULL, None when unknown.
    pub fn shards_of(&self, expr: &Expr) -> Option<ShardSet> {
        match key_of_expr(expr, self.params) {
            KeyLit::Known(k) => Some(ShardSet::from([self.topo.shard_for_key(&k)])),
            KeyLit::Null => Some(ShardSet::new()),
            KeyLit::Unknown => None,
        }
    }

    fn scan(&mut self, exprs: &[&Expr], depth: usize) {
        for e in exprs {
            for q in nested_queries(*e) {
                self.nested("a subquery", |a| a.query(&q, depth + 1));
            }
        }
    }

    /// Where the statement must run.
    pub fn decide(&self) -> Result<Decision, RouteError> {
        let sharded: Vec<&TableRef> = self.refs.iter().filter(|r| r.key.is_some()).collect();
        let Some(first) = sharded.first() else { return Ok(Decision::Unsharded) };
        if let Some(what) = &self.unsupported {
            return Err(RouteError::unsupported(format!(
                "{what} together with sharded tables is not supported: send a simpler statement"
            )));
        }
        if let Some(u) = self.refs.iter().find(|r| r.key.is_none()) {
            return Err(RouteError::unsupported(format!(
                "joins between tables on different shards are not supported: {} is not sharded (it lives on the home shard) \
                 but {} is; join on the shard key or pin it, or query the tables separately",
                u.name, first.name
            )));
        }
        if sharded.iter().all(|r| r.pin.is_some()) {
            let all: ShardSet = sharded.iter().filter_map(|r| r.pin.as_ref()).flatten().copied().collect();
            if all.len() <= 1 {
                return Ok(Decision::Single(all.first().copied().unwrap_or(self.topo.home_index())));
            }
        }
        if sharded.iter().all(|r| r.top && r.class == first.class) {
            let shards = match &first.pin {
                Some(p) => p.iter().copied().collect(),
                None => (0..self.topo.shards.len()).collect(),
            };
            return Ok(Decision::Spread(shards));
        }
        if let Some(r) = sharded.iter().find(|r| !r.top) {
            return Err(RouteError::unsupported(format!(
                "{} over sharded tables is supported only when the whole statement is pinned to one shard: \
                 filter every sharded table on the same shard key value (WHERE <key> = ...), or run the parts separately",
                r.origin
            )));
        }
        Err(RouteError::unsupported(
            "joins between tables on different shards are not supported: join on the shard key or pin it",
        ))
    }
}

fn meet(pins: &mut HashMap<usize, ShardSet>, root: usize, set: ShardSet) {
    match pins.get_mut(&root) {
        Some(existing) => *existing = existing.intersection(&set).copied().collect(),
        None => {
            pins.insert(root, set);
        }
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

/// The outermost queries nested in `node` (not those nested in them).
pub(crate) fn nested_queries<T: Visit + ?Sized>(node: &T) -> Vec<Query> {
    struct Collect {
        depth: usize,
        out: Vec<Query>,
    }
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if self.depth == 0 {
                self.out.push(q.clone());
            }
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
            self.depth = self.depth.saturating_sub(1);
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect { depth: 0, out: Vec::new() };
    let _ = node.visit(&mut c);
    c.out
}
