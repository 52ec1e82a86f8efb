//! Common types of slotgate shared by the proxy, the meta group and slotctl: the slot
//! function (a public contract) and the versioned topology.
//!
//! Contract: no I/O, no async; everything here is plain data and pure functions.

pub mod api;
pub mod command;
pub mod migration;
mod moves;
pub mod slot;
pub mod topology;

pub use command::{CommandError, SlotRange, TopologyCommand};
pub use migration::{Migration, MigrationPhase, KEEP_FINISHED};
pub use slot::{slot_of, KeyValue};
pub use topology::{Shard, SlotMove, ShardState, ShardingRule, Topology, TopologyError};
