//! The generative differential tester: seeded sessions (see `gen`) run statement by
//! statement through slotgate over four shards and against one reference MariaDB holding the
//! same rows; every answer (rows, affected rows, warning count, error code) and, after each
//! COMMIT / ROLLBACK and at the session's end, every table's contents must be the same.
//! slotgate's ERROR 1235 (a refusal) is accepted: the rest of that session is not compared.
//!
//! Contract: replayable — a difference is reported with the seed, the session number, the
//! statement, both answers and the session as an SQL script, then minimised (`minimize`).
//! Knobs (environment): DIFFTEST_SEED, DIFFTEST_SESSIONS, DIFFTEST_STATEMENTS,
//! DIFFTEST_BINARY (0 = text, 1 = binary, alt = odd sessions binary; default alt),
//! DIFFTEST_CLASSES (comma list of `gen::CLASSES`), DIFFTEST_KEEP_GOING=1,
//! DIFFTEST_MINIMIZE_SECS.

pub mod answer;
pub mod fixture;
pub mod gen;
pub mod minimize;

use answer::Answer;
use fixture::Fixture;
use gen::{Generator, Stmt};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub sessions: usize,
    pub statements: usize,
    /// 0 text, 1 binary, 2 alternate by session.
    pub binary: u8,
    pub classes: Vec<&'static str>,
    pub keep_going: bool,
    pub minimize: Duration,
}

impl Settings {
    pub fn from_env(default_sessions: usize) -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let classes = match var("DIFFTEST_CLASSES") {
            Some(list) => gen::CLASSES.iter().copied().filter(|c| list.split(',').any(|x| x.trim() == *c)).collect(),
            None => gen::CLASSES.to_vec(),
        };
        Settings {
            seed: var("DIFFTEST_SEED").and_then(|v| v.parse().ok()).unwrap_or(20261206),
            sessions: var("DIFFTEST_SESSIONS").and_then(|v| v.parse().ok()).unwrap_or(default_sessions),
            statements: var("DIFFTEST_STATEMENTS").and_then(|v| v.parse().ok()).unwrap_or(20),
            binary: match var("DIFFTEST_BINARY").as_deref() {
                Some("0") => 0,
                Some("1") => 1,
                _ => 2,
            },
            classes,
            keep_going: var("DIFFTEST_KEEP_GOING").is_some_and(|v| v == "1"),
            minimize: Duration::from_secs(var("DIFFTEST_MINIMIZE_SECS").and_then(|v| v.parse().ok()).unwrap_or(60)),
        }
    }
}

/// Where a session's run first differed.
#[derive(Debug, Clone)]
pub struct Difference {
    /// Index of the statement (or of the last one, for a table-contents difference).
    pub at: usize,
    pub what: String,
}

/// How one session's run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Same,
    /// slotgate refused a statement with 1235 (accepted).
    Refused(usize),
    Differs(Difference),
}

/// Runs one session in both worlds (from the initial rows, which it restores when it wrote).
pub async fn run_session(f: &Fixture, session: &[Stmt], binary: bool) -> anyhow::Result<Outcome> {
    let (mut p, mut r) = (f.proxy_conn().await?, f.reference_conn().await?);
    let mut outcome = Outcome::Same;
    for (i, s) in session.iter().enumerate() {
        let bin = binary && s.dml;
        let (a, b) = (answer::run(&mut p, &s.sql, bin).await, answer::run(&mut r, &s.sql, bin).await);
        if a.is_refusal() && !b.is_refusal() {
            outcome = Outcome::Refused(i);
            break;
        }
        if !a.same_as(&b) {
            outcome = Outcome::Differs(Difference { at: i, what: format!("statement {i} `{}`:\n  slotgate:  {a:?}\n  reference: {b:?}", s.sql) });
            break;
        }
        if matches!(a, Answer::Broken(_)) {
            break;
        }
        let ends_tx = ["COMMIT", "ROLLBACK"].iter().any(|k| s.sql.eq_ignore_ascii_case(k));
        if ends_tx && matches!(a, Answer::Ok { .. }) {
            if let Some(d) = compare_tables(f, i).await? {
                outcome = Outcome::Differs(d);
                break;
            }
        }
    }
    drop((p, r));
    if matches!(outcome, Outcome::Same) {
        // Both sessions ended (their open transactions rolled back as they disconnected).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match compare_tables(f, session.len().saturating_sub(1)).await? {
                None => break,
                // A disconnect's rollback may still be running on a backend: wait on it.
                Some(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                Some(d) => {
                    outcome = Outcome::Differs(d);
                    break;
                }
            }
        }
    }
    if session.iter().any(|s| !s.sql.starts_with("SELECT") && !s.sql.starts_with("SET") && !s.sql.starts_with("SHOW")) {
        f.reset().await?;
    }
    Ok(outcome)
}

async fn compare_tables(f: &Fixture, at: usize) -> anyhow::Result<Option<Difference>> {
    let (a, b) = f.contents().await?;
    if a == b {
        return Ok(None);
    }
    let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let show = |v: &[String]| v.get(first).cloned().unwrap_or_else(|| "(no more rows)".into());
    Ok(Some(Difference {
        at,
        what: format!("table contents after statement {at}: first difference at row {first}:\n  slotgate:  {}\n  reference: {}", show(&a), show(&b)),
    }))
}

/// The session as a script to replay by hand.
pub fn script(session: &[Stmt]) -> String {
    session.iter().map(|s| format!("{};", s.sql)).collect::<Vec<_>>().join("\n")
}

/// A failure report.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub session: usize,
    pub binary: bool,
    pub difference: Difference,
    pub minimal: Vec<Stmt>,
    pub minimal_difference: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "DIFFERENCE seed={} session={} protocol={}", self.seed, self.session, if self.binary { "binary" } else { "text" })?;
        writeln!(f, "{}", self.difference.what)?;
        writeln!(f, "minimal session ({} statements), replay with DIFFTEST_SEED={} :", self.minimal.len(), self.seed)?;
        writeln!(f, "{}", script(&self.minimal))?;
        write!(f, "minimal difference: {}", self.minimal_difference)
    }
}

/// Runs the configured sessions; returns the reports of the sessions that differed and the
/// number of sessions run and refused.
pub async fn run(settings: &Settings) -> anyhow::Result<(Vec<Report>, usize, usize)> {
    run_on(settings, &Fixture::start().await?).await
}

/// `run` on a fixture the caller built (e.g. over a cluster that split a shard).
pub async fn run_on(settings: &Settings, f: &Fixture) -> anyhow::Result<(Vec<Report>, usize, usize)> {
    let mut reports = Vec::new();
    let (mut ran, mut refused) = (0, 0);
    for n in 0..settings.sessions {
        let session = Generator::new(settings.seed.wrapping_add(n as u64), &settings.classes).session(settings.statements);
        let binary = match settings.binary {
            0 => false,
            1 => true,
            _ => n % 2 == 1,
        };
        ran += 1;
        match run_session(f, &session, binary).await? {
            Outcome::Same => {}
            Outcome::Refused(_) => refused += 1,
            Outcome::Differs(d) => {
                let (minimal, minimal_difference) = minimize::minimize(f, &session, binary, settings.minimize).await?;
                let report = Report { seed: settings.seed.wrapping_add(n as u64), session: n, binary, difference: d, minimal, minimal_difference };
                eprintln!("{report}\n");
                reports.push(report);
                if !settings.keep_going {
                    break;
                }
            }
        }
    }
    Ok((reports, ran, refused))
}
