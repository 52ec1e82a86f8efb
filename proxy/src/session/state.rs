//! Per-connection session state: user, database, replayable SETs, user variables (as the
//! literals their values were read back as), SQL-level prepared statements, transaction
//! status, whether the session holds state only its own backend connection can carry.
//!
//! Contract: plain data with no I/O; the session applies it to backend connections through
//! [`SessionSync`]. The SET list and the variables are bounded: past the limit the session
//! pins instead.

use super::classify::Effect;
use crate::backend::SessionSync;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::StatusFlags;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// SETs kept for replay; beyond this the session keeps its connection instead.
const MAX_SETS: usize = 64;
/// User variables kept for replay; beyond this the session keeps its connection instead.
const MAX_VARS: usize = 256;
/// SQL-level prepared statements a session may hold (MariaDB's own default limit is global).
pub const MAX_SQL_PREPARED: usize = 1024;

/// A user variable's value as an SQL literal that gives it back with its type and collation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarValue {
    /// `NULL`, `42`, `1.50`, `2.5E0`, `_utf8mb4 X'..' COLLATE utf8mb4_general_ci`, ...
    pub literal: String,
    /// The bytes of a string value (for `PREPARE s FROM @var`).
    pub text: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct SessionState {
    pub user: String,
    pub db: Option<String>,
    /// This session's id for the backends' state bookkeeping (see `SessionSync::owner`).
    owner: u64,
    sets: Vec<String>,
    /// User variables by lower-cased name (MariaDB's names are case-insensitive).
    vars: BTreeMap<String, VarValue>,
    vars_gen: u64,
    /// SQL-level prepared statements (PREPARE name FROM ...): name (lower-cased) → text.
    pub sql_prepared: HashMap<String, String>,
    sync: SessionSync,
    /// The backend's status flags after the last statement that succeeded.
    pub status: StatusFlags,
    /// Why the session must keep its backend connection, if it must.
    pub sticky: Option<&'static str>,
    pub last_insert_id: u64,
    /// An explicit transaction (BEGIN / START TRANSACTION) is open.
    pub in_tx: bool,
    /// With autocommit off: a statement reached a backend since the last COMMIT/ROLLBACK, so
    /// a transaction may be open there (its connections stay with the session until it ends).
    pub implicit_tx: bool,
    /// The statement that opened it, replayed on each shard the transaction reaches.
    pub tx_begin: Option<String>,
    /// SAVEPOINTs of the open transaction, replayed on shards that join after them.
    pub savepoints: Vec<String>,
    /// The open transaction already reached more than one shard (counted once).
    pub tx_multi_shard: bool,
    /// Numbers the transactions the session opens explicitly (a connection joined the open
    /// one when it carries this number).
    pub tx_seq: u64,
    /// The session's `wait_timeout` in seconds, once a SET changed it (read back from the
    /// backend that ran the SET): the client is disconnected after that long idle.
    pub wait_timeout: Option<u64>,
    /// What the session's state trackers follow (for CLIENT_SESSION_TRACK clients).
    pub track: super::track::Tracking,
    /// The client's connection id, which `CONNECTION_ID()` answers on every backend
    /// connection the session uses (0 for none).
    connection_id: u32,
}

impl SessionState {
    /// Fresh state for a login; `owner` must be unique among the node's sessions.
    pub fn new(user: &str, collation: u16, owner: u64) -> SessionState {
        let mut s = SessionState {
            user: user.to_string(),
            db: None,
            owner,
            sets: Vec::new(),
            vars: BTreeMap::new(),
            vars_gen: 0,
            sql_prepared: HashMap::new(),
            sync: SessionSync::default(),
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            sticky: None,
            last_insert_id: 0,
            in_tx: false,
            implicit_tx: false,
            tx_begin: None,
            savepoints: Vec::new(),
            tx_multi_shard: false,
            tx_seq: 0,
            wait_timeout: None,
            track: Default::default(),
            connection_id: 0,
        };
        if let Some(set) = set_names_for(collation) {
            s.sets.push(set);
        }
        s.rebuild();
        s
    }

    fn rebuild(&mut self) {
        let sets_hash = if self.sets.is_empty() {
            0
        } else {
            let mut h = DefaultHasher::new();
            self.sets.hash(&mut h);
            h.finish().max(1)
        };
        let vars: Vec<String> = self.vars.iter().map(|(name, v)| format!("@`{}` = {}", name.replace('`', "``"), v.literal)).collect();
        let vars: Arc<str> = if vars.is_empty() { Arc::from("") } else { Arc::from(format!("SET {}", vars.join(", "))) };
        self.sync = SessionSync { db: self.db.clone(), owner: self.owner, sets: Arc::new(self.sets.clone()), sets_hash, vars, vars_gen: self.vars_gen, connection_id: self.connection_id };
    }

    /// Makes `CONNECTION_ID()` answer `id` (the handshake's) on the session's connections.
    pub fn set_connection_id(&mut self, id: u32) {
        self.connection_id = id;
        self.rebuild();
    }

    /// Records user variables' values as read back after a statement assigned them.
    /// A value without a literal cannot be replayed: the session keeps its connection.
    pub fn set_vars(&mut self, values: Vec<(String, Option<VarValue>)>) {
        let mut changed = false;
        for (name, v) in values {
            let name = name.to_lowercase();
            let Some(v) = v else {
                self.sticky = Some("a user variable whose value cannot be replayed");
                continue;
            };
            if self.vars.get(&name) == Some(&v) {
                continue;
            }
            if !self.vars.contains_key(&name) && self.vars.len() >= MAX_VARS {
                self.sticky = Some("too many user variables to replay");
                continue;
            }
            self.vars.insert(name, v);
            changed = true;
        }
        if changed {
            self.vars_gen += 1;
            self.rebuild();
        }
    }

