//! The session state a backend connection carries, and what to send to bring a connection
//! from the state it has to the state a client session wants.
//!
//! Contract: pure (no I/O). A session's state only grows while the session lives (SETs are
//! appended, user variables assigned), so a connection that last carried an earlier state of
//! the *same* session (same `owner`) is brought forward without a reset: the SETs it lacks
//! and, if they changed, the user variables. A connection of another session is reset first
//! unless it carries exactly the wanted SETs and no user variables. A connection that must not
//! be reset (it holds an open transaction or temporary tables) and would need a reset is
//! reported, never silently reset.

use std::sync::Arc;

/// The session state a backend connection must carry for a client session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSync {
    pub db: Option<String>,
    /// The session (one login or reset of it) this state belongs to; 0 for none.
    pub owner: u64,
    /// SET statements to replay, in order, on a connection fresh from COM_RESET_CONNECTION.
    pub sets: Arc<Vec<String>>,
    /// Fingerprint of `sets` (0 when empty).
    pub sets_hash: u64,
    /// One statement assigning every user variable of the session (empty when none).
    pub vars: Arc<str>,
    /// Changes whenever `vars` does (0 when there are none).
    pub vars_gen: u64,
    /// The client's connection id (slotgate's, from the handshake): what `CONNECTION_ID()`
    /// answers on the connection, through `pseudo_thread_id` (0: left as it is).
    pub connection_id: u32,
}

/// What a connection carries now (remembered by its pool).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Applied {
    pub db: Option<String>,
    pub owner: u64,
    pub sets_len: usize,
    pub sets_hash: u64,
    pub vars_gen: u64,
}

impl Applied {
    /// A connection whose state nobody knows: the next user resets it.
    pub fn unknown() -> Applied {
        Applied { db: None, owner: 0, sets_len: 0, sets_hash: u64::MAX, vars_gen: 0 }
    }

    /// What a connection carries once `want` was applied to it.
    pub fn of(want: &SessionSync) -> Applied {
        Applied { db: want.db.clone(), owner: want.owner, sets_len: want.sets.len(), sets_hash: want.sets_hash, vars_gen: want.vars_gen }
    }
}

/// The statements that bring a connection to the wanted state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// COM_RESET_CONNECTION first.
    pub reset: bool,
    /// SETs to replay: `want.sets[from..]`.
    pub sets_from: usize,
    /// Assign the user variables.
    pub vars: bool,
    /// `USE` the wanted database.
    pub use_db: bool,
    /// Set `pseudo_thread_id` to the client's connection id (the connection changes hands).
    pub pseudo_id: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.reset && !self.vars && !self.use_db && !self.pseudo_id && self.sets_from == usize::MAX
    }
}

/// What to send to a connection carrying `have` so that it carries `want`.
pub(crate) fn plan(have: &Applied, want: &SessionSync) -> Plan {
    let nothing = usize::MAX;
    let mut p = if have.owner != 0 && have.owner == want.owner && have.sets_len <= want.sets.len() {
        Plan {
            reset: false,
            sets_from: if have.sets_len < want.sets.len() { have.sets_len } else { nothing },
            vars: have.vars_gen != want.vars_gen,
            use_db: false,
            pseudo_id: false,
        }
    } else if have.sets_hash == want.sets_hash && have.vars_gen == 0 && want.vars_gen == 0 {
        Plan { reset: false, sets_from: nothing, vars: false, use_db: false, pseudo_id: false }
    } else {
        Plan {
            reset: have.sets_hash != 0 || have.vars_gen != 0,
            sets_from: if want.sets.is_empty() { nothing } else { 0 },
            vars: want.vars_gen != 0,
            use_db: false,
            pseudo_id: false,
        }
    };
    p.pseudo_id = want.connection_id != 0 && (p.reset || have.owner != want.owner);
    let db_after_reset = if p.reset { None } else { have.db.as_ref() };
    p.use_db = want.db.is_some() && db_after_reset != want.db.as_ref();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(owner: u64, sets: &[&str], vars_gen: u64) -> SessionSync {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let sets_hash = if sets.is_empty() { 0 } else { sets.len() as u64 * 7919 };
        SessionSync { db: Some("d".into()), owner, sets: Arc::new(sets), sets_hash, vars: Arc::from(""), vars_gen, connection_id: 0 }
    }

    #[test]
    fn same_session_is_brought_forward_without_reset() {
        let old = want(5, &["SET a=1"], 0);
        let new = want(5, &["SET a=1", "SET b=2"], 3);
        let p = plan(&Applied::of(&old), &new);
        assert_eq!(p, Plan { reset: false, sets_from: 1, vars: true, use_db: false, pseudo_id: false });
        assert!(plan(&Applied::of(&new), &new).is_empty());
    }

    #[test]
    fn another_session_is_reset_unless_state_is_equal() {
        let mine = want(5, &["SET a=1"], 0);
        let theirs_same = want(9, &["SET a=1"], 0);
        assert!(plan(&Applied::of(&mine), &theirs_same).is_empty(), "equal SETs are shared");
        let theirs_vars = want(9, &["SET a=1"], 2);
        let p = plan(&Applied::of(&mine), &theirs_vars);
        assert!(p.reset && p.vars && p.sets_from == 0 && p.use_db);
        let clean = want(9, &[], 0);
        let p = plan(&Applied::of(&want(5, &[], 4)), &clean);
        assert!(p.reset, "another session's user variables are cleared");
        let p = plan(&Applied::unknown(), &clean);
        assert!(p.reset);
    }

    #[test]
    fn a_connection_changing_hands_takes_the_clients_connection_id() {
        let mut mine = want(5, &["SET a=1"], 0);
        mine.connection_id = 77;
        let mut theirs = want(9, &["SET a=1"], 0);
        theirs.connection_id = 78;
        assert!(plan(&Applied::of(&mine), &theirs).pseudo_id, "equal SETs, another client");
        assert!(!plan(&Applied::of(&mine), &mine).pseudo_id);
        assert!(plan(&Applied::unknown(), &mine).pseudo_id);
    }
}
