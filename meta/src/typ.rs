//! The Raft type configuration of the meta group, declared once, plus short aliases.
//!
//! Contract: [`TypeConfig`] is the only `RaftTypeConfig` of this crate. Node ids are `u64`,
//! nodes are [`openraft::BasicNode`] (an address string), the replicated payload is
//! [`MetaRequest`] and its result [`MetaResponse`]; snapshots travel as an in-memory byte cursor.
//! Every other module names openraft's generic types through the aliases below, so that a
//! change of the configuration is made here only.

use std::io::Cursor;

use crate::state::{MetaRequest, MetaResponse};

openraft::declare_raft_types!(
    /// Type configuration of the slotgate meta Raft group.
    pub TypeConfig:
        D = MetaRequest,
        R = MetaResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Id of a meta group member.
pub type NodeId = u64;
/// Address information of a meta group member.
pub type Node = openraft::BasicNode;
/// The Raft node of the meta group.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of the meta group.
pub type Entry = openraft::Entry<TypeConfig>;
/// The payload of a log entry.
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
/// Identifies a log entry by leader term/node and index.
pub type LogId = openraft::LogId<NodeId>;
/// A vote (term, candidate, committed flag).
pub type Vote = openraft::Vote<NodeId>;
/// A membership configuration.
pub type Membership = openraft::Membership<NodeId, Node>;
/// A membership configuration together with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Metadata of a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot: metadata plus a readable handle to its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// First and last log ids present in the log store.
pub type LogState = openraft::LogState<TypeConfig>;
/// The storage error type openraft expects from storage implementations.
pub type StorageError = openraft::StorageError<NodeId>;
