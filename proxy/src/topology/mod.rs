//! The node's current topology snapshot, swapped atomically.
//!
//! Contract: readers `load()` an `Arc<Topology>` and route a whole statement (or
//! transaction) with it; a new version is published with `store()` and seen by every
//! statement that starts afterwards. No locks on the read path.

use arc_swap::ArcSwap;
use slotgate_shared::Topology;
use std::sync::Arc;

#[derive(Clone)]
pub struct TopologyHandle {
    current: Arc<ArcSwap<Topology>>,
}

impl TopologyHandle {
    pub fn new(topology: Topology) -> TopologyHandle {
        TopologyHandle { current: Arc::new(ArcSwap::from_pointee(topology)) }
    }

    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Publishes a newer version; an older or equal version is ignored.
    pub fn store(&self, topology: Topology) -> bool {
        let newer = topology.version > self.current.load().version;
        if newer {
            self.current.store(Arc::new(topology));
        }
        newer
    }
}
