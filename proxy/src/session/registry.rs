//! The node's client connections by connection id (the id of the handshake), for KILL and
//! SHOW PROCESSLIST.
//!
//! Contract: the acceptor registers a connection with its peer address and its own
//! cancellation token before it serves it and removes it when it ends ([`Registration`] does
//! both); the session records its login and, through its [`Activity`], what it is doing
//! (command, since when, statement text, database). `KILL <id>` and SHOW PROCESSLIST look
//! connections up here; nothing else does.

use dashmap::DashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest statement text kept for SHOW FULL PROCESSLIST (MariaDB keeps it whole; a
/// huge INSERT is cut here rather than copied for every execution).
const MAX_INFO: usize = 64 * 1024;

#[derive(Default)]
pub struct Registry {
    map: DashMap<u32, Entry>,
}

struct Entry {
    user: String,
    host: String,
    cancel: CancellationToken,
    activity: Arc<Activity>,
}

/// What one connection is doing now; its session updates it at each command.
pub struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    db: Option<String>,
    command: &'static str,
    since: Instant,
    info: Option<String>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { state: Mutex::new(ActivityState { db: None, command: "Sleep", since: Instant::now(), info: None }) }
    }
}

impl Activity {
    /// A command starts (`Query`, `Execute`, …) with its statement text, if any.
    pub fn begin(&self, command: &'static str, info: Option<&str>) {
        if let Ok(mut s) = self.state.lock() {
            s.command = command;
            s.since = Instant::now();
            match info {
                Some(text) => {
                    let buf = s.info.get_or_insert_with(String::new);
                    buf.clear();
                    buf.push_str(cut(text, MAX_INFO));
                }
                None => s.info = None,
            }
        }
    }

    /// The command ended; `db` is the session's database now.
    pub fn end(&self, db: Option<&str>) {
        if let Ok(mut s) = self.state.lock() {
            s.command = "Sleep";
            s.since = Instant::now();
            s.info = None;
            if s.db.as_deref() != db {
                s.db = db.map(String::from);
            }
        }
    }
}

/// One row of SHOW PROCESSLIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub id: u32,
    pub user: String,
    pub host: String,
    pub db: Option<String>,
    pub command: &'static str,
    pub seconds: u64,
    pub info: Option<String>,
}

/// Removes its connection from the registry when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.map.remove(&self.id);
    }
}

impl Registry {
    /// Registers connection `id` from `host` (the peer, `ip:port`); `cancel` ends it (a KILL
    /// from another connection).
    pub fn register(self: &Arc<Self>, id: u32, host: &str, cancel: CancellationToken) -> Registration {
        let entry = Entry { user: String::new(), host: host.to_string(), cancel, activity: Arc::new(Activity::default()) };
        self.map.insert(id, entry);
        Registration { registry: self.clone(), id }
    }

    /// Records the login of connection `id`; returns the activity its session keeps up to
    /// date (a detached one when the connection is not registered, as in unit tests).
    pub fn set_user(&self, id: u32, user: &str) -> Arc<Activity> {
        match self.map.get_mut(&id) {
            Some(mut e) => {
                e.user = user.to_string();
                e.activity.clone()
            }
            None => Arc::new(Activity::default()),
        }
    }

    /// The user of connection `id` and its token, if it is open on this node.
    pub fn get(&self, id: u32) -> Option<(String, CancellationToken)> {
        self.map.get(&id).map(|e| (e.user.clone(), e.cancel.clone()))
    }

    /// The node's logged-in connections, by id; only `user`'s unless `all`. Info is cut to
    /// 100 characters unless `full`, as MariaDB's SHOW PROCESSLIST does.
    pub fn list(&self, user: &str, all: bool, full: bool) -> Vec<Process> {
        let now = Instant::now();
        let mut out: Vec<Process> = self
            .map
            .iter()
            .filter(|e| !e.user.is_empty() && (all || e.user == user))
            .filter_map(|e| {
                let s = e.activity.state.lock().ok()?;
                let info = s.info.as_deref().map(|t| if full { t.to_string() } else { cut_chars(t, 100).to_string() });
                Some(Process {
                    id: *e.key(),
                    user: e.user.clone(),
                    host: e.host.clone(),
                    db: s.db.clone(),
                    command: s.command,
                    seconds: now.saturating_duration_since(s.since).as_secs(),
                    info,
                })
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to at most `n` characters.
fn cut_chars(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ends_with_its_guard() {
        let r = Arc::new(Registry::default());
        let g = r.register(7, "127.0.0.1:5000", CancellationToken::new());
        r.set_user(7, "app");
        assert_eq!(r.get(7).map(|(u, _)| u), Some("app".to_string()));
        drop(g);
        assert!(r.get(7).is_none());
    }

    #[test]
    fn list_shows_activity_and_filters_by_user() {
        let r = Arc::new(Registry::default());
        let _a = r.register(1, "10.0.0.1:1", CancellationToken::new());
        let _b = r.register(2, "10.0.0.2:2", CancellationToken::new());
        let _c = r.register(3, "10.0.0.3:3", CancellationToken::new());
        let act = r.set_user(1, "app");
        r.set_user(2, "other");
        // 3 never logged in: not listed.
        act.end(Some("shop"));
        let long = "é".repeat(150);
        act.begin("Query", Some(&long));
        let mine = r.list("app", false, false);
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].id, mine[0].command, mine[0].db.as_deref()), (1, "Query", Some("shop")));
        assert_eq!(mine[0].info.as_deref().map(|i| i.chars().count()), Some(100));
        assert_eq!(r.list("app", false, true)[0].info.as_deref(), Some(long.as_str()));
        assert_eq!(r.list("app", true, false).iter().map(|p| p.id).collect::<Vec<_>>(), vec![1, 2]);
        act.end(Some("shop"));
        assert_eq!((r.list("app", false, false)[0].command, r.list("app", false, false)[0].info.clone()), ("Sleep", None));
    }

    #[test]
    fn info_is_cut_at_a_character_boundary() {
        let t = "aé".repeat(MAX_INFO);
        assert!(cut(&t, MAX_INFO).len() <= MAX_INFO);
        assert_eq!(cut("abc", 10), "abc");
    }
}
