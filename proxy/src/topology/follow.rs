//! Follows the meta group: every applied state with a newer topology is published to the
//! node's router, after the backend pools it needs exist.
//!
//! Contract: runs until cancelled; publishes versions in order and never an older one; a
//! topology whose pools cannot be built (a malformed address) is logged and skipped, the node
//! keeps routing with the version it has. Propagation is replication: this reacts to the
//! local state machine's apply, it never polls.

use super::TopologyHandle;
use crate::backend::Backends;
use crate::metrics::Metrics;
use slotgate_meta::MetaState;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub async fn follow_meta(
    mut state: watch::Receiver<Arc<MetaState>>,
    handle: TopologyHandle,
    backends: Backends,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    loop {
        let current = state.borrow_and_update().clone();
        if let Some(t) = &current.topology {
            if t.version > handle.version() {
                match backends.sync(t) {
                    Ok(()) => {
                        handle.store(t.clone());
                        metrics.meta().topology_version.set(t.version as f64);
                        if let Some(h) = current.history.back().filter(|h| h.version == t.version) {
                            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                            metrics.meta().swap_seconds.record(now.saturating_sub(h.at_ms) as f64 / 1000.0);
                        }
                        tracing::info!(version = t.version, "topology swapped");
                    }
                    Err(e) => tracing::error!(version = t.version, error = %e, "topology not applied: cannot open its backend pools"),
                }
            }
        }
        tokio::select! {
            r = state.changed() => if r.is_err() { return },
            _ = cancel.cancelled() => return,
        }
    }
}
