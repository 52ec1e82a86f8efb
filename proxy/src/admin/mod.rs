//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`; the meta
//! group's API (`slotgate_meta::api`) is merged in by the server when `[meta]` is configured.
//!
//! Contract: `/healthz` answers while the process runs; `/readyz` only while the node accepts
//! clients, has a topology and its home shard answers; `/metrics` needs the bearer token when
//! `node.admin_token` is set. No handler reveals secrets.

mod failover;
mod gtid;
mod rule_check;
mod slot_check;
mod slot_move;
mod switchover;

pub use failover::health_loop;
pub use slot_check::NodeHooks;
pub use slot_move::{MoveReply, MoveRequest};
pub use switchover::{Switchover, SwitchoverReply, SwitchoverRequest};

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
    pub meta: Option<slotgate_meta::MetaNode>,
    pub ready: Arc<AtomicBool>,
    pub token: Option<Arc<str>>,
    /// Planned switchovers (nodes of a meta group only).
    pub switchover: Option<Switchover>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/switchover", axum::routing::post(switchover))
        .route("/failover", axum::routing::post(failover))
        .route("/slots/move", axum::routing::post(move_slots))
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

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(slotgate_shared::api::ApiError { error: message.into() })).into_response()
}

/// `POST /switchover {"shard", "to"?}`: runs on the meta leader (others forward it there).
async fn switchover(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    on_leader(s, headers, body, "/switchover").await
}

/// `POST /failover {"shard"}`: forces the unplanned-failover path, on the meta leader.
async fn failover(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    on_leader(s, headers, body, "/failover").await
}

/// `POST /slots/move {"slots", "to", "force"?}`: moves slots through the cutover protocol.
async fn move_slots(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    on_leader(s, headers, body, "/slots/move").await
}

async fn on_leader(s: AdminState, headers: HeaderMap, body: axum::body::Bytes, path: &str) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return json_error(StatusCode::UNAUTHORIZED, "admin token missing or wrong; pass --token or set SLOTGATE_ADMIN_TOKEN");
    }
    let Some(sw) = &s.switchover else {
        return json_error(StatusCode::BAD_REQUEST, "this node is not part of a meta group ([meta] is not configured)");
    };
    let bad = |e: serde_json::Error| json_error(StatusCode::BAD_REQUEST, format!("bad request: {e}"));
    let work = if path == "/slots/move" {
        match serde_json::from_slice::<MoveRequest>(&body) {
            Ok(r) => Work::Move(r),
            Err(e) => return bad(e),
        }
    } else {
        match serde_json::from_slice::<SwitchoverRequest>(&body) {
            Ok(r) if path == "/failover" => Work::Failover(r),
            Ok(r) => Work::Switchover(r),
            Err(e) => return bad(e),
        }
    };
    if !sw.meta.is_leader() {
        let Some((_, addr)) = sw.meta.leader_addr() else {
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "the meta group has no leader yet; retry in a few seconds");
        };
        let mut fwd = reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .timeout(sw.meta.cutover_budget() + Duration::from_secs(30))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(a) = headers.get(header::AUTHORIZATION) {
            fwd = fwd.header(header::AUTHORIZATION, a.clone());
        }
        return match fwd.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let bytes = r.bytes().await.unwrap_or_default();
                (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot reach the meta leader at {addr}: {e}; retry")),
        };
    }
    let result = match work {
        Work::Failover(r) => sw.failover(&r.shard).await.map(|x| axum::Json(x).into_response()),
        Work::Switchover(r) => sw.run(&r).await.map(|x| axum::Json(x).into_response()),
        Work::Move(r) => sw.move_slots(&r).await.map(|x| axum::Json(x).into_response()),
    };
    result.unwrap_or_else(|e| json_error(StatusCode::CONFLICT, e))
}

/// What a leader-only endpoint asks for.
enum Work {
    Switchover(SwitchoverRequest),
    Failover(SwitchoverRequest),
    Move(MoveRequest),
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not accepting clients\n").into_response();
    }
    if s.meta.as_ref().is_some_and(|m| !m.serving()) {
        return (StatusCode::SERVICE_UNAVAILABLE, "no lease with the meta group: not routing until it is renewed\n").into_response();
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
