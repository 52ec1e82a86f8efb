//! `POST /debug/faults {"block": [node ids]}`: fault injection for test clusters.
//!
//! Contract: served only when `node.fault_injection = true` (otherwise the route does not
//! exist) and only with the admin token when one is set. The body replaces the set of peers
//! this node cuts itself off from: its Raft RPCs and forwarded requests to them fail as
//! unreachable and their Raft RPCs to it are refused, as a network partition would do; an
//! empty list heals. Client traffic and the shards are not affected.

use super::{authorized, json_error, unauthorized, AdminState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsRequest {
    block: Vec<u64>,
}

pub(super) async fn set_faults(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return unauthorized();
    }
    let Some(faults) = s.faults.as_ref() else {
        return json_error(StatusCode::NOT_FOUND, "fault injection is off on this node (node.fault_injection)");
    };
    let req: FaultsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad request: {e}; expected {{\"block\": [node ids]}}")),
    };
    faults.unblock_all();
    for id in &req.block {
        faults.block(*id);
    }
    tracing::warn!(blocked = ?req.block, "fault injection: links to these peers are cut");
    axum::Json(serde_json::json!({ "blocked": req.block })).into_response()
}
