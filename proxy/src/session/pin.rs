//! A session's entry in `slotgate_sessions_pinned`: the reason it is counted under while it
//! keeps backend connections between statements, none while it keeps none.
//!
//! Contract: counts the session under at most one reason at a time; dropping it (the session
//! ends) takes the session out of the gauge.

use crate::metrics::{Metrics, PIN_REASONS};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct PinGauge {
    metrics: Metrics,
    /// 1 + the index in PIN_REASONS of the reason counted now; 0 for none.
    current: AtomicUsize,
}

impl PinGauge {
    pub fn new(metrics: Metrics) -> PinGauge {
        PinGauge { metrics, current: AtomicUsize::new(0) }
    }

    /// Counts the session under `reason` (a label of PIN_REASONS), or under none.
    pub fn set(&self, reason: Option<&'static str>) {
        let next = reason.and_then(|r| PIN_REASONS.iter().position(|x| *x == r)).map_or(0, |i| i + 1);
        let before = self.current.swap(next, Ordering::Relaxed);
        if before == next {
            return;
        }
        let routing = self.metrics.routing();
        if before > 0 {
            routing.pinned(PIN_REASONS[before - 1]).decrement(1.0);
        }
        if next > 0 {
            routing.pinned(PIN_REASONS[next - 1]).increment(1.0);
        }
    }
}

impl Drop for PinGauge {
    fn drop(&mut self) {
        self.set(None);
    }
}
