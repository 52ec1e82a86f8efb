//! Integration-test support for slotgate: harnesses that start real processes
//! (MariaDB servers via [`mariadb`], in-process slotgate nodes via [`proxy`]) for the tests in
//! `tests/tests/`.

pub mod cluster;
pub mod difftest;
pub mod load;
pub mod mariadb;
pub mod proxy;
pub mod raw;

pub use mariadb::replication::ReplicaStatus;
pub use mariadb::{MariaDb, MariaDbOptions};
