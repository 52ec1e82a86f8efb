//! The embedded Raft meta group of slotgate: first slice, its durable Raft storage.
//!
//! Contract of this crate (as of this slice):
//! - [`typ`] declares the Raft type configuration ([`TypeConfig`]) once, with aliases.
//! - [`state`] holds the replicated state machine's *placeholder* data model: an opaque
//!   [`MetaRequest`] (request id + JSON command) applied idempotently to a [`MetaState`].
//!   It will be replaced by the topology commands (moved into `slotgate-shared`) later.
//! - [`store`] implements openraft 0.9's `RaftLogStorage`/`RaftLogReader` ([`LogStore`]) and
//!   `RaftStateMachine`/`RaftSnapshotBuilder` ([`StateMachineStore`]) on redb in one data
//!   directory, opened with [`MetaStore::open`]. Everything acknowledged as durable (votes,
//!   appended entries once the flush callback fired, committed id, purge point, applied state,
//!   snapshots) survives a restart from the same directory.
//!
//! No Raft node, network or API is wired up yet.

pub mod state;
pub mod store;
pub mod typ;

pub use state::{MetaRequest, MetaResponse, MetaState};
pub use store::{LogStore, MetaStore, StateMachineStore, StoreError};
pub use typ::TypeConfig;
