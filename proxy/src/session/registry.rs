//! The node's client connections by connection id (the id of the handshake), for KILL.
//!
//! Contract: the acceptor registers a connection with its own cancellation token before it
//! serves it and removes it when it ends ([`Registration`] does both); the session records
//! the user once logged in. `KILL <id>` looks the connection up here; nothing else does.

use dashmap::DashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Registry {
    map: DashMap<u32, Entry>,
}

struct Entry {
    user: String,
    cancel: CancellationToken,
}

/// Removes its connection from the registry when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.map.remove(&self.id);
    }
}

impl Registry {
    /// Registers connection `id`; `cancel` ends it (a KILL from another connection).
    pub fn register(self: &Arc<Self>, id: u32, cancel: CancellationToken) -> Registration {
        self.map.insert(id, Entry { user: String::new(), cancel });
        Registration { registry: self.clone(), id }
    }

    pub fn set_user(&self, id: u32, user: &str) {
        if let Some(mut e) = self.map.get_mut(&id) {
            e.user = user.to_string();
        }
    }

    /// The user of connection `id` and its token, if it is open on this node.
    pub fn get(&self, id: u32) -> Option<(String, CancellationToken)> {
        self.map.get(&id).map(|e| (e.user.clone(), e.cancel.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ends_with_its_guard() {
        let r = Arc::new(Registry::default());
        let g = r.register(7, CancellationToken::new());
        r.set_user(7, "app");
        assert_eq!(r.get(7).map(|(u, _)| u), Some("app".to_string()));
        drop(g);
        assert!(r.get(7).is_none());
    }
}
