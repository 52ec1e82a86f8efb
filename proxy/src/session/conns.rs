//! The backend connections a session holds, one per shard, and how a new one joins.
//!
//! Contract: `take` returns the session's pinned connection to a shard, or a pooled one
//! brought to the session's state (database, SETs, last insert id) that has also joined the
//! open transaction (its BEGIN and SAVEPOINTs replayed). `keep` pins; dropping returns to
//! the pool. No SQL of the client's is looked at here.
//!
//! Every connection handed out is tagged with `version`, the topology version the session
//! checked its route against (a cutover drain waits for older tags); a transaction's
//! connections keep their first tag until it ends ([`Conns::untag_idle`]). A pinned
//! connection whose work a cutover aborted is dropped and answers a retryable error.

use super::state::SessionState;
use crate::backend::error::bounded;
use crate::backend::{BackendError, Backends, PooledConn};
use crate::error::ClientError;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::time::Duration;

pub struct Conns {
    backends: Backends,
    pinned: HashMap<String, PooledConn>,
    /// The transaction (`SessionState::tx_seq`) each shard's pinned connection has joined.
    joined: HashMap<String, u64>,
    /// The last connection used outside a transaction, kept for the next statement while
    /// the client is busy and given back to the pool once it is idle (see `release_held`).
    held: Option<(String, PooledConn)>,
    pub found_rows: bool,
    /// The topology version the current statement was checked against.
    pub version: u64,
    /// The client connection id whose work these connections carry (for KILL QUERY).
    pub owner: u32,
    /// A pinned connection (holding a transaction or temporary tables) had to be dropped
    /// before a statement reached it: what it held is gone (see [`Conns::take_lost_pinned`]).
    lost_pinned: bool,
}

/// A connection handed to a statement, and whether it came fresh from the pool without any
/// statement run on it yet (only such a one may be retried after it turns out dead).
pub struct Taken {
    pub conn: PooledConn,
    pub fresh: bool,
}

