//! The admin HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`; the meta
//! group's API (`slotgate_meta::api`) is merged in by the server when `[meta]` is configured.
//!
//! Contract: `/healthz` answers while the process runs; `/readyz` only while the node accepts
//! clients, has a topology and its home shard answers; `/metrics` needs the bearer token when
//! `node.admin_token` is set. No handler reveals secrets. Leader-only endpoints (switchover,
//! failover, slot moves, migrations) run on the meta leader; other nodes forward them there.
//! `/slots/top` sums the per-slot load of the members that answer (`slot_load`);
//! `/debug/faults` exists only with `node.fault_injection` (`faults`).

mod failover;
mod faults;
mod gtid;
pub mod idempotent;
pub mod tls;
pub(crate) mod migrations;
mod rule_check;
mod slot_check;
mod slot_load;
mod slot_move;
mod switchover;

pub use failover::health_loop;
pub use slot_check::NodeHooks;
pub use slot_move::{MoveReply, MoveRequest};
pub use switchover::{Switchover, SwitchoverReply, SwitchoverRequest};

use crate::backend::Backends;
use crate::jobs::Jobs;
use slotgate_shared::api::{MergeRequest, MigrateRequest, SplitRequest};
use axum::extract::Path;
use axum::http::Method;
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
    /// `node.metrics_open`: `/metrics` answers without the admin token.
    pub metrics_open: bool,
    /// `node.fault_injection`: the faults `POST /debug/faults` sets (test clusters only).
    pub faults: Option<slotgate_meta::Faults>,
    /// Planned switchovers (nodes of a meta group only).
    pub switchover: Option<Switchover>,
    /// Leader-run jobs (nodes of a meta group only).
    pub jobs: Option<Jobs>,
}

pub fn router(state: AdminState) -> Router {
    let debug = state.faults.is_some();
    let r = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/switchover", axum::routing::post(switchover))
        .route("/failover", axum::routing::post(failover))
        .route("/slots/move", axum::routing::post(move_slots))
        .route("/migrations", axum::routing::post(migrate).get(migration_list))
        .route("/migrations/{id}", get(migration_show))
        .route("/migrations/{id}/cancel", axum::routing::post(migration_cancel))
        .route("/shards/split", axum::routing::post(split))
        .route("/shards/merge", axum::routing::post(merge))
        .route("/slots/top", get(slot_load::slots_top));
    let r = if debug { r.route("/debug/faults", axum::routing::post(faults::set_faults)) } else { r };
    r.with_state(state)
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
    if !s.metrics_open && !authorized(&headers, s.token.as_deref()) {
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
    let work = parse(&body).map(Work::Switchover);
    on_leader(s, headers, Method::POST, "/switchover".into(), body, work).await
}

/// `POST /failover {"shard"}`: forces the unplanned-failover path, on the meta leader.
async fn failover(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let work = parse(&body).map(Work::Failover);
    on_leader(s, headers, Method::POST, "/failover".into(), body, work).await
}

/// `POST /slots/move {"slots", "to", "force"?}`: moves slots through the cutover protocol.
async fn move_slots(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let work = parse(&body).map(Work::Move);
    on_leader(s, headers, Method::POST, "/slots/move".into(), body, work).await
}

/// `POST /migrations {"slots", "to"}` starts an online migration; `GET /migrations` lists them.
async fn migrate(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let work = parse(&body).map(Work::Migrate);
    on_leader(s, headers, Method::POST, "/migrations".into(), body, work).await
}

async fn migration_list(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    on_leader(s, headers, Method::GET, "/migrations".into(), Default::default(), Ok(Work::Migrations)).await
}

/// `GET /migrations/{id}`.
async fn migration_show(State(s): State<AdminState>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    on_leader(s, headers, Method::GET, format!("/migrations/{id}"), Default::default(), Ok(Work::Migration(id))).await
}

/// `POST /migrations/{id}/cancel {"actor"?}`.
async fn migration_cancel(State(s): State<AdminState>, headers: HeaderMap, Path(id): Path<u64>, body: axum::body::Bytes) -> Response {
    let actor = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["actor"].as_str().map(String::from));
    on_leader(s, headers, Method::POST, format!("/migrations/{id}/cancel"), body, Ok(Work::Cancel(id, actor))).await
}