    /// A user variable's value, if the session assigned it (`None`: it is NULL).
    pub fn var(&self, name: &str) -> Option<&VarValue> {
        self.vars.get(&name.to_lowercase())
    }

    /// What a backend connection must carry for this session.
    pub fn sync(&self) -> &SessionSync {
        &self.sync
    }

    pub fn set_db(&mut self, db: String) {
        self.db = Some(db);
        self.rebuild();
    }

    /// A transaction (explicit, or implicit with autocommit off) is open.
    pub fn in_transaction(&self) -> bool {
        self.in_tx || !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
    }

    /// Ends the explicit transaction's bookkeeping (after COMMIT or ROLLBACK).
    pub fn end_transaction(&mut self) {
        self.in_tx = false;
        self.implicit_tx = false;
        self.tx_seq += 1;
        self.tx_begin = None;
        self.savepoints.clear();
        self.tx_multi_shard = false;
        self.status -= StatusFlags::SERVER_STATUS_IN_TRANS;
    }

    /// Records the effects of statements that succeeded.
    pub fn apply(&mut self, effects: &[Effect]) {
        let mut changed = false;
        for e in effects {
            match e {
                Effect::None => {}
                Effect::Use(db) => {
                    self.db = Some(db.clone());
                    changed = true;
                }
                Effect::Set(text) => {
                    if self.sets.len() >= MAX_SETS {
                        self.sticky = Some("too many session variables to replay");
                    } else {
                        self.sets.push(text.clone());
                        changed = true;
                    }
                }
                Effect::Sticky(why) => self.sticky = Some(why),
                // Read back by the session, which calls `set_vars`.
                Effect::Vars(_) => {}
            }
        }
        if changed {
            self.rebuild();
        }
    }

    /// True while the backend connection must stay with this session: a transaction is (or
    /// may be) open on it, or it carries state that cannot be replayed. Autocommit off alone
    /// pins nothing: the session takes a connection at its first statement and gives it back
    /// when the transaction that statement opened ends.
    pub fn needs_pin(&self) -> bool {
        self.pin_reason().is_some()
    }

    /// Autocommit is off.
    pub fn autocommit_off(&self) -> bool {
        !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
    }

    /// Why the session keeps its backend connections (a label of
    /// `metrics::PIN_REASONS`), or `None` when it holds none between statements.
    pub fn pin_reason(&self) -> Option<&'static str> {
        if self.in_tx {
            return Some("transaction");
        }
        if self.implicit_tx && self.autocommit_off() {
            return Some("autocommit_off_transaction");
        }
        if self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS) {
            return Some("transaction");
        }
        self.sticky.map(|why| match why {
            "temporary table" => "temporary_table",
            "named lock" | "LOCK TABLES" | "HANDLER" => "lock",
            _ => "session_state",
        })
    }

    /// Status flags for answers: transaction and autocommit state as the backend reported.
    pub fn client_status(&self) -> StatusFlags {
        let status = if self.in_tx { self.status | StatusFlags::SERVER_STATUS_IN_TRANS } else { self.status };
        status
            & (StatusFlags::SERVER_STATUS_IN_TRANS
                | StatusFlags::SERVER_STATUS_AUTOCOMMIT
                | StatusFlags::SERVER_STATUS_IN_TRANS_READONLY
                | StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES
                | StatusFlags::SERVER_STATUS_ANSI_QUOTES)
    }
}

/// `SET NAMES` for a client's handshake collation; `None` for the pools' own utf8mb4_general_ci.
fn set_names_for(collation: u16) -> Option<String> {
    match collation {
        0 | 45 => None,
        // MySQL 8's utf8mb4_0900_ai_ci and later ids are unknown to MariaDB: keep the charset.
        255.. => Some("SET NAMES utf8mb4".to_string()),
        id => {
            let c = Collation::from(CollationId::from(id));
            let (cs, coll) = (c.charset(), c.collation());
            if cs.is_empty() || !cs.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            if coll.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !coll.is_empty() {
                Some(format!("SET NAMES {cs} COLLATE {coll}"))
            } else {
                Some(format!("SET NAMES {cs}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collation_to_set_names() {
        assert_eq!(set_names_for(45), None);
        assert_eq!(set_names_for(8).as_deref(), Some("SET NAMES latin1 COLLATE latin1_swedish_ci"));
        assert_eq!(set_names_for(255).as_deref(), Some("SET NAMES utf8mb4"));
    }

    #[test]
    fn effects_change_fingerprint_and_pinning() {
        let mut s = SessionState::new("u", 45, 1);
        assert_eq!(s.sync().sets_hash, 0);
        assert!(!s.needs_pin());
        s.apply(&[Effect::Set("SET sql_mode=''".into()), Effect::Use("db".into())]);
        assert_ne!(s.sync().sets_hash, 0);
        assert_eq!(s.sync().db.as_deref(), Some("db"));
        s.status = StatusFlags::SERVER_STATUS_IN_TRANS | StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        assert!(s.needs_pin());
        s.status = StatusFlags::empty();
        assert!(!s.needs_pin(), "autocommit off alone does not pin");
        s.implicit_tx = true;
        assert_eq!(s.pin_reason(), Some("autocommit_off_transaction"));
        s.implicit_tx = false;
        s.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        s.apply(&[Effect::Sticky("x")]);
        assert!(s.needs_pin());
    }
}