impl Conns {
    pub fn new(backends: Backends) -> Conns {
        Conns { backends, pinned: HashMap::new(), joined: HashMap::new(), held: None, found_rows: false, version: 0, owner: 0, lost_pinned: false }
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn pinned_shards(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pinned.keys().cloned().collect();
        v.sort();
        v
    }

    /// A shard whose pinned connection holds an open transaction. Outside a transaction,
    /// by its last status. Inside one, with one pinned connection, by its last status or
    /// else by asking it; with several, by asking each: a last status can be missing (an
    /// error carries none, yet with autocommit off a failed INSERT has opened one; a
    /// prepare's answer is no OK packet) or stale (set by work before this transaction),
    /// and a stale flag would let a shard outside the transaction answer for the session.
    pub async fn in_transaction_shard(&mut self, session_in_tx: bool) -> Option<String> {
        let trust_flag = !session_in_tx || self.pinned.len() <= 1;
        let mut shards: Vec<(&String, &mut PooledConn)> = self.pinned.iter_mut().collect();
        shards.sort_by(|a, b| a.0.cmp(b.0));
        for (s, c) in shards {
            if c.in_transaction(trust_flag, session_in_tx).await {
                return Some(s.clone());
            }
        }
        None
    }

    pub fn any_pinned(&self) -> Option<String> {
        self.pinned.keys().next().cloned()
    }

    pub fn keep(&mut self, shard: &str, conn: PooledConn) {
        self.pinned.insert(shard.to_string(), conn);
    }

    /// Removes every pinned connection (for COMMIT/ROLLBACK over all of them).
    pub fn take_all_pinned(&mut self) -> Vec<(String, PooledConn)> {
        let mut v: Vec<(String, PooledConn)> = self.pinned.drain().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Keeps a connection that no transaction needs for the session's next statement.
    pub fn hold(&mut self, shard: &str, conn: PooledConn) {
        self.held = Some((shard.to_string(), conn));
    }

    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Gives the held connection back to the pool.
    pub fn release_held(&mut self) {
        self.held = None;
    }

    /// A connection to `shard` for the session's next statement: the pinned one, the held
    /// one or a pooled one, brought to the session's state (database, SETs, user variables)
    /// and, when a transaction is open, joined to it (its BEGIN and SAVEPOINTs sent once),
    /// whatever pinned the connection before.
    pub async fn take(&mut self, shard: &str, state: &mut SessionState, needs_last_insert_id: bool) -> Result<Taken, ClientError> {
        if state.autocommit_off() && !state.in_tx {
            // The statement about to run here opens a transaction (see `SessionState::implicit_tx`).
            state.implicit_tx = true;
        }
        let (mut c, pinned) = match self.pinned.remove(shard) {
            Some(mut conn) => {
                if conn.aborted() {
                    conn.discard();
                    return Err(BackendError::CutoverAborted { shard: shard.to_string() }.into());
                }
                conn.tag(self.version, self.owner, false);
                (conn, true)
            }
            None => {
                let held = match self.held.take() {
                    // A held connection goes to the old primary: a frozen shard waits like new work.
                    Some((s, c)) if s == shard && !self.backends.is_frozen(shard) => Some(c),
                    _ => None,
                };
                let mut c = match held {
                    Some(c) => c,
                    None => {
                        self.backends.acquire_primary(shard, self.found_rows).await?.ok_or_else(|| ClientError::no_pool(shard))?
                    }
                };
                c.tag(self.version, self.owner, true);
                (c, false)
            }
        };
        // A pinned connection holds a transaction or temporary tables: it is brought forward,
        // never reset.
        if let Err(e) = c.sync(state.sync(), !pinned).await {
            return Err(self.fail(c, pinned, e));
        }
        let mut joins: Vec<String> = Vec::new();
        if needs_last_insert_id && state.last_insert_id != 0 {
            joins.push(format!("DO LAST_INSERT_ID({})", state.last_insert_id));
        }
        let joined = pinned && self.joined.get(shard) == Some(&state.tx_seq);
        if state.in_transaction() && !joined {
            if state.in_tx {
                joins.push(state.tx_begin.clone().unwrap_or_else(|| "BEGIN".into()));
            }
            // With autocommit off the connection's own first statement opens the transaction.
            joins.extend(state.savepoints.iter().cloned());
        }
        let fresh = !pinned && joins.is_empty();
        for sql in joins {
            let (s, a) = (c.shard().to_string(), c.addr().to_string());
            let limit = c.query_timeout();
            if let Err((e, _)) = bounded(limit, (&s, &a), c.conn().query_drop(sql)).await {
                return Err(self.fail(c, pinned, e));
            }
        }
        if state.in_transaction() {
            self.joined.insert(shard.to_string(), state.tx_seq);
        }
        Ok(Taken { conn: c, fresh })
    }

    /// A shard whose pinned connection's work a cutover aborted.
    pub fn aborted_shard(&self) -> Option<String> {
        self.pinned.iter().find(|(_, c)| c.aborted()).map(|(s, _)| s.clone())
    }

    /// After a statement outside a transaction: the connections kept carry no work now.
    pub fn untag_idle(&mut self) {
        for c in self.pinned.values_mut() {
            c.untag();
        }
        if let Some((_, c)) = self.held.as_mut() {
            c.untag();
        }
    }

    /// Resets and returns every pinned connection (ends open transactions on them).
    pub async fn release_all(&mut self) {
        self.held = None;
        for (_, mut c) in self.take_all_pinned() {
            let ok = matches!(tokio::time::timeout(Duration::from_secs(5), c.conn().reset()).await, Ok(Ok(true)));
            if ok {
                c.note_state(&Default::default());
            } else {
                c.discard();
            }
        }
    }

    /// Whether a pinned connection was dropped since the last call: its transaction or
    /// temporary tables are gone, so the client must be disconnected as after a lost
    /// server connection (never continue a transaction that silently lost a shard's part).
    pub fn take_lost_pinned(&mut self) -> bool {
        std::mem::take(&mut self.lost_pinned)
    }

    /// A connection could not be readied for a statement. A pinned one is dropped (its
    /// state is unknown and resetting it would lose what it holds) and noted as lost; a
    /// fresh one goes back to the pool marked for a reset.
    fn fail(&mut self, mut c: PooledConn, pinned: bool, e: BackendError) -> ClientError {
        if pinned {
            c.discard();
            self.lost_pinned = true;
        } else if e.is_fatal() {
            c.discard();
        } else {
            c.note_unknown_state();
        }
        e.into()
    }
}
