//! Where a routed statement meets a cutover: held while the slots it touches are frozen for a
//! move, re-routed once the move commits or rolls back, refused when its transaction's
//! snapshot no longer says where its rows are.
//!
//! Contract: pure decisions on routes and snapshots plus the wait; nothing here reads the SQL
//! text (statements are re-routed from their parsed form). A statement is held when routing it
//! with the topology as it will be after the pending moves places it differently (its keys
//! hash to a moving slot), or when it writes to every shard while one of them is a move's
//! source. A transaction keeps its snapshot only while the current topology places its
//! statement the same way; otherwise it is rolled back with a retryable error (1213).

use super::Session;
use crate::backend::BackendError;
use crate::error::ClientError;
use crate::router::{Parsed, Route, StatementKind, Target};
use mysql_common::value::Value;
use slotgate_shared::Topology;
use std::sync::Arc;

/// A statement as the router takes it.
#[derive(Clone, Copy)]
pub(super) struct Stmt<'a> {
    pub text: &'a str,
    pub parsed: &'a Result<Arc<Parsed>, String>,
    pub params: &'a [Value],
}

/// What to do with a routed statement.
pub(super) enum Settled {
    /// Run it now, checked against the current version.
    Go,
    /// Route it again from the start (the topology changed while it waited).
    Again,
    Fail(ClientError),
}

/// Where a route sends a statement, by shard id (comparable across versions).
fn placement(route: &Route, topo: &Topology) -> Vec<String> {
    let id = |i: usize| topo.shards.get(i).map(|s| s.id.clone()).unwrap_or_default();
    match &route.target {
        Target::Single { shard } => vec![id(*shard)],
        Target::Home => vec![id(topo.home_index())],
        Target::Multi { shards, .. } | Target::Scatter { shards, .. } | Target::ScatterWrite { shards } | Target::Broadcast { shards } => shards.iter().map(|s| id(*s)).collect(),
        Target::Split { parts } => parts.iter().map(|(s, sql)| format!("{}\u{0}{sql}", id(*s))).collect(),
    }
}

/// A write that reaches every shard touches the moving slots of any shard it reaches.
fn writes_everywhere(route: &Route) -> bool {
    matches!(route.kind, StatementKind::Write | StatementKind::Ddl) && matches!(route.target, Target::Scatter { .. } | Target::ScatterWrite { .. } | Target::Broadcast { .. })
}

impl Session {
    /// Decides whether `route` (made with `topo`, the transaction's snapshot or the current
    /// one) may run now; `stmt` is the statement, to route it with other topologies.
    pub(super) async fn settle(&mut self, route: &Route, topo: &Topology, stmt: Stmt<'_>) -> Settled {
        let now = self.shared.topology.load();
        self.conns.version = now.version;
        let stale_tx = now.version != topo.version;
        if stale_tx && self.tx_topology.is_none() {
            // Not a transaction's snapshot: a version was published since it was loaded.
            return Settled::Again;
        }
        if stale_tx {
            // A transaction's snapshot is older than the current version.
            let here = match self.route(stmt.text, stmt.parsed, &now, stmt.params) {
                Ok(r) => r,
                Err(e) => return Settled::Fail(e),
            };
            if placement(&here, &now) != placement(route, topo) {
                return Settled::Fail(self.aborted_by_cutover(&placement(route, topo)));
            }
        }
        if now.moving.is_empty() {
            return Settled::Go;
        }
        let after = now.after_moves();
        let changes = match self.route(stmt.text, stmt.parsed, &after, stmt.params) {
            Ok(r) => placement(&r, &after) != placement(route, &now),
            Err(e) => return Settled::Fail(e),
        };
        let sources: Vec<String> = now.moving_sources().into_iter().filter_map(|i| now.shards.get(i).map(|s| s.id.clone())).collect();
        let everywhere = writes_everywhere(route) && placement(route, &now).iter().any(|s| sources.contains(s));
        if !changes && !everywhere {
            return Settled::Go;
        }
        if stale_tx && self.state.in_transaction() {
            // Its earlier work may hold the source shard's drain: it cannot wait for the move.
            return Settled::Fail(self.aborted_by_cutover(&sources));
        }
        let what = format!("slots moving off shard {}", sources.join(", "));
        let buffer = self.shared.backends.buffer();
        let held = match buffer.enter(&what) {
            Ok(h) => h,
            Err(e) => return Settled::Fail(e.into()),
        };
        let waited = tokio::time::timeout(buffer.window(), self.shared.topology.newer(now.version)).await;
        drop(held);
        match waited {
            Ok(()) => Settled::Again,
            Err(_) => Settled::Fail(buffer.expired(&what).into()),
        }
    }

    fn aborted_by_cutover(&self, shards: &[String]) -> ClientError {
        let shard = shards.first().cloned().unwrap_or_default();
        BackendError::CutoverAborted { shard }.into()
    }

    /// After connections were taken (and tagged with the checked version): whether a newer
    /// version was published meanwhile, so that the statement must be routed again before
    /// anything is sent. Pairs with the drain, which publishes first and reads tags after.
    pub(super) fn version_moved(&self) -> bool {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.shared.topology.version() != self.conns.version
    }
}
