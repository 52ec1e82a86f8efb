//! Idempotency keys for the operations that change a primary or slot owners (switchover,
//! failover, slot move): a client that timed out may send the same request again, with the
//! same `request_id`, and is never the cause of a second operation.
//!
//! Contract: on the leader that ran it, a key's first request runs the operation and every
//! later one (also while it runs) gets the same answer. The operation's prepare and commit
//! go through the meta group as `<key>/prepare` and `<key>/commit`, so a leader that did
//! not run it still knows: a committed key is answered with its version (`"retried": true`),
//! one that was prepared but never committed is refused (it was rolled back, or will be by
//! the health check) and is not started again. At most [`KEEP`] keys are remembered here;
//! the meta group remembers its request ids for longer.

use serde_json::Value;
use slotgate_meta::MetaState;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Keys remembered on one leader.
pub const KEEP: usize = 1000;

type Outcome = Result<Value, String>;
/// Each key's outcome (set once), and the keys oldest first.
type Cells = (HashMap<String, Arc<OnceCell<Outcome>>>, VecDeque<String>);

#[derive(Default)]
pub struct Operations {
    cells: Mutex<Cells>,
}

/// The meta request id of an operation's step (`"prepare"`, `"commit"`).
pub fn step_id(key: Option<&str>, step: &str) -> Option<String> {
    key.map(|k| format!("{k}/{step}"))
}

impl Operations {
    /// Runs `work` for `key` once (see the module docs); without a key, always.
    pub async fn once<F, Fut>(&self, key: Option<&str>, state: &MetaState, work: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let Some(key) = key else { return work().await };
        if key.is_empty() || key.len() > 128 {
            return Err("request_id must be 1 to 128 characters".into());
        }
        let cell = {
            let mut guard = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            let (cells, order) = &mut *guard;
            match cells.get(key) {
                Some(c) => c.clone(),
                None => {
                    if let Some(done) = state.requests.get(&format!("{key}/commit")).filter(|r| r.refused.is_none()) {
                        return Ok(serde_json::json!({ "request_id": key, "version": done.version, "retried": true }));
                    }
                    if state.requests.contains_key(&format!("{key}/prepare")) {
                        return Err(format!(
                            "operation {key} was started by a former meta leader and did not commit (it was rolled back, or the health check rolls it back); check `slotctl history`, then run it again with a new request id"
                        ));
                    }
                    let c = Arc::new(OnceCell::new());
                    cells.insert(key.to_string(), c.clone());
                    order.push_back(key.to_string());
                    while order.len() > KEEP {
                        if let Some(old) = order.pop_front() {
                            cells.remove(&old);
                        }
                    }
                    c
                }
            }
        };
        cell.get_or_init(work).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_key_runs_once_and_answers_the_same_every_time() {
        let ops = Operations::default();
        let runs = AtomicUsize::new(0);
        let state = MetaState::default();
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(serde_json::json!({"version": 7}))
        };
        let (a, b) = tokio::join!(ops.once(Some("k1"), &state, work), ops.once(Some("k1"), &state, work));
        assert_eq!(a, b);
        assert_eq!(ops.once(Some("k1"), &state, work).await, a);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        ops.once(None, &state, work).await.unwrap();
        ops.once(None, &state, work).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no key: every request runs");
    }

    #[tokio::test]
    async fn another_leader_knows_a_key_from_the_meta_state() {
        let ops = Operations::default();
        let mut state = MetaState::default();
        state.requests.insert("k/prepare".into(), slotgate_meta::MetaResponse { version: 4, refused: None, retried: false });
        let never = || async { panic!("must not run again") };
        let e = ops.once(Some("k"), &state, never).await.unwrap_err();
        assert!(e.contains("did not commit"), "{e}");
        state.requests.insert("k/commit".into(), slotgate_meta::MetaResponse { version: 5, refused: None, retried: false });
        let v = ops.once(Some("k"), &state, never).await.unwrap();
        assert_eq!(v["version"], 5);
        assert_eq!(v["retried"], true);
    }
}
