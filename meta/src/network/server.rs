//! Incoming side of the transport: the member-to-member endpoints.
//!
//! Contract: every request must carry the cluster secret (else 401, and nothing reaches Raft);
//! a request from a member this node blocks (fault injection) is answered 503. Raft RPCs are
//! handed to openraft and answered with its JSON `Result`; forwarded writes, reads and
//! membership changes run on this node only (it must be the leader) and answer a
//! `Result<_, WireError>`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::{paths, same_secret, FROM_HEADER, SECRET_HEADER};
use crate::node::{MembershipChange, MetaNode};
use crate::state::MetaRequest;
use crate::typ::{NodeId, TypeConfig};

/// The member-to-member routes, guarded by the cluster secret.
pub fn raft_routes(node: MetaNode) -> Router {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::WRITE, post(write))
        .route(paths::READ, post(read))
        .route(paths::MEMBERSHIP, post(membership))
        .route(paths::LEASE, post(lease))
        .route(paths::ACK, post(ack))
        .route(paths::TRANSACTIONS, post(transactions))
        .route(paths::SLOT_LOAD, post(slot_load))
        .layer(middleware::from_fn_with_state(node.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(node)
}

async fn guard(State(node): State<MetaNode>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(SECRET_HEADER)
        .is_some_and(|v| same_secret(v.as_bytes(), node.secret().as_bytes()));
    if !ok {
        tracing::warn!(path = %req.uri().path(), "meta RPC without the cluster secret refused");
        return (StatusCode::UNAUTHORIZED, "cluster secret missing or wrong").into_response();
    }
    let from = req.headers().get(FROM_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<NodeId>().ok());
    if from.is_some_and(|f| node.network().faults.is_blocked(f)) {
        return (StatusCode::SERVICE_UNAVAILABLE, "link cut by fault injection").into_response();
    }
    next.run(req).await
}

async fn append(State(node): State<MetaNode>, Json(rpc): Json<AppendEntriesRequest<TypeConfig>>) -> Response {
    node.touch_contact();
    Json(node.raft().append_entries(rpc).await).into_response()
}

async fn vote(State(node): State<MetaNode>, Json(rpc): Json<VoteRequest<NodeId>>) -> Response {
    Json(node.raft().vote(rpc).await).into_response()
}

async fn snapshot(State(node): State<MetaNode>, Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>) -> Response {
    node.touch_contact();
    Json(node.raft().install_snapshot(rpc).await).into_response()
}

async fn write(State(node): State<MetaNode>, Json(req): Json<MetaRequest>) -> Response {
    Json(node.write_local(req).await).into_response()
}

async fn read(State(node): State<MetaNode>) -> Response {
    Json(node.read_local().await).into_response()
}

async fn lease(State(node): State<MetaNode>, Json(from): Json<NodeId>) -> Response {
    Json(node.grant_lease(from).await).into_response()
}

async fn ack(State(node): State<MetaNode>, Json((from, version)): Json<(NodeId, u64)>) -> Response {
    Json(node.take_ack(from, version)).into_response()
}

async fn membership(State(node): State<MetaNode>, Json(change): Json<MembershipChange>) -> Response {
    Json(node.change_local(change).await).into_response()
}

async fn transactions(State(node): State<MetaNode>) -> Response {
    Json(node.hooks().transactions()).into_response()
}

async fn slot_load(State(node): State<MetaNode>) -> Response {
    Json(node.hooks().slot_load()).into_response()
}
