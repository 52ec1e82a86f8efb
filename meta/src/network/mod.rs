//! The meta group's transport: Raft RPCs and forwarded requests over HTTP+JSON on the members'
//! admin ports.
//!
//! Contract: [`client::HttpNetwork`] is openraft's network factory (one shared, pooled HTTP
//! client; every call bounded by a timeout; every call carries the cluster secret);
//! [`server::raft_routes`] serves the incoming side and refuses any request without the
//! secret. [`Faults`] lets tests cut links between members (a network partition) without
//! touching the operating system.

pub mod client;
pub mod faults;
pub mod server;

pub use client::HttpNetwork;
pub use faults::Faults;

/// Header carrying the cluster secret on every member-to-member request.
pub const SECRET_HEADER: &str = "x-slotgate-cluster-secret";
/// Header carrying the sending member's id (used by fault injection).
pub const FROM_HEADER: &str = "x-slotgate-from";

/// Paths of the member-to-member endpoints.
pub mod paths {
    pub const APPEND: &str = "/raft/append";
    pub const VOTE: &str = "/raft/vote";
    pub const SNAPSHOT: &str = "/raft/snapshot";
    /// A follower forwards a client's write to the leader.
    pub const WRITE: &str = "/raft/write";
    /// A follower forwards a membership change to the leader.
    pub const MEMBERSHIP: &str = "/raft/membership";
    /// A follower asks the leader for a linearizable (read-index) read of the topology.
    pub const READ: &str = "/raft/read";
    /// A member renews its lease with the leader.
    pub const LEASE: &str = "/raft/lease";
    /// A member acknowledges a cutover prepare (it drained the frozen shards).
    pub const ACK: &str = "/raft/ack";
    /// A member asks another for its transactions' backend threads (deadlock detection).
    pub const TRANSACTIONS: &str = "/raft/transactions";
    /// A member asks another for its per-slot load counters.
    pub const SLOT_LOAD: &str = "/raft/slot_load";
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
