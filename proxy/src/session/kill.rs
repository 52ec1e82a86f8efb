//! `KILL [CONNECTION | QUERY] <id>` with slotgate's connection ids (those of the handshake and
//! of `CONNECTION_ID()`), never a backend's thread id.
//!
//! Contract: an id of another connection of this node, of the same user, is served as
//! MariaDB does: `KILL QUERY` kills the backend statements carrying that connection's work
//! now (`KILL QUERY <thread>` on each node, so its client gets the backend's 1317);
//! `KILL [CONNECTION]` does that and ends the connection. Killing one's own connection answers
//! 1927 and closes it; one's own query, OK. Another user's connection: 1095 (unless the
//! account is a `connection_admin`); an id this node
//! does not serve: 1094 (naming the node when the id is another node's); `KILL USER`,
//! `KILL QUERY ID` and expressions: 1235.

use super::classify::{Kill, KillTarget};
use super::Session;
use crate::error::ClientError;
use crate::frontend::{OkInfo, Reply, StreamError};

impl Session {
    pub(super) async fn kill(&mut self, kill: &Kill, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let id = match kill.target {
            KillTarget::Id(id) => id,
            KillTarget::Own => u64::from(self.connection_id),
            KillTarget::Unsupported => {
                return reply.error(&ClientError::not_supported("KILL USER, KILL QUERY ID and KILL of an expression; use KILL [QUERY] <connection id>")).await;
            }
        };
        if id == u64::from(self.connection_id) {
            if kill.query_only {
                // Nothing of this session runs but the KILL itself.
                return reply.ok(&OkInfo::default(), self.state.client_status()).await;
            }
            reply.close_after();
            return reply.error(&ClientError::connection_killed()).await;
        }
        let node = id >> 24;
        let Some((user, cancel)) = u32::try_from(id).ok().and_then(|i| self.shared.sessions.get(i)) else {
            let elsewhere = (id <= u64::from(u32::MAX) && node != self.shared.node_id & 0xFF).then_some(node);
            return reply.error(&ClientError::no_such_thread(id, elsewhere)).await;
        };
        if user != self.state.user && !self.connection_admin {
            return reply.error(&ClientError::kill_denied(id)).await;
        }
        let killed = self.shared.backends.kill_queries_of(id as u32).await;
        if !kill.query_only {
            cancel.cancel();
        }
        tracing::info!(target_connection = id, query_only = kill.query_only, backend_threads = killed, "KILL");
        reply.ok(&OkInfo::default(), self.state.client_status()).await
    }
}
