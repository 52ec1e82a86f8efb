//! Fault injection for tests: links a node refuses to use.
//!
//! Contract: while a target is blocked, every outgoing Raft RPC or forwarded request from this
//! node to it fails as unreachable, and every incoming Raft RPC claiming to come from it is
//! refused. Blocking both ends of a pair cuts the link; production code never blocks anything.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::typ::NodeId;

#[derive(Clone, Default, Debug)]
pub struct Faults {
    blocked: Arc<Mutex<HashSet<NodeId>>>,
}

impl Faults {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<NodeId>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn block(&self, node: NodeId) {
        self.set().insert(node);
    }

    pub fn unblock_all(&self) {
        self.set().clear();
    }

    pub fn is_blocked(&self, node: NodeId) -> bool {
        self.set().contains(&node)
    }
}
