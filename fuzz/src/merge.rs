//! Fuzz check of the merge: arbitrary per-shard result streams, each sorted the way its shard
//! would sort it, merged by a `Merger` and compared with a reference computed over the union
//! of the rows by plain code (a stable sort, a distinct, a window; grouped aggregates folded
//! from the shards' underlying rows).
//!
//! Properties: the merged rows have the reference's sort keys in the reference's order, are
//! drawn from the shards' rows, and are exactly the reference when the sort keys cover every
//! column or there is no ORDER BY (concatenation in shard order); aggregates equal COUNT,
//! SUM, MIN, MAX computed over all underlying rows, groups in group order.

use crate::bytes::Bytes;
use mysql_common::constants::ColumnType;
use mysql_common::packets::Column;
use mysql_common::value::Value;
use slotgate_proxy::merge::number::Number;
use slotgate_proxy::merge::{Merger, RowResult};
use slotgate_proxy::router::{AggFunc, Aggregate, MergePlan, SortKey};
use std::cmp::Ordering;
use std::sync::OnceLock;
use tokio::sync::mpsc;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("no tokio runtime: {e}"),
    })
}

/// A generated cell: the reference's view of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Bin(Vec<u8>),
}

impl Cell {
    fn value(&self, binary_protocol: bool) -> Value {
        match self {
            Cell::Null => Value::NULL,
            Cell::Int(i) if binary_protocol => Value::Int(*i),
            Cell::Int(i) => Value::Bytes(i.to_string().into_bytes()),
            Cell::Bin(b) => Value::Bytes(b.clone()),
        }
    }
}

/// NULL first, numbers by value, binary strings byte by byte (as MariaDB orders them).
fn ref_cmp(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
        (Cell::Bin(x), Cell::Bin(y)) => x.cmp(y),
        _ => panic!("one column holds one type"),
    }
}

fn ref_order(keys: &[SortKey], a: &[Cell], b: &[Cell]) -> Ordering {
    for k in keys {
        let o = ref_cmp(&a[k.column], &b[k.column]);
        let o = if k.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn int_cell(b: &mut Bytes<'_>) -> Cell {
    match b.u8() % 8 {
        0 => Cell::Null,
        1 => Cell::Int(i64::MAX - i64::from(b.u8() % 3)),
        2 => Cell::Int(i64::MIN + i64::from(b.u8() % 3)),
        _ => Cell::Int(i64::from(b.u8() % 41) - 20),
    }
}

fn bin_cell(b: &mut Bytes<'_>) -> Cell {
    const ALPHABET: [u8; 6] = [b'a', b'b', b'A', 0, 0xff, b' '];
    if b.u8() % 6 == 0 {
        return Cell::Null;
    }
    let len = b.below(4);
    Cell::Bin((0..len).map(|_| ALPHABET[b.below(ALPHABET.len())]).collect())
}

fn columns_sorted() -> Vec<Column> {
    vec![
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"a"),
        Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_character_set(63).with_name(b"b"),
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"c"),
    ]
}

fn feed(shards: &[Vec<Vec<Value>>]) -> Vec<mpsc::Receiver<RowResult>> {
    shards
        .iter()
        .map(|rows| {
            let (tx, rx) = mpsc::channel(rows.len() + 1);
            for r in rows {
                if tx.try_send(Ok(r.clone())).is_err() {
                    panic!("channel sized for every row");
                }
            }
            rx
        })
        .collect()
}

fn drain(mut m: Merger) -> Vec<Vec<Value>> {
    runtime().block_on(async move {
        let mut out = Vec::new();
        loop {
            match m.next().await {
                Ok(Some(row)) => out.push(row),
                Ok(None) => return out,
                Err(e) => panic!("the merge failed on good input: {e}"),
            }
        }
    })
}

pub fn check(data: &[u8]) {
    let mut b = Bytes::new(data);
    if b.u8() % 3 == 0 {
        aggregates(&mut b)
    } else {
        sorted(&mut b)
    }
}

fn sorted(b: &mut Bytes<'_>) {
    let binary = b.bool();
    let mut plan = MergePlan::passthrough();
    plan.visible_columns = 3;
    for _ in 0..b.below(4) {
        let column = b.below(3);
        if plan.order_by.iter().all(|k| k.column != column) {
            plan.order_by.push(SortKey { column, descending: b.bool() });
        }
    }
    plan.distinct = b.u8() % 4 == 0;
    plan.offset = if b.u8() % 3 == 0 { b.below(6) as u64 } else { 0 };
    plan.limit = if b.bool() { Some(b.below(12) as u64) } else { None };
    let n_shards = 1 + b.below(5);
    let mut shards: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); n_shards];
    while !b.is_empty() {
        let shard = b.below(n_shards);
        shards[shard].push(vec![int_cell(b), bin_cell(b), int_cell(b)]);
    }
    for rows in &mut shards {
        rows.sort_by(|x, y| ref_order(&plan.order_by, x, y));
    }
    let as_values = |rows: &Vec<Vec<Cell>>| rows.iter().map(|r| r.iter().map(|c| c.value(binary)).collect()).collect::<Vec<Vec<Value>>>();
    let inputs = feed(&shards.iter().map(as_values).collect::<Vec<_>>());
    let out = drain(Merger::new(plan.clone(), &columns_sorted(), inputs));

    let mut expected: Vec<Vec<Cell>> = shards.concat();
    expected.sort_by(|x, y| ref_order(&plan.order_by, x, y));
    if plan.distinct {
        let mut seen = std::collections::HashSet::new();
        expected.retain(|r| seen.insert(r.clone()));
    }
    let window: Vec<Vec<Cell>> = expected.into_iter().skip(plan.offset as usize).take(plan.limit.map_or(usize::MAX, |l| l as usize)).collect();
    let window_values: Vec<Vec<Value>> = as_values(&window);
    assert_eq!(out.len(), window.len(), "row count differs from the reference: plan {plan:?}");
    let covers_all = (0..3).all(|c| plan.order_by.iter().any(|k| k.column == c));
    if covers_all || plan.order_by.is_empty() {
        assert_eq!(out, window_values, "rows differ from the reference: plan {plan:?}");
        return;
    }
    let union: Vec<Vec<Value>> = shards.iter().flat_map(as_values).collect();
    for (got, want) in out.iter().zip(&window_values) {
        for k in &plan.order_by {
            assert_eq!(got[k.column], want[k.column], "sort keys differ from the reference: plan {plan:?}");
        }
        assert!(union.contains(got), "a merged row no shard sent: {got:?}");
    }
}

