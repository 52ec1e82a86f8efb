//! Leases and cutover acknowledgements, held by the leader in memory.
//!
//! Contract:
//! - Every member renews a lease with the leader every third of the lease duration. The
//!   leader grants it only while a quorum acknowledged it within the minimum election timeout
//!   (so a deposed leader cut off in a minority stops granting before a new one can be
//!   elected) and records the time it received the renewal; the member counts its lease from
//!   the time it *sent* the renewal, so its own view never outlasts the leader's.
//! - A member whose lease expired stops serving clients until a renewal succeeds and it has
//!   applied everything the leader had committed when it answered (see [`Serving`]).
//! - A cutover commits only when every member with a live lease acknowledged its prepare
//!   version, and never within one lease duration of this node becoming leader (leases
//!   granted by an earlier leader have expired by then).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::typ::NodeId;

/// The leader's view: last renewal per member, acknowledgements per prepare version.
#[derive(Default)]
pub struct LeaseTable {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    renewed: HashMap<NodeId, Instant>,
    acks: std::collections::BTreeMap<u64, BTreeSet<NodeId>>,
    leader_since: Option<Instant>,
}

impl LeaseTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn renew(&self, node: NodeId) {
        self.lock().renewed.insert(node, Instant::now());
    }

    /// Members whose lease (granted by this node) is still live.
    pub fn live(&self, lease: Duration) -> BTreeSet<NodeId> {
        let now = Instant::now();
        self.lock().renewed.iter().filter(|(_, t)| now.duration_since(**t) < lease).map(|(n, _)| *n).collect()
    }

    pub fn ack(&self, node: NodeId, version: u64) {
        let mut t = self.lock();
        t.acks.entry(version).or_default().insert(node);
        // Keep only recent prepare versions.
        if t.acks.len() > 64 {
            if let Some(oldest) = t.acks.keys().next().copied() {
                t.acks.remove(&oldest);
            }
        }
    }

    /// Members that acknowledged `version` or a later one (a member that applied the prepare
    /// together with later entries acknowledges the version it published).
    pub fn acked(&self, version: u64) -> BTreeSet<NodeId> {
        self.lock().acks.range(version..).flat_map(|(_, nodes)| nodes.iter().copied()).collect()
    }

    /// Notes whether this node leads now; forgets everything when it stops leading.
    pub fn set_leader(&self, leading: bool) {
        let mut t = self.lock();
        match (leading, t.leader_since) {
            (true, None) => t.leader_since = Some(Instant::now()),
            (false, Some(_)) => *t = Table::default(),
            _ => {}
        }
    }

    /// How long a cutover must still wait for leases of an earlier leader to run out.
    pub fn grace_left(&self, lease: Duration) -> Option<Duration> {
        let since = self.lock().leader_since?;
        Some(lease.saturating_sub(since.elapsed()))
    }
}

/// A member's own view of its lease: serve clients only while it holds one.
#[derive(Clone)]
pub struct Serving {
    base: Instant,
    /// Milliseconds since `base` until which this member may serve (0: not yet).
    until_ms: Arc<AtomicU64>,
}

impl Default for Serving {
    fn default() -> Self {
        Serving { base: Instant::now(), until_ms: Arc::new(AtomicU64::new(0)) }
    }
}

impl Serving {
    /// Extends the lease to `sent + lease` (never shortens it).
    pub fn extend(&self, sent: Instant, lease: Duration) {
        let until = sent.saturating_duration_since(self.base) + lease;
        self.until_ms.fetch_max(until.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn valid(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.until_ms.load(Ordering::Relaxed)
    }
}
