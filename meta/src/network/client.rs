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
use crate::options::PeerTls;
use crate::typ::{Node, NodeId, TypeConfig};

/// An HTTP client for member-to-member calls: with `tls`, only certificates signed by its CA
/// are trusted (no system roots) and its identity is shown to members that ask for one.
pub fn peer_client(tls: Option<&PeerTls>, connect_timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder().connect_timeout(connect_timeout).pool_idle_timeout(std::time::Duration::from_secs(60)).tcp_nodelay(true);
    if let Some(t) = tls {
        b = b.use_rustls_tls().tls_built_in_root_certs(false).add_root_certificate(reqwest::Certificate::from_pem(&t.ca_pem)?);
        if let Some(id) = &t.identity_pem {
            b = b.identity(reqwest::Identity::from_pem(id)?);
        }
    }
    b.build()
}

/// Openraft's network factory for the meta group.
#[derive(Clone)]
pub struct HttpNetwork {
    pub(crate) client: reqwest::Client,
    pub(crate) secret: std::sync::Arc<str>,
    pub(crate) faults: Faults,
    pub(crate) me: NodeId,
    /// `http` or `https` (with [`PeerTls`]).
    scheme: &'static str,
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
    pub fn new(me: NodeId, secret: &str, faults: Faults, tls: Option<&PeerTls>) -> Result<HttpNetwork, reqwest::Error> {
        let client = peer_client(tls, std::time::Duration::from_secs(1))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(HttpNetwork { client, secret: secret.into(), faults, me, scheme })
    }

    /// The URL of `path` on member `addr`.
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }

    /// The HTTP client that reaches the other members (with the CA and identity of [`PeerTls`]).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
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
        let url = self.url(addr, path);
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