/// Shards answer `SELECT g, COUNT(x), SUM(x), MIN(x), MAX(x), COUNT(*) ... [GROUP BY g]`
/// over their own rows; the merge must give what one server holding all rows gives.
fn aggregates(b: &mut Bytes<'_>) {
    let binary = b.bool();
    let grouped = b.bool();
    let n_shards = 1 + b.below(5);
    let mut underlying: Vec<Vec<(Cell, Cell)>> = vec![Vec::new(); n_shards];
    while !b.is_empty() {
        let shard = b.below(n_shards);
        let g = if b.u8() % 5 == 0 { Cell::Null } else { Cell::Int(i64::from(b.u8() % 4)) };
        let x = match b.u8() % 6 {
            0 => Cell::Null,
            1 => Cell::Int(i64::MAX - i64::from(b.u8() % 2)),
            _ => Cell::Int(i64::from(b.u8() % 201) - 100),
        };
        underlying[shard].push((if grouped { g } else { Cell::Null }, x));
    }
    // (g, count(x), sum(x), min(x), max(x), count(*)) per group of the given rows, groups in order.
    let fold = |rows: &[(Cell, Cell)], scalar: bool| -> Vec<(Cell, i128, Option<i128>, Option<i64>, Option<i64>, i128)> {
        let mut groups: std::collections::BTreeMap<Cell, (i128, Option<i128>, Option<i64>, Option<i64>, i128)> = Default::default();
        if scalar {
            groups.insert(Cell::Null, (0, None, None, None, 0));
        }
        for (g, x) in rows {
            let e = groups.entry(g.clone()).or_insert((0, None, None, None, 0));
            e.4 += 1;
            if let Cell::Int(v) = x {
                e.0 += 1;
                e.1 = Some(e.1.unwrap_or(0) + i128::from(*v));
                e.2 = Some(e.2.map_or(*v, |m| m.min(*v)));
                e.3 = Some(e.3.map_or(*v, |m| m.max(*v)));
            }
        }
        groups.into_iter().map(|(g, (c, s, mn, mx, all))| (g, c, s, mn, mx, all)).collect()
    };
    let int = |v: Option<i128>| match v {
        None => Value::NULL,
        Some(v) if binary => Value::Int(v as i64),
        Some(v) => Value::Bytes(v.to_string().into_bytes()),
    };
    let sum_value = |v: Option<i128>| match v {
        None => Value::NULL,
        Some(v) => Value::Bytes(v.to_string().into_bytes()),
    };
    let per_shard: Vec<Vec<Vec<Value>>> = underlying
        .iter()
        .map(|rows| {
            fold(rows, !grouped)
                .into_iter()
                .map(|(g, c, s, mn, mx, all)| {
                    vec![g.value(binary), int(Some(c)), sum_value(s), int(mn.map(i128::from)), int(mx.map(i128::from)), int(Some(all))]
                })
                .collect()
        })
        .collect();
    let columns = vec![
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"g"),
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"cx"),
        Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL).with_name(b"sx"),
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"mn"),
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"mx"),
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_name(b"n"),
    ];
    let mut plan = MergePlan::passthrough();
    plan.visible_columns = 6;
    plan.group_by = if grouped { vec![0] } else { Vec::new() };
    plan.aggregates = vec![
        Aggregate { column: 1, func: AggFunc::Count },
        Aggregate { column: 2, func: AggFunc::Sum },
        Aggregate { column: 3, func: AggFunc::Min },
        Aggregate { column: 4, func: AggFunc::Max },
        Aggregate { column: 5, func: AggFunc::Count },
    ];
    let out = drain(Merger::new(plan, &columns, feed(&per_shard)));
    let expected = fold(&underlying.concat(), !grouped);
    assert_eq!(out.len(), expected.len(), "group count differs: {out:?} vs {expected:?}");
    let same = |got: &Value, want: Option<i128>| match (Number::from_value(got), want) {
        (None, None) => matches!(got, Value::NULL),
        (Some(g), Some(w)) => g.cmp(Number::Int(w)) == Ordering::Equal,
        _ => false,
    };
    for (row, (g, c, s, mn, mx, all)) in out.iter().zip(&expected) {
        let want_g = match g {
            Cell::Int(i) => Some(i128::from(*i)),
            _ => None,
        };
        assert!(grouped == false || same(&row[0], want_g), "group key {:?}, expected {g:?}", row[0]);
        assert!(same(&row[1], Some(*c)), "COUNT(x) {:?}, expected {c}", row[1]);
        assert!(same(&row[2], *s), "SUM(x) {:?}, expected {s:?}", row[2]);
        assert!(same(&row[3], mn.map(i128::from)), "MIN(x) {:?}, expected {mn:?}", row[3]);
        assert!(same(&row[4], mx.map(i128::from)), "MAX(x) {:?}, expected {mx:?}", row[4]);
        assert!(same(&row[5], Some(*all)), "COUNT(*) {:?}, expected {all}", row[5]);
    }
}
