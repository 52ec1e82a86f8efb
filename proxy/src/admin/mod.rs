//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! Contract: `/healthz` answers while the process runs; `/readyz` only while the node accepts
//! clients and its default shard answers; `/metrics` needs the bearer token when
//! `node.admin_token` is set. No handler reveals secrets.

use crate::backend::Backends;
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
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().min(b.len()) {
        diff |= usize::from(a[i] ^ b[i]);
    }
    diff == 0
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
    let pool = s.backends.default_pool().clone();
    match tokio::time::timeout(Duration::from_secs(2), pool.acquire(false)).await {
        Ok(Ok(_conn)) => "ready\n".into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("default shard unavailable: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "default shard did not answer within 2 s\n").into_response(),
    }
}
