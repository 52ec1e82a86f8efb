//! Slowing password guessing: once `free_failures` logins from one address failed, every
//! login from it (right or wrong, so that timing does not reveal a hit) is answered only after
//! a delay that doubles with each further failure, from 250 ms up to `max_delay`.
//!
//! Contract: a successful login clears its address; an address without failures for
//! [`FORGET_AFTER`] is forgotten; at most [`MAX_ADDRESSES`] addresses are remembered (the
//! stalest are dropped first), so memory stays bounded under a spray from many addresses.
//! `free_failures = 0` turns the throttle off.

use crate::metrics::login::LoginMetrics;
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 100_000;
const FIRST_DELAY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginThrottle {
    free_failures: u32,
    max_delay: Duration,
    failures: DashMap<String, Failures>,
    metrics: LoginMetrics,
}

impl LoginThrottle {
    pub fn new(free_failures: u32, max_delay: Duration, metrics: LoginMetrics) -> LoginThrottle {
        LoginThrottle { free_failures, max_delay, failures: DashMap::new(), metrics }
    }

    /// How long to hold the answer to a login from `addr` now.
    pub fn delay(&self, addr: &str) -> Duration {
        if self.free_failures == 0 {
            return Duration::ZERO;
        }
        let Some(f) = self.failures.get(addr).map(|f| *f) else { return Duration::ZERO };
        if f.count < self.free_failures || f.last.elapsed() > FORGET_AFTER {
            return Duration::ZERO;
        }
        let doublings = (f.count - self.free_failures).min(16);
        FIRST_DELAY.saturating_mul(1 << doublings).min(self.max_delay)
    }

    /// Holds the answer to a login from `addr` for [`LoginThrottle::delay`].
    pub async fn wait(&self, addr: &str) {
        let d = self.delay(addr);
        if !d.is_zero() {
            self.metrics.delayed.increment(1);
            tokio::time::sleep(d).await;
        }
    }

    /// A login from `addr` gave a wrong password (or named an unknown user).
    pub fn failed(&self, addr: &str) {
        self.metrics.failures.increment(1);
        if self.free_failures == 0 {
            return;
        }
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(addr) {
            self.prune();
        }
        let now = Instant::now();
        let mut entry = self.failures.entry(addr.to_string()).or_insert(Failures { count: 0, last: now });
        if entry.last.elapsed() > FORGET_AFTER {
            if entry.count >= self.free_failures {
                self.metrics.throttled_addresses.decrement(1.0);
            }
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count == self.free_failures {
            self.metrics.throttled_addresses.increment(1.0);
        }
    }

    /// A login from `addr` succeeded: its failures are forgotten.
    pub fn succeeded(&self, addr: &str) {
        if let Some((_, f)) = self.failures.remove(addr) {
            if f.count >= self.free_failures {
                self.metrics.throttled_addresses.decrement(1.0);
            }
        }
    }

    /// Drops forgotten addresses, then the stalest half if still full.
    fn prune(&self) {
        self.failures.retain(|_, f| f.last.elapsed() <= FORGET_AFTER);
        if self.failures.len() >= MAX_ADDRESSES {
            let mut ages: Vec<Instant> = self.failures.iter().map(|f| f.last).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.failures.retain(|_, f| f.last > cutoff);
        }
        self.update_gauge();
    }

    fn update_gauge(&self) {
        let n = self.failures.iter().filter(|f| f.count >= self.free_failures).count();
        self.metrics.throttled_addresses.set(n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(free: u32) -> LoginThrottle {
        LoginThrottle::new(free, Duration::from_secs(4), crate::metrics::Metrics::new().login().clone())
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let t = throttle(3);
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(t.delay("10.0.0.1").as_millis());
            t.failed("10.0.0.1");
        }
        assert_eq!(seen, vec![0, 0, 0, 250, 500, 1000, 2000, 4000]);
        t.failed("10.0.0.1");
        t.failed("10.0.0.1");
        assert_eq!(t.delay("10.0.0.1"), Duration::from_secs(4), "capped");
        assert_eq!(t.delay("10.0.0.2"), Duration::ZERO, "per address");
        t.succeeded("10.0.0.1");
        assert_eq!(t.delay("10.0.0.1"), Duration::ZERO, "a good login clears the address");
    }

    #[test]
    fn off_when_no_free_failures_are_configured() {
        let t = throttle(0);
        for _ in 0..20 {
            t.failed("10.0.0.1");
        }
        assert_eq!(t.delay("10.0.0.1"), Duration::ZERO);
    }

    #[test]
    fn memory_is_bounded_under_a_spray_of_addresses() {
        let t = throttle(1);
        for i in 0..(MAX_ADDRESSES + 10) {
            t.failed(&format!("a{i}"));
        }
        assert!(t.failures.len() <= MAX_ADDRESSES, "{}", t.failures.len());
    }
}
