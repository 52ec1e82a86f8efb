//! Outgoing side of the transport: openraft's `RaftNetworkFactory` over a shared HTTP client.
//!
//! Contract: one `reqwest::Client` (connection pool) for the whole node; each RPC is a POST of
//! the request as JSON to the target's admin address, answered with a JSON
//! `Result<response, RaftError>`. Transport failures map to `Unreachable` (connection refused,
//! blocked by [`Faults`]) or `NetworkError` (anything else); timeouts come from openraft's
//! `RPCOption`.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{paths, Faults, FROM_HEADER, SECRET_HEADER};
use crate::typ::{Node, NodeId, TypeConfig};

/// Openraft's network factory for the meta group.
#[derive(Clone)]
pub struct HttpNetwork {
    pub(crate) client: reqwest::Client,
    pub(crate) secret: std::sync::Arc<str>,
    pub(crate) faults: Faults,
    pub(crate) me: NodeId,
}

/// Why a call to another member failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("node {0} is unreachable: {1}")]
    Unreachable(NodeId, String),
    #[error("node {0}: {1}")]
    Network(NodeId, String),
}

impl HttpNetwork {
    pub fn new(me: NodeId, secret: &str, faults: Faults) -> Result<HttpNetwork, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(HttpNetwork { client, secret: secret.into(), faults, me })
    }

    /// POSTs `body` to `path` on `addr` and decodes the JSON answer.
    pub(crate) async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        target: NodeId,
        addr: &str,
        path: &str,
        body: &B,
        timeout: std::time::Duration,
    ) -> Result<R, CallError> {
        if self.faults.is_blocked(target) {
            return Err(CallError::Unreachable(target, "link cut by fault injection".into()));
        }
        let url = format!("http://{addr}{path}");
        let resp = self
            .client
            .post(url)
            .header(SECRET_HEADER, &*self.secret)
            .header(FROM_HEADER, self.me.to_string())
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable(target, e.to_string())
                } else {
                    CallError::Network(target, e.to_string())
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(CallError::Network(target, format!("HTTP {status}: {}", text.trim())));
        }
        resp.json::<R>().await.map_err(|e| CallError::Network(target, format!("bad answer: {e}")))
    }

    async fn rpc<B: Serialize, R: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        target: NodeId,
        node: &Node,
        path: &str,
        body: &B,
        option: &RPCOption,
    ) -> Result<R, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        let answer: Result<R, RaftError<NodeId, E>> =
            self.call(target, &node.addr, path, body, option.hard_ttl()).await.map_err(|e| match e {
                CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Network(..) => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(target, node.clone(), e)))
    }
}

/// A connection to one member.
pub struct Connection {
    network: HttpNetwork,
    target: NodeId,
    node: Node,
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Connection {
        Connection { network: self.clone(), target, node: node.clone() }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.network.rpc(self.target, &self.node, paths::APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        self.network.rpc(self.target, &self.node, paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.network.rpc(self.target, &self.node, paths::VOTE, &rpc, &option).await
    }
}
