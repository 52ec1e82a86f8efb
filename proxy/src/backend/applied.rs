//! What session state each connection of one backend node carries, by backend thread id.
//!
//! Contract: [`AppliedStates::get`] answers what a connection carries: what was recorded
//! for it, else "clean" for a connection opened after every forgotten one (thread ids
//! grow on a server), else "unknown" (the next user resets it). Entries of connections
//! idle in the pool longer than the pool keeps idle connections are forgotten
//! ([`AppliedStates::prune`]), so the map does not grow with every connection ever opened;
//! when the node restarted ([`AppliedStates::booted`]) every entry is forgotten, so a new
//! connection that reuses an old thread id is never taken for the old one.

use super::sync::Applied;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct AppliedStates {
    states: DashMap<u32, Applied>,
    /// Connections back in the pool, since when.
    idle: DashMap<u32, Instant>,
    /// A connection without an entry and an id up to this one may carry state.
    forgotten_upto: AtomicU32,
    /// The highest thread id seen.
    max_seen: AtomicU32,
    /// The node's boot time (unix seconds) as last probed.
    boot: Mutex<Option<i64>>,
    /// When these records were started (unix seconds): a node that booted later restarted
    /// since, even if nobody asked before.
    started: i64,
}

impl Default for AppliedStates {
    fn default() -> Self {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        AppliedStates::started_at(started)
    }
}

impl AppliedStates {
    pub fn started_at(unix_secs: i64) -> AppliedStates {
        AppliedStates {
            states: DashMap::new(),
            idle: DashMap::new(),
            forgotten_upto: AtomicU32::new(0),
            max_seen: AtomicU32::new(0),
            boot: Mutex::new(None),
            started: unix_secs,
        }
    }

    pub fn get(&self, id: u32) -> Applied {
        if let Some(a) = self.states.get(&id) {
            return a.clone();
        }
        if id <= self.forgotten_upto.load(Ordering::Acquire) {
            Applied::unknown()
        } else {
            Applied::default()
        }
    }

    pub fn set(&self, id: u32, applied: Applied) {
        self.max_seen.fetch_max(id, Ordering::AcqRel);
        self.states.insert(id, applied);
    }

    /// The connection is closed.
    pub fn remove(&self, id: u32) {
        self.states.remove(&id);
        self.idle.remove(&id);
    }

    /// The connection was taken from the pool.
    pub fn lent(&self, id: u32) {
        self.max_seen.fetch_max(id, Ordering::AcqRel);
        self.idle.remove(&id);
    }

    /// The connection went back to the pool.
    pub fn returned(&self, id: u32) {
        if self.states.contains_key(&id) {
            self.idle.insert(id, Instant::now());
        }
    }

    /// Forgets connections idle in the pool for longer than `horizon` (by then the pool has
    /// closed them, or keeps them as its minimum, which the "unknown" answer covers).
    /// Returns how many were forgotten.
    pub fn prune(&self, horizon: Duration) -> usize {
        let Some(cutoff) = Instant::now().checked_sub(horizon) else {
            return 0;
        };
        let old: Vec<u32> = self.idle.iter().filter(|e| *e.value() < cutoff).map(|e| *e.key()).collect();
        for id in &old {
            // Raised before the entry goes: a reader never sees neither.
            self.forgotten_upto.fetch_max(*id, Ordering::AcqRel);
            self.idle.remove(id);
            self.states.remove(id);
        }
        old.len()
    }

    /// Records the node's boot time; when it moved (the server restarted, or another server
    /// now answers at the address), forgets every connection: the ones recorded are gone
    /// and their thread ids will be reused. On the first probe, a boot after these records
    /// started counts as a restart. (Boot times are compared with 2 s of slack: a server
    /// restarted within 2 s of its previous boot is not told apart; status counters are
    /// no help, FLUSH STATUS resets them.)
    pub fn booted(&self, unix_secs: i64) -> bool {
        let mut boot = self.boot.lock().unwrap_or_else(|p| p.into_inner());
        let restarted = match *boot {
            Some(b) => (b - unix_secs).abs() > 2,
            None => unix_secs > self.started + 2,
        };
        if restarted {
            // The new server's ids start low again: up to the old highest one, unknown.
            self.forgotten_upto.fetch_max(self.max_seen.load(Ordering::Acquire), Ordering::AcqRel);
            self.states.clear();
            self.idle.clear();
        }
        *boot = Some(unix_secs);
        restarted
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.states.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_and_older_connections_are_unknown_newer_ones_clean() {
        let a = AppliedStates::default();
        let some = Applied { owner: 7, sets_hash: 3, ..Applied::default() };
        a.set(10, some.clone());
        a.set(11, some.clone());
        a.lent(11);
        a.returned(10);
        assert_eq!(a.prune(Duration::ZERO), 1, "only the idle one");
        assert_eq!(a.len(), 1);
        assert_eq!(a.get(10), Applied::unknown(), "forgotten: may still carry state");
        assert_eq!(a.get(9), Applied::unknown());
        assert_eq!(a.get(11), some, "lent: kept");
        assert_eq!(a.get(12), Applied::default(), "opened later: clean");
    }

    #[test]
    fn a_restart_forgets_everything() {
        let a = AppliedStates::started_at(1000);
        assert!(!a.booted(999));
        a.set(5, Applied { owner: 1, sets_hash: 9, ..Applied::default() });
        assert!(!a.booted(1001), "clock jitter is no restart");
        assert!(a.booted(2000));
        assert_eq!(a.len(), 0);
        assert_eq!(a.get(5), Applied::unknown(), "a reused id is never taken for the old connection");
        let late = AppliedStates::started_at(1000);
        late.set(6, Applied { owner: 1, sets_hash: 9, ..Applied::default() });
        assert!(late.booted(1500), "booted after the records started: restarted before the first probe");
        assert_eq!(late.get(6), Applied::unknown());
    }
}
