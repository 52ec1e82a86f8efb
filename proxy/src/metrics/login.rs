//! Metrics of client logins (names defined here, with the rest of the node's metric names in
//! `metrics/mod.rs`).
//!
//! Contract: handles are registered once, when the node's [`super::Metrics`] is built.

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::PrometheusRecorder;

pub const LOGIN_FAILURES_TOTAL: &str = "slotgate_login_failures_total";
pub const LOGINS_DELAYED_TOTAL: &str = "slotgate_logins_delayed_total";
pub const LOGIN_THROTTLED_ADDRESSES: &str = "slotgate_login_throttled_addresses";

/// Handles the login throttle bumps (cheap to clone).
#[derive(Clone)]
pub struct LoginMetrics {
    /// Password checks that failed (handshake and COM_CHANGE_USER).
    pub failures: Counter,
    /// Logins answered late because their address had failed too often.
    pub delayed: Counter,
    /// Addresses whose logins are slowed now.
    pub throttled_addresses: Gauge,
}

impl LoginMetrics {
    pub(super) fn register(recorder: &PrometheusRecorder) -> LoginMetrics {
        metrics::with_local_recorder(recorder, || {
            metrics::describe_counter!(LOGIN_FAILURES_TOTAL, "Client logins refused for a wrong password or an unknown user (handshake and COM_CHANGE_USER).");
            metrics::describe_counter!(LOGINS_DELAYED_TOTAL, "Client logins answered late because their address failed too often (node.login_failures_before_delay).");
            metrics::describe_gauge!(LOGIN_THROTTLED_ADDRESSES, "Client addresses whose logins are slowed now.");
            LoginMetrics {
                failures: metrics::counter!(LOGIN_FAILURES_TOTAL),
                delayed: metrics::counter!(LOGINS_DELAYED_TOTAL),
                throttled_addresses: metrics::gauge!(LOGIN_THROTTLED_ADDRESSES),
            }
        })
    }
}
