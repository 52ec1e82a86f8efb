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
