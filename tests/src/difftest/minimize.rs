//! Shrinks a session that shows a difference: statements are dropped one at a time (from
//! the end) while the shortened session still differs, replayed from the initial rows each
//! time, within a time budget.
//!
//! Contract: returns a session that differed when last run (the original one at worst) and
//! that run's description of the difference.

use super::fixture::Fixture;
use super::gen::Stmt;
use super::{run_session, Outcome};
use std::time::{Duration, Instant};

pub async fn minimize(f: &Fixture, session: &[Stmt], binary: bool, budget: Duration) -> anyhow::Result<(Vec<Stmt>, String)> {
    let deadline = Instant::now() + budget;
    let mut current: Vec<Stmt> = session.to_vec();
    let mut what = match run_session(f, &current, binary).await? {
        Outcome::Differs(d) => {
            current.truncate(d.at + 1);
            d.what
        }
        _ => return Ok((current, "did not reproduce on a second run (timing-dependent?)".into())),
    };
    let mut i = current.len();
    while i > 0 && Instant::now() < deadline {
        i -= 1;
        let mut candidate = current.clone();
        candidate.remove(i);
        if let Outcome::Differs(d) = run_session(f, &candidate, binary).await? {
            candidate.truncate(d.at + 1);
            current = candidate;
            what = d.what;
            i = i.min(current.len());
        }
    }
    Ok((current, what))
}
