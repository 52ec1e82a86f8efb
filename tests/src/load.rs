//! Load for cutover tests: writers that insert unique ids through a node until told to stop.

use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Writer `w` inserts `(id, w)` rows into `t` (ids `w * 1_000_000 + n`) through `url` until
/// `stop`; returns the acknowledged ids and the errors it saw.
pub async fn writer(url: String, w: i64, stop: Arc<AtomicBool>) -> (Vec<i64>, Vec<String>) {
    let (mut acked, mut errors) = (Vec::new(), Vec::new());
    let opts = match mysql_async::Opts::from_url(&url) {
        Ok(o) => o,
        Err(e) => return (acked, vec![e.to_string()]),
    };
    let mut conn = match mysql_async::Conn::new(opts).await {
        Ok(c) => c,
        Err(e) => return (acked, vec![e.to_string()]),
    };
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = w * 1_000_000 + n;
        match conn.exec_drop("INSERT INTO t (id, w) VALUES (?, ?)", (id, w)).await {
            Ok(()) => acked.push(id),
            Err(e) => errors.push(format!("writer {w} id {id}: {e}")),
        }
    }
    (acked, errors)
}

/// Writer `w` of a benchmark: inserts `(id, w)` rows into `t` (ids `base + w * 10_000_000 + n`)
/// through `url` back to back until `stop`, raising `longest` to the duration (µs) of each
/// INSERT whose id `watch` selects. Returns the acknowledged ids and how many failed.
pub async fn timed_writer(url: String, w: i64, base: i64, stop: Arc<AtomicBool>, longest: Arc<std::sync::atomic::AtomicU64>, watch: fn(i64) -> bool) -> anyhow::Result<(Vec<i64>, usize)> {
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    let (mut acked, mut errors, mut k) = (Vec::new(), 0usize, 0i64);
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let id = base + w * 10_000_000 + k;
        let t = std::time::Instant::now();
        match conn.exec_drop("INSERT INTO t (id, w) VALUES (?, ?)", (id, w)).await {
            Ok(()) => acked.push(id),
            Err(_) => errors += 1,
        }
        if watch(id) {
            longest.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }
    Ok((acked, errors))
}
