//! slotgate's proxy: a MySQL-protocol front door that routes statements to MariaDB shards.
//!
//! The way of one statement: `frontend` decodes it → `session` adds its state → `router`
//! decides where it goes (pure) → `backend` runs it → `session::forward` (one shard) or
//! `merge` (several) streams the answer back through `frontend`. See docs/ARCHITECTURE.md.

pub mod admin;
pub mod backend;
pub mod config;
pub mod error;
pub mod frontend;
pub mod jobs;
pub mod merge;
pub mod metrics;
pub mod router;
pub mod server;
pub mod session;
pub mod topology;

pub use config::{Config, Users};
pub use server::{Node, NodeHandle};
