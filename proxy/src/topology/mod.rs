//! The node's current topology snapshot, swapped atomically, and how it follows the meta group.
//!
//! Contract: readers `load()` an `Arc<Topology>` and route a whole statement (or
//! transaction) with it; a new version is published with `store()` and seen by every
//! statement that starts afterwards. No locks on the read path. Before the first topology
//! arrives (a meta group not yet initialised) the handle holds an empty version 0, which
//! `is_ready()` reports so that sessions refuse clients instead of routing with it.

mod follow;
mod member;

pub use follow::{follow_meta, Follower};
pub use member::{start_member, MemberError, MemberParts};

use arc_swap::ArcSwap;
use slotgate_shared::Topology;
use std::sync::Arc;

#[derive(Clone)]
pub struct TopologyHandle {
    current: Arc<ArcSwap<Topology>>,
    /// The version last published (for statements held until the next one).
    published: Arc<tokio::sync::watch::Sender<u64>>,
}

impl TopologyHandle {
    pub fn new(topology: Topology) -> TopologyHandle {
        let version = topology.version;
        TopologyHandle { current: Arc::new(ArcSwap::from_pointee(topology)), published: Arc::new(tokio::sync::watch::channel(version).0) }
    }

    /// A handle with no topology yet (version 0, no shards).
    pub fn empty() -> TopologyHandle {
        TopologyHandle::new(Topology { version: 0, slot_count: 0, slots: vec![], shards: vec![], rules: vec![], home: 0, frozen: vec![], moving: vec![], migrations: vec![], migration_seq: 0 })
    }

    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Whether a real topology (version ≥ 1) has been published.
    pub fn is_ready(&self) -> bool {
        self.current.load().version > 0
    }

    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// Publishes a newer version; an older or equal version is ignored.
    pub fn store(&self, topology: Topology) -> bool {
        let newer = topology.version > self.current.load().version;
        if newer {
            let version = topology.version;
            self.current.store(Arc::new(topology));
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            self.published.send_replace(version);
        }
        newer
    }

    /// Resolves once a version newer than `than` is published.
    pub async fn newer(&self, than: u64) {
        let mut rx = self.published.subscribe();
        let _ = rx.wait_for(|v| *v > than).await;
    }
}
