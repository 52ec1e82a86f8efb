//! The embedded Raft meta group of slotgate: the topology as a replicated state machine.
//!
//! Contract of this crate:
//! - [`typ`] declares the Raft type configuration ([`TypeConfig`]) once, with aliases.
//! - [`state`] is the replicated state ([`MetaState`]): the versioned topology, its history and
//!   remembered request ids; requests ([`MetaRequest`]) carry topology commands defined in
//!   `slotgate-shared` and apply deterministically and once per request id.
//! - [`store`] is the durable Raft storage on redb in one data directory ([`MetaStore::open`]).
//! - [`network`] is the member-to-member transport (HTTP+JSON, cluster secret, fault injection).
//! - [`node`] is a running member ([`MetaNode`]): bootstrap, writes through the leader,
//!   membership changes, status; [`api`] is its admin HTTP API.
//!
//! It knows nothing of backends, SQL or metric names: the embedding process passes
//! [`MetaHooks`].

pub mod api;
pub mod error;
pub mod cutover;
pub mod hooks;
pub mod lease;
pub mod network;
pub mod node;
pub mod options;
pub mod state;
pub mod store;
pub mod typ;

pub use error::MetaError;
pub use hooks::{HookFuture, MetaHooks, NoHooks};
pub use network::Faults;
pub use node::{MembershipChange, MetaNode};
pub use options::{MetaOptions, PeerTls};
pub use state::{MetaRequest, MetaResponse, MetaState};
pub use store::{LogStore, MetaStore, StateMachineStore, StoreError};
pub use typ::TypeConfig;
