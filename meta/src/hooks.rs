//! What the embedding process lends the meta node: command checks and outcome counting.
//!
//! Contract: the meta crate knows nothing of backends or metric names; the process that embeds
//! a meta node (the slotgate proxy) implements [`MetaHooks`]. Hooks must not block.

use std::future::Future;
use std::pin::Pin;

use slotgate_shared::api::SlotCount;
use slotgate_shared::{Topology, TopologyCommand};

/// A boxed future returned by a hook.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait MetaHooks: Send + Sync + 'static {
    /// Checks a command against the world outside the meta group before it is proposed (for
    /// example: slots that still hold rows must not move). `Err` carries the refusal sentence.
    fn precheck<'a>(&'a self, _current: &'a Topology, _command: &'a TopologyCommand) -> HookFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Counts a command submitted through this node: `result` is `applied`, `retried`,
    /// `refused` or `error`.
    fn command_done(&self, _kind: &str, _result: &str) {}

    /// This node's open backend work for the other members' deadlock detectors: (shard,
    /// backend thread id, client connection id) of every backend connection lent out now.
    fn transactions(&self) -> Vec<(String, u32, u32)> {
        Vec::new()
    }

    /// This node's per-slot load counters, for `GET /slots/top` on other members.
    fn slot_load(&self) -> Vec<SlotCount> {
        Vec::new()
    }
}

/// Hooks that check nothing and count nothing.
pub struct NoHooks;

impl MetaHooks for NoHooks {}
