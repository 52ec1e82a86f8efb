//! The embedded Raft meta group (not implemented yet; see issue "Embedded Raft meta group").
