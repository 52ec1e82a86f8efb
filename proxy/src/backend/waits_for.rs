//! The global waits-for graph of the shards' lock waits, and the victims that break its
//! cross-shard cycles.
//!
//! Contract: pure (no I/O). A vertex is a slotgate transaction (its backend threads on
//! several shards merged into one) or a backend thread nobody claims. An edge says "waits
//! for", on one shard. A cycle whose edges all lie on one shard is that shard's own deadlock
//! (InnoDB breaks it) and is left alone; every other cycle loses one slotgate transaction:
//! the youngest (latest start), then the one with the least work, then the highest key, so
//! that every node computing the same graph picks the same victim.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A waits-for vertex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vertex {
    /// A slotgate transaction: (node id, client connection id on that node).
    Tx(u64, u32),
    /// A backend thread no slotgate transaction claims: (shard, thread id).
    Thread(String, u32),
}

/// How old a vertex's transaction is and how much it did (from the shards' INNODB_TRX).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Age {
    /// When it started, seconds since the epoch (the earliest over its shards).
    pub started: i64,
    /// InnoDB's weight (rows locked and changed), summed over its shards.
    pub weight: u64,
}

/// One lock wait on `shard`: `waiter` waits for `holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub shard: String,
    pub waiter: Vertex,
    pub holder: Vertex,
}

/// The transactions to roll back so that no cross-shard cycle remains.
pub fn victims(edges: &[Edge], ages: &HashMap<Vertex, Age>) -> Vec<Vertex> {
    let mut removed: BTreeSet<Vertex> = BTreeSet::new();
    loop {
        let live: Vec<&Edge> = edges.iter().filter(|e| !removed.contains(&e.waiter) && !removed.contains(&e.holder) && e.waiter != e.holder).collect();
        let Some(victim) = components(&live).into_iter().find_map(|c| pick(&c, &live, ages)) else {
            return removed.into_iter().collect();
        };
        removed.insert(victim);
    }
}

/// The victim of one strongly connected component, if it is a cross-shard cycle with a
/// slotgate transaction in it.
fn pick(component: &BTreeSet<Vertex>, edges: &[&Edge], ages: &HashMap<Vertex, Age>) -> Option<Vertex> {
    if component.len() < 2 {
        return None;
    }
    let shards: BTreeSet<&str> = edges.iter().filter(|e| component.contains(&e.waiter) && component.contains(&e.holder)).map(|e| e.shard.as_str()).collect();
    if shards.len() < 2 {
        return None;
    }
    component
        .iter()
        .filter(|v| matches!(v, Vertex::Tx(..)))
        .max_by(|a, b| {
            let (x, y) = (ages.get(a).copied().unwrap_or_default(), ages.get(b).copied().unwrap_or_default());
            x.started.cmp(&y.started).then(y.weight.cmp(&x.weight)).then(a.cmp(b))
        })
        .cloned()
}

/// Strongly connected components (Tarjan, iterative over a small graph).
fn components(edges: &[&Edge]) -> Vec<BTreeSet<Vertex>> {
    let mut next: BTreeMap<&Vertex, Vec<&Vertex>> = BTreeMap::new();
    for e in edges {
        next.entry(&e.waiter).or_default().push(&e.holder);
        next.entry(&e.holder).or_default();
    }
    let vertices: Vec<&Vertex> = next.keys().copied().collect();
    let mut index: HashMap<&Vertex, usize> = HashMap::new();
    let mut low: HashMap<&Vertex, usize> = HashMap::new();
    let mut on_stack: BTreeSet<&Vertex> = BTreeSet::new();
    let mut stack: Vec<&Vertex> = Vec::new();
    let mut out = Vec::new();
    let mut counter = 0;
    for &root in &vertices {
        if index.contains_key(root) {
            continue;
        }
        // (vertex, position in its successor list)
        let mut work: Vec<(&Vertex, usize)> = vec![(root, 0)];
        while let Some((v, i)) = work.pop() {
            if i == 0 {
                index.insert(v, counter);
                low.insert(v, counter);
                counter += 1;
                stack.push(v);
                on_stack.insert(v);
            }
            let succ = &next[v];
            if let Some(&w) = succ.get(i) {
                work.push((v, i + 1));
                if !index.contains_key(w) {
                    work.push((w, 0));
                } else if on_stack.contains(w) {
                    let lw = index[w].min(low[v]);
                    low.insert(v, lw);
                }
                continue;
            }
            // All successors done: fold their low links, close a component at its root.
            for &w in succ {
                if on_stack.contains(w) && index[w] > index[v] {
                    let lw = low[w].min(low[v]);
                    low.insert(v, lw);
                }
            }
            if low[v] == index[v] {
                let mut c = BTreeSet::new();
                while let Some(w) = stack.pop() {
                    on_stack.remove(w);
                    c.insert(w.clone());
                    if w == v {
                        break;
                    }
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(shard: &str, waiter: Vertex, holder: Vertex) -> Edge {
        Edge { shard: shard.into(), waiter, holder }
    }

    fn age(started: i64, weight: u64) -> Age {
        Age { started, weight }
    }

    #[test]
    fn a_cross_shard_cycle_loses_its_youngest_transaction() {
        let (a, b) = (Vertex::Tx(1, 10), Vertex::Tx(1, 11));
        let edges = vec![e("s0", a.clone(), b.clone()), e("s1", b.clone(), a.clone())];
        let ages = HashMap::from([(a.clone(), age(100, 5)), (b.clone(), age(101, 5))]);
        assert_eq!(victims(&edges, &ages), vec![b.clone()]);
        // Same start: the one with less work.
        let ages = HashMap::from([(a.clone(), age(100, 2)), (b.clone(), age(100, 9))]);
        assert_eq!(victims(&edges, &ages), vec![a]);
    }

    #[test]
    fn a_cycle_on_one_shard_is_left_to_innodb() {
        let (a, b) = (Vertex::Tx(1, 10), Vertex::Tx(2, 11));
        let edges = vec![e("s0", a.clone(), b.clone()), e("s0", b, a)];
        assert!(victims(&edges, &HashMap::new()).is_empty());
    }

    #[test]
    fn waits_without_a_cycle_have_no_victim() {
        let (a, b, c) = (Vertex::Tx(1, 1), Vertex::Tx(1, 2), Vertex::Thread("s1".into(), 77));
        let edges = vec![e("s0", a.clone(), b.clone()), e("s1", b, c.clone()), e("s1", a, c)];
        assert!(victims(&edges, &HashMap::new()).is_empty());
    }

    #[test]
    fn a_longer_cycle_through_an_unclaimed_thread_and_two_cycles() {
        // a -s0-> t(s0) ; t is a single-shard transaction waiting for b on s0; b -s1-> a.
        let (a, b) = (Vertex::Tx(1, 1), Vertex::Tx(2, 2));
        let t = Vertex::Thread("s0".into(), 9);
        let (c, d) = (Vertex::Tx(1, 3), Vertex::Tx(1, 4));
        let edges = vec![
            e("s0", a.clone(), t.clone()),
            e("s0", t.clone(), b.clone()),
            e("s1", b.clone(), a.clone()),
            e("s2", c.clone(), d.clone()),
            e("s3", d.clone(), c.clone()),
        ];
        let ages = HashMap::from([(a.clone(), age(5, 1)), (b.clone(), age(3, 1)), (c.clone(), age(1, 1)), (d.clone(), age(2, 1))]);
        let mut got = victims(&edges, &ages);
        got.sort();
        assert_eq!(got, vec![a, d]);
    }
}
