//! The cutover buffer: statements held while their shard or slots are frozen for a cutover.
//!
//! Contract: bounded both ways, by time (the window each statement may wait) and by size (how
//! many statements one node holds at once); a statement that does not fit is refused at once
//! with a retryable error instead of queueing without bound. The held count is the
//! `slotgate_buffered_statements` gauge.

use super::BackendError;
use metrics::Gauge;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct Buffer {
    held: AtomicUsize,
    max: usize,
    window: Duration,
    gauge: Gauge,
}

/// One held statement; leaves the buffer when dropped.
pub struct Held<'a>(&'a Buffer);

impl Buffer {
    pub fn new(window: Duration, max: usize, gauge: Gauge) -> Buffer {
        Buffer { held: AtomicUsize::new(0), max: max.max(1), window, gauge }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Holds one statement waiting for `what` (a shard, slots), or refuses when full.
    pub fn enter(&self, what: &str) -> Result<Held<'_>, BackendError> {
        let before = self.held.fetch_add(1, Ordering::SeqCst);
        if before >= self.max {
            self.held.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::BufferFull { what: what.to_string(), limit: self.max });
        }
        self.gauge.increment(1.0);
        Ok(Held(self))
    }

    /// The error of a statement that waited the whole window.
    pub fn expired(&self, what: &str) -> BackendError {
        BackendError::Frozen { what: what.to_string(), window_ms: self.window.as_millis() as u64 }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
        self.0.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_bounded_by_size() {
        let b = Buffer::new(Duration::from_millis(10), 2, Gauge::noop());
        let one = b.enter("shard a").unwrap();
        let _two = b.enter("shard a").unwrap();
        assert!(matches!(b.enter("shard a"), Err(BackendError::BufferFull { limit: 2, .. })));
        drop(one);
        assert!(b.enter("shard a").is_ok());
    }
}
