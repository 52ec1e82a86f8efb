//! Merging the result streams of several shards into the one result a single MariaDB holding
//! all rows would return: concatenation, k-way merge for ORDER BY, OFFSET/LIMIT, DISTINCT,
//! and COUNT/SUM/MIN/MAX/AVG with or without GROUP BY.
//!
//! Contract: follows a router `MergePlan`; holds at most one row per shard for sorted and
//! plain merges, and one row per group (or per distinct row) where the plan needs them.
//! Never looks at SQL. Rows leave with the plan's hidden trailing columns removed.

pub mod compare;
pub mod number;

use crate::backend::BackendError;
use crate::router::{AggFunc, MergePlan};
use compare::{compare, key_bytes, Collate};
use mysql_common::constants::ColumnType;
use mysql_common::packets::Column;
use mysql_common::value::Value;
use number::Number;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use tokio::sync::mpsc;

/// One shard's rows, as its reader task sends them.
pub type RowResult = Result<Vec<Value>, BackendError>;

enum Mode {
    Concat { current: usize },
    Sorted { heads: Vec<Option<Vec<Value>>>, primed: bool },
    Buffered { rows: Option<std::vec::IntoIter<Vec<Value>>> },
}

pub struct Merger {
    plan: MergePlan,
    collates: Vec<Collate>,
    columns: Vec<Column>,
    inputs: Vec<mpsc::Receiver<RowResult>>,
    mode: Mode,
    seen: HashSet<Vec<u8>>,
    skipped: u64,
    emitted: u64,
}

impl Merger {
    pub fn new(plan: MergePlan, columns: &[Column], inputs: Vec<mpsc::Receiver<RowResult>>) -> Merger {
        let plan = plan.resolve(columns.len());
        let mode = if !plan.aggregates.is_empty() || !plan.group_by.is_empty() {
            Mode::Buffered { rows: None }
        } else if !plan.order_by.is_empty() {
            Mode::Sorted { heads: vec![None; inputs.len()], primed: false }
        } else {
            Mode::Concat { current: 0 }
        };
        Merger {
            collates: columns.iter().map(Collate::of).collect(),
            columns: columns.to_vec(),
            plan,
            inputs,
            mode,
            seen: HashSet::new(),
            skipped: 0,
            emitted: 0,
        }
    }

    /// Columns the client sees.
    pub fn visible_columns(&self) -> &[Column] {
        &self.columns[..self.plan.visible(self.columns.len())]
    }

    /// The next merged row, or `None` at the end (or once LIMIT is reached).
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, BackendError> {
        loop {
            if self.plan.limit.is_some_and(|l| self.emitted >= l) {
                return Ok(None);
            }
            let Some(mut row) = self.next_raw().await? else { return Ok(None) };
            let visible = self.plan.visible(row.len());
            if self.plan.distinct {
                let key = self.key(&row, 0..visible);
                if !self.seen.insert(key) {
                    continue;
                }
            }
            if self.skipped < self.plan.offset {
                self.skipped += 1;
                continue;
            }
            self.emitted += 1;
            row.truncate(visible);
            return Ok(Some(row));
        }
    }

    fn key(&self, row: &[Value], cols: impl Iterator<Item = usize>) -> Vec<u8> {
        let mut k = Vec::new();
        for c in cols {
            if let Some(v) = row.get(c) {
                key_bytes(v, self.collates.get(c).copied().unwrap_or(Collate::Binary), &mut k);
            }
        }
        k
    }

