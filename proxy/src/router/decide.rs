//! Co-location and pins of a scope's tables, column resolution, and the final decision.
//!
//! Contract: see scope.rs. `settle` unions tables joined by `a.key = b.key` (WHERE, any ON,
//! USING) into classes and gives each class the intersection of the pins its members get from
//! WHERE and from the ON of inner joins outside nullable sides (plus the pins of outer-scope
//! tables it is joined to). `decide` never picks fewer shards than the statement needs.

use super::key::{conjuncts, implied_pins, key_of_expr, KeyLit, ShardSet};
use super::scope::{Analyzer, Entry, FromState, TableRef};
use super::RouteError;
use slotgate_shared::slot_of;
use sqlparser::ast::{BinaryOperator, Expr};
use std::collections::{HashMap, HashSet};

/// Where a statement must run, as far as its tables are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Unsharded,
    Single(usize),
    /// These shards (sorted), all sharded tables co-located in the top-level FROM;
    /// `everywhere` when they are every shard that holds rows (`Topology::data_shards`).
    Spread { shards: Vec<usize>, everywhere: bool },
}

impl Analyzer<'_> {
    /// Co-location classes and pins of the innermost frame.
    pub(super) fn settle(&mut self, st: &FromState<'_>, selection: Option<&Expr>) {
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
            KeyLit::Known(k) => {
                let slot = slot_of(&k, self.topo.slot_count);
                self.slots.set(self.slots.get().add(slot));
                Some(ShardSet::from([self.topo.shard_of_slot(slot)]))
            }
            KeyLit::Null => Some(ShardSet::new()),
            KeyLit::Unknown => None,
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
            let all = self.topo.data_shards();
            let (shards, everywhere) = match &first.pin {
                Some(p) => {
                    let shards: Vec<usize> = p.iter().copied().collect();
                    let everywhere = shards == all;
                    (shards, everywhere)
                }
                None => (all, true),
            };
            return Ok(Decision::Spread { shards, everywhere });
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