/// `POST /shards/split {"shard", "into", "primary"?, "replicas"?}`.
async fn split(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let work = parse(&body).map(Work::Split);
    on_leader(s, headers, Method::POST, "/shards/split".into(), body, work).await
}

/// `POST /shards/merge {"from", "into"}`.
async fn merge(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let work = parse(&body).map(Work::Merge);
    on_leader(s, headers, Method::POST, "/shards/merge".into(), body, work).await
}

/// A request body as `T`, or the sentence a 400 answers with.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad request: {e}"))
}

/// Runs a leader-only request here when this node leads, else forwards it to the leader.
/// `work` is what the request asks for (or why its body is bad); `method`, `path` and `body`
/// are what is forwarded.
async fn on_leader(s: AdminState, headers: HeaderMap, method: Method, path: String, body: axum::body::Bytes, work: Result<Work, String>) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return json_error(StatusCode::UNAUTHORIZED, "admin token missing or wrong; pass --token or set SLOTGATE_ADMIN_TOKEN");
    }
    let (Some(sw), Some(jobs)) = (&s.switchover, &s.jobs) else {
        return json_error(StatusCode::BAD_REQUEST, "this node is not part of a meta group ([meta] is not configured)");
    };
    let work = match work {
        Ok(w) => w,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    if !sw.meta.is_leader() {
        let Some((_, addr)) = sw.meta.leader_addr() else {
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "the meta group has no leader yet; retry in a few seconds");
        };
        let net = sw.meta.network();
        let mut fwd = net
            .client()
            .request(method, net.url(&addr, &path))
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
    match work {
        Work::Failover(r) => answer(sw.ops.once(r.request_id.as_deref(), &sw.meta.current(), || json(sw.failover(&r.shard, r.request_id.as_deref()))).await),
        Work::Switchover(r) => answer(sw.ops.once(r.request_id.as_deref(), &sw.meta.current(), || json(sw.run(&r))).await),
        Work::Move(r) => answer(sw.ops.once(r.request_id.as_deref(), &sw.meta.current(), || json(sw.move_slots(&r))).await),
        Work::Migrate(r) => answer(migrations::begin(jobs, &r).await),
        Work::Migrations => answer(Ok(migrations::list(jobs).await)),
        Work::Migration(id) => match migrations::list(jobs).await.into_iter().find(|m| m.migration.id == id) {
            Some(m) => answer(Ok(m)),
            None => json_error(StatusCode::NOT_FOUND, format!("no migration {id} (the topology keeps the last {} finished ones)", slotgate_shared::KEEP_FINISHED)),
        },
        Work::Cancel(id, actor) => answer(migrations::cancel(jobs, id, actor).await),
        Work::Split(r) => {
            let load = if r.by_load { Some(slot_load::load_by_slot(&s).await.1) } else { None };
            answer(migrations::split(jobs, &r, load.as_ref()).await)
        }
        Work::Merge(r) => answer(migrations::merge(jobs, &r).await),
    }
}

/// An operation's reply as a JSON value (what idempotency keys remember).
async fn json<T: serde::Serialize>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<serde_json::Value, String> {
    work.await.and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

/// A job's answer as JSON, or its refusal as 409 with the sentence saying why.
fn answer<T: serde::Serialize>(r: Result<T, String>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => json_error(StatusCode::CONFLICT, e),
    }
}

/// What a leader-only endpoint asks for.
enum Work {
    Switchover(SwitchoverRequest),
    Failover(SwitchoverRequest),
    Move(MoveRequest),
    Migrate(MigrateRequest),
    Migrations,
    Migration(u64),
    Cancel(u64, Option<String>),
    Split(SplitRequest),
    Merge(MergeRequest),
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