    fn order(&self, a: &[Value], b: &[Value]) -> Ordering {
        for k in &self.plan.order_by {
            let collate = self.collates.get(k.column).copied().unwrap_or(Collate::Binary);
            let (x, y) = (a.get(k.column).unwrap_or(&Value::NULL), b.get(k.column).unwrap_or(&Value::NULL));
            let o = compare(x, y, collate);
            let o = if k.descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    async fn next_raw(&mut self) -> Result<Option<Vec<Value>>, BackendError> {
        match &mut self.mode {
            Mode::Concat { current } => {
                while *current < self.inputs.len() {
                    match self.inputs[*current].recv().await {
                        Some(r) => return r.map(Some),
                        None => *current += 1,
                    }
                }
                Ok(None)
            }
            Mode::Sorted { .. } => self.next_sorted().await,
            Mode::Buffered { rows: Some(rows) } => Ok(rows.next()),
            Mode::Buffered { rows: None } => {
                let rows = self.aggregate_all().await?;
                self.mode = Mode::Buffered { rows: Some(rows.into_iter()) };
                Box::pin(self.next_raw()).await
            }
        }
    }

    async fn next_sorted(&mut self) -> Result<Option<Vec<Value>>, BackendError> {
        let Mode::Sorted { heads, primed } = &mut self.mode else { return Ok(None) };
        let mut heads = std::mem::take(heads);
        if !*primed {
            *primed = true;
            for (i, input) in self.inputs.iter_mut().enumerate() {
                match input.recv().await.transpose() {
                    Ok(row) => heads[i] = row,
                    Err(e) => {
                        self.mode = Mode::Sorted { heads, primed: true };
                        return Err(e);
                    }
                }
            }
        }
        let mut best: Option<usize> = None;
        for i in 0..heads.len() {
            if let Some(row) = &heads[i] {
                let better = match best.and_then(|b| heads[b].as_ref()) {
                    None => true,
                    Some(cur) => self.order(row, cur) == Ordering::Less,
                };
                if better {
                    best = Some(i);
                }
            }
        }
        let result = match best {
            None => Ok(None),
            Some(i) => {
                let row = heads[i].take();
                match self.inputs[i].recv().await.transpose() {
                    Ok(next) => {
                        heads[i] = next;
                        Ok(row)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        self.mode = Mode::Sorted { heads, primed: true };
        result
    }

    /// Drains every shard and folds rows into groups; returns the groups in output order.
    async fn aggregate_all(&mut self) -> Result<Vec<Vec<Value>>, BackendError> {
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut groups: HashMap<Vec<u8>, (Vec<Value>, Vec<Acc>)> = HashMap::new();
        for i in 0..self.inputs.len() {
            while let Some(row) = self.inputs[i].recv().await {
                let row = row?;
                let key = self.key(&row, self.plan.group_by.iter().copied());
                match groups.get_mut(&key) {
                    Some((_, accs)) => {
                        for (acc, agg) in accs.iter_mut().zip(&self.plan.aggregates) {
                            acc.add(&row, agg.column, &agg.func, &self.collates);
                        }
                    }
                    None => {
                        let accs = self.plan.aggregates.iter().map(|agg| Acc::start(&row, agg.column, &agg.func)).collect();
                        order.push(key.clone());
                        groups.insert(key, (row, accs));
                    }
                }
            }
        }
        let mut rows: Vec<Vec<Value>> = order
            .into_iter()
            .filter_map(|k| groups.remove(&k))
            .map(|(mut row, accs)| {
                for (acc, agg) in accs.into_iter().zip(&self.plan.aggregates) {
                    let col = self.columns.get(agg.column);
                    if let Some(slot) = row.get_mut(agg.column) {
                        *slot = acc.finish(slot, col);
                    }
                }
                row
            })
            .collect();
        if !self.plan.order_by.is_empty() {
            rows.sort_by(|a, b| self.order(a, b));
        } else if !self.plan.group_by.is_empty() {
            // MariaDB returns GROUP BY results sorted by the group columns.
            rows.sort_by(|a, b| {
                for &c in &self.plan.group_by {
                    let collate = self.collates.get(c).copied().unwrap_or(Collate::Binary);
                    let o = compare(a.get(c).unwrap_or(&Value::NULL), b.get(c).unwrap_or(&Value::NULL), collate);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        Ok(rows)
    }
}

/// One aggregate's running value within a group.
enum Acc {
    Count(Number),
    Sum(Option<Number>),
    Extreme(Value),
    Avg { sum: Option<Number>, count: i128 },
}

fn num(row: &[Value], col: usize) -> Option<Number> {
    row.get(col).and_then(Number::from_value)
}

impl Acc {
    fn start(row: &[Value], col: usize, func: &AggFunc) -> Acc {
        match func {
            AggFunc::Count => Acc::Count(num(row, col).unwrap_or(Number::Int(0))),
            AggFunc::Sum => Acc::Sum(num(row, col)),
            AggFunc::Min | AggFunc::Max => Acc::Extreme(row.get(col).cloned().unwrap_or(Value::NULL)),
            AggFunc::Avg { sum, count } => Acc::Avg {
                sum: num(row, *sum),
                count: match num(row, *count) {
                    Some(Number::Int(c)) => c,
                    _ => 0,
                },
            },
        }
    }

    fn add(&mut self, row: &[Value], col: usize, func: &AggFunc, collates: &[Collate]) {
        match (self, func) {
            (Acc::Count(n), _) => *n = n.add(num(row, col).unwrap_or(Number::Int(0))),
            (Acc::Sum(s), _) => {
                if let Some(v) = num(row, col) {
                    *s = Some(s.map_or(v, |s| s.add(v)));
                }
            }
            (Acc::Extreme(cur), f) => {
                let v = row.get(col).unwrap_or(&Value::NULL);
                if matches!(v, Value::NULL) {
                    return;
                }
                let o = compare(v, cur, collates.get(col).copied().unwrap_or(Collate::Binary));
                let take = matches!(cur, Value::NULL) || (matches!(f, AggFunc::Min) && o == Ordering::Less) || (matches!(f, AggFunc::Max) && o == Ordering::Greater);
                if take {
                    *cur = v.clone();
                }
            }
            (Acc::Avg { sum, count }, AggFunc::Avg { sum: sc, count: cc }) => {
                if let Some(v) = num(row, *sc) {
                    *sum = Some(sum.map_or(v, |s| s.add(v)));
                }
                if let Some(Number::Int(c)) = num(row, *cc) {
                    *count += c;
                }
            }
            (Acc::Avg { .. }, _) => {}
        }
    }

    fn finish(self, like: &Value, col: Option<&Column>) -> Value {
        let decimals = col.map(|c| u32::from(c.decimals())).filter(|d| *d < 31);
        let floaty = col.is_some_and(|c| matches!(c.column_type(), ColumnType::MYSQL_TYPE_DOUBLE | ColumnType::MYSQL_TYPE_FLOAT));
        match self {
            Acc::Count(n) => n.to_value(like, None),
            Acc::Sum(None) | Acc::Avg { sum: None, .. } => Value::NULL,
            Acc::Sum(Some(n)) => n.to_value(like, if floaty { None } else { decimals }),
            Acc::Extreme(v) => v,
            Acc::Avg { count: 0, .. } => Value::NULL,
            Acc::Avg { sum: Some(s), count } => {
                if floaty {
                    s.div_float(count).to_value(like, None)
                } else {
                    s.div(count, decimals.unwrap_or(4)).to_value(like, decimals)
                }
            }
        }
    }
}
