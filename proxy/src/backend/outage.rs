//! New work for a shard whose primary does not answer waits for its failover instead of
//! failing: the unplanned counterpart of the cutover buffer.
//!
//! Contract: [`Backends::acquire_primary`] hands out a connection to the shard's primary.
//! When connecting fails (refused, timed out) and a failover can replace the primary (this
//! node's meta group runs automatic failover and the shard has a replica), the statement is
//! held in the same bounded buffer as planned cutovers (it has sent nothing yet, so holding
//! it is safe): it runs on the new primary once a topology names one, on the old primary if
//! it answers again (probed every [`PROBE_EVERY`]), or gets ERROR 1205 when
//! `node.buffer_window_ms` passes. Statements already running on the dead primary are not
//! held: their outcome is unknown and they get ERROR 2013 from the connection that died.

use super::{BackendError, Backends, PooledConn};
use std::time::Duration;

/// How often a held statement tries the primary it could not reach.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

impl Backends {
    /// Whether statements for `shard` wait for a failover when its primary does not answer.
    fn can_fail_over(&self, shard: &str) -> bool {
        self.inner.failover_hold.load(std::sync::atomic::Ordering::Relaxed) && self.inner.replicated.load().contains(shard)
    }

    /// Turns holding for failovers on (nodes whose meta group runs automatic failover).
    pub fn hold_for_failovers(&self, on: bool) {
        self.inner.failover_hold.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection to `shard`'s primary, waiting for a cutover or a failover as the module
    /// docs say. `Ok(None)` when the topology names no such shard.
    pub async fn acquire_primary(&self, shard: &str, found_rows: bool) -> Result<Option<PooledConn>, BackendError> {
        let Some(pool) = self.primary_when_unfrozen(shard).await? else { return Ok(None) };
        let first = match pool.acquire(found_rows).await {
            Ok(c) => return Ok(Some(c)),
            Err(e @ BackendError::Unavailable { .. }) if self.can_fail_over(shard) => e,
            Err(e) => return Err(e),
        };
        let addr = pool.addr().to_string();
        tracing::info!(shard, node = %addr, error = %first, "primary does not answer: holding the statement for its failover");
        let held = self.inner.buffer.enter(&format!("shard {shard}"))?;
        self.inner.metrics.cutover().failover_holds.increment(1);
        let window = self.inner.buffer.window();
        let mut rx = self.inner.synced.subscribe();
        let waited = tokio::time::timeout(window, async {
            loop {
                tokio::select! {
                    _ = rx.changed() => {}
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                }
                // The failover's freeze: wait on (this statement already holds its buffer place).
                if self.is_frozen(shard) {
                    continue;
                }
                let Some(pool) = self.primary(shard) else { return Ok(None) };
                match pool.acquire(found_rows).await {
                    Ok(c) => return Ok(Some(c)),
                    Err(BackendError::Unavailable { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        drop(held);
        match waited {
            Ok(r) => r,
            Err(_) => Err(BackendError::NoFailover { shard: shard.to_string(), addr, window_ms: window.as_millis() as u64 }),
        }
    }
}
