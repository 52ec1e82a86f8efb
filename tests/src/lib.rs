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

/// Prints the nodes' logs to the test's stderr when `SLOTGATE_TEST_LOG` is set (an env-filter
/// directive such as `info` or `slotgate=debug`); call at the start of a test.
pub fn logs() {
    if let Ok(filter) = std::env::var("SLOTGATE_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_test_writer().try_init();
    }
}
