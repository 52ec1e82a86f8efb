//! The admin API of the meta group (HTTP+JSON on the admin port), used by `slotctl`.
//!
//! Contract: every route needs `Authorization: Bearer <token>` when a token is configured
//! (else 401); answers are the typed bodies of `slotgate_shared::api` or an `ApiError` with the
//! status of [`MetaError::status`]. Any node answers: writes and membership changes are
//! forwarded to the leader; `GET /topology` is served from the local applied state unless
//! `?linearizable=true` asks for a read-index read through the leader.
//!
//! `GET /topology/watch?from=V` streams JSON lines (`application/x-ndjson`) for downstream
//! systems: for every version after `V` that this node applied, a line `{"version", "change"}`
//! with the history entry (while the history keeps it), then after each batch one line
//! `{"version", "topology"}` with the current topology; it starts with the versions after `V`
//! already applied (so a consumer resumes from the last version it saw) and runs until the
//! client goes or the node stops.
//!
//! Routes: `GET /topology`, `GET /topology/history?limit=N`, `GET /topology/watch?from=V`,
//! `POST /commands`, `GET /cluster`,
//! `POST /cluster/members`, `POST /cluster/members/{id}/promote`, `DELETE /cluster/members/{id}`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use slotgate_shared::api::{AddMember, ApiError, CommandRequest};
use slotgate_shared::TopologyCommand;

use crate::error::MetaError;
use crate::network::same_secret;
use crate::node::{MembershipChange, MetaNode};

#[derive(Clone)]
struct ApiState {
    node: MetaNode,
    token: Option<Arc<str>>,
}

/// The admin API routes; `token` is the admin bearer token, if configured.
pub fn admin_routes(node: MetaNode, token: Option<Arc<str>>) -> Router {
    let state = ApiState { node, token };
    Router::new()
        .route("/topology", get(topology))
        .route("/topology/history", get(history))
        .route("/topology/watch", get(watch))
        .route("/commands", post(command))
        .route("/cluster", get(cluster))
        .route("/cluster/members", post(add_member))
        .route("/cluster/members/{id}/promote", post(promote))
        .route("/cluster/members/{id}", delete(remove))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

fn error(e: MetaError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ApiError { error: e.to_string() })).into_response()
}

async fn auth(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            let body = ApiError { error: "admin token missing or wrong; pass --token or set SLOTGATE_ADMIN_TOKEN".into() };
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct TopologyQuery {
    #[serde(default)]
    linearizable: bool,
}

async fn topology(State(s): State<ApiState>, Query(q): Query<TopologyQuery>) -> Response {
    let t = if q.linearizable {
        s.node.linearizable_topology().await
    } else {
        s.node.current().topology.clone().ok_or(MetaError::NoTopology)
    };
    match t {
        Ok(t) => Json(t).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(default)]
    from: u64,
}

async fn watch(State(s): State<ApiState>, Query(q): Query<WatchQuery>) -> Response {
    let stream = futures_util::stream::unfold((s.node.state(), q.from, true), |(mut rx, last, first)| async move {
        let mut wait = !first;
        loop {
            if wait && rx.changed().await.is_err() {
                return None;
            }
            wait = true;
            let state = rx.borrow_and_update().clone();
            let Some(t) = state.topology.as_ref() else { continue };
            if t.version <= last {
                continue;
            }
            let mut out = String::new();
            for e in state.history.iter().filter(|e| e.version > last && e.version <= t.version) {
                out += &serde_json::json!({ "version": e.version, "change": e }).to_string();
                out.push('\n');
            }
            out += &serde_json::json!({ "version": t.version, "topology": t }).to_string();
            out.push('\n');
            return Some((Ok::<_, std::convert::Infallible>(out), (rx, t.version, false)));
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(stream)).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(State(s): State<ApiState>, Query(q): Query<HistoryQuery>) -> Response {
    let state = s.node.current();
    let n = q.limit.unwrap_or(usize::MAX).min(state.history.len());
    let entries: Vec<_> = state.history.iter().skip(state.history.len() - n).cloned().collect();
    Json(entries).into_response()
}

async fn command(State(s): State<ApiState>, body: Result<Json<CommandRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(MetaError::BadRequest(format!("bad command: {}", e.body_text()))),
    };
    if let Some(use_instead) = protocol_step(&req.command) {
        return error(MetaError::Refused(format!(
            "{} is a step of the cutover protocol (prepare, drain, acknowledge, commit) and cannot be sent on its own: use {use_instead}",
            req.command.kind()
        )));
    }
    match s.node.submit(req).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => error(e),
    }
}

/// Commands that only the cutover protocol may propose (a rollback stays open to operators).
fn protocol_step(command: &TopologyCommand) -> Option<&'static str> {
    match command {
        TopologyCommand::FreezeSlots { .. } | TopologyCommand::AssignSlots { .. } => Some("`slotctl slots assign` (POST /slots/move)"),
        TopologyCommand::Freeze { .. } | TopologyCommand::Cutover { .. } => Some("`slotctl switchover` or `slotctl failover`"),
        // Steps of an online migration's leader-run job (proxy/src/jobs/migration).
        TopologyCommand::MigrationBegin { .. } => Some("`slotctl slots migrate` (POST /migrations), which checks the shards first"),
        TopologyCommand::MigrationPhase { .. } => Some("the migration's leader-run job"),
        _ => None,
    }
}

async fn cluster(State(s): State<ApiState>) -> Response {
    Json(s.node.cluster_status().await).into_response()
}

async fn membership(s: &ApiState, change: MembershipChange) -> Response {
    match s.node.change_membership(change).await {
        Ok(()) => Json(s.node.cluster_status().await).into_response(),
        Err(e) => error(e),
    }
}

async fn add_member(State(s): State<ApiState>, body: Result<Json<AddMember>, axum::extract::rejection::JsonRejection>) -> Response {
    match body {
        Ok(Json(m)) => membership(&s, MembershipChange::AddLearner { id: m.id, addr: m.addr }).await,
        Err(e) => error(MetaError::BadRequest(format!("bad member: {}", e.body_text()))),
    }
}

async fn promote(State(s): State<ApiState>, Path(id): Path<u64>) -> Response {
    membership(&s, MembershipChange::Promote { id }).await
}

async fn remove(State(s): State<ApiState>, Path(id): Path<u64>) -> Response {
    membership(&s, MembershipChange::Remove { id }).await
}
