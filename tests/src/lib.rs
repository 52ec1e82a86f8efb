//! Integration-test support for slotgate: harnesses that start real processes
//! (MariaDB servers via [`mariadb`], in-process slotgate nodes via [`proxy`]) for the tests in
//! `tests/tests/`.

pub mod certs;
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

/// The slotctl binary next to this test's target directory (built on demand).
pub fn slotctl_bin() -> std::path::PathBuf {
    workspace_bin("slotctl", "slotctl")
}

/// The slotgate binary next to this test's target directory (built on demand).
pub fn slotgate_bin() -> std::path::PathBuf {
    workspace_bin("slotgate", "slotgate-proxy")
}

fn workspace_bin(name: &str, package: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default();
    let status = std::process::Command::new("cargo").args(["build", "-q", "-p", package]).current_dir(&root).status();
    assert!(status.is_ok_and(|s| s.success()), "cargo build -p {package}");
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> -> target/debug/<name>
    exe.parent().and_then(|d| d.parent()).map(|d| d.join(name)).unwrap_or_default()
}
