//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`; the meta
//! group's API (`slotgate_meta::api`) is merged in by the server when `[meta]` is configured.
//!
//! Contract: `/healthz` answers while the process runs; `/readyz` only while the node accepts
//! clients, has a topology and its home shard answers; `/metrics` needs the bearer token when
//! `node.admin_token` is set. No handler reveals secrets.

mod slot_check;

pub use slot_check::NodeHooks;

use crate::backend::Backends;
use crate::topology::TopologyHandle;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub backends: Backends,
    pub topology: TopologyHandle,
    pub ready: Arc<AtomicBool>,
    pub token: Option<Arc<str>>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Constant-time check of `Authorization: Bearer <token>`.
pub fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    slotgate_meta::network::same_secret(given.as_bytes(), token.as_bytes())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token: send Authorization: Bearer <node.admin_token>\n",
    )
        .into_response()
}

async fn metrics(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return unauthorized();
    }
    s.backends.report_metrics();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not accepting clients\n").into_response();
    }
    let topo = s.topology.load();
    let Some(home) = topo.shards.get(topo.home_index()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no topology yet: the meta group is not initialised (slotctl init) or this node has not caught up\n").into_response();
    };
    let Some(pool) = s.backends.primary(&home.id) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no pool for the home shard yet\n").into_response();
    };
    match tokio::time::timeout(Duration::from_secs(2), pool.acquire(false)).await {
        Ok(Ok(_conn)) => "ready\n".into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("home shard unavailable: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "home shard did not answer within 2 s\n").into_response(),
    }
}
