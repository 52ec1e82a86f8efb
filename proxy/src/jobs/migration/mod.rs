//! An online slot migration, run by the meta leader: checks, copy from a consistent snapshot,
//! binlog catch-up, verification, cutover through the cutover protocol, cleanup.
//!
//! Contract: every phase change is a topology command (`migration_phase`), so a new leader
//! resumes the job from the last recorded phase: before the cutover's commit it deletes the
//! target's copies and starts again from the copy (idempotent and safe: the source still owns
//! every row); after the commit it goes on with the cleanup (idempotent deletes). A job stops
//! at its next step when this node is no longer the leader, or the node shuts down. Errors
//! before the commit roll back (the target's copies deleted, phase `failed` with the reason);
//! a cancel (`migration_cancel`) rolls back the same way (phase `cancelled`). The write pause
//! on the moving slots is only the cutover: freeze, drain, apply the last events, commit.

pub mod binlog;
pub mod copy;
pub mod tables;
pub mod verify;

use crate::admin::Switchover;
use binlog::{Applier, BinlogPos};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Deserialize;
use slotgate_shared::api::CommandRequest;
use slotgate_shared::{Migration, MigrationPhase, SlotRange, Topology, TopologyCommand};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tables::TableInfo;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// `[migration]`: how migrations copy and cut over.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSettings {
    /// Rows per copy batch (and per cleanup batch).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Copy and cleanup throttle, rows per second (0: unthrottled).
    #[serde(default)]
    pub max_rows_per_sec: u64,
    /// The catch-up is done when one pass over the source's new binlog takes less than this.
    #[serde(default = "default_lag_ms")]
    pub catch_up_lag_ms: u64,
    /// Longest catch-up before the migration gives up (the target cannot keep up).
    #[serde(default = "default_catch_up_s")]
    pub catch_up_timeout_s: u64,
    /// Cutover attempts (each within `meta.cutover_budget_ms`) before the migration fails.
    #[serde(default = "default_attempts")]
    pub cutover_attempts: u32,
}

fn default_batch_rows() -> usize {
    1000
}
fn default_lag_ms() -> u64 {
    500
}
fn default_catch_up_s() -> u64 {
    600
}
fn default_attempts() -> u32 {
    3
}

impl Default for MigrationSettings {
    fn default() -> Self {
        MigrationSettings { batch_rows: default_batch_rows(), max_rows_per_sec: 0, catch_up_lag_ms: default_lag_ms(), catch_up_timeout_s: default_catch_up_s(), cutover_attempts: default_attempts() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A check refused the migration; one sentence saying what to do.
    #[error("{0}")]
    Check(String),
    #[error("source: {0}")]
    Source(String),
    #[error("{0}")]
    Ddl(String),
    #[error("{0}")]
    Verify(String),
    #[error("{0}")]
    Timeout(String),
    #[error("backend: {0}")]
    Backend(String),
    #[error("meta: {0}")]
    Meta(String),
    /// The job must stop here (leadership lost, node shutting down); a leader resumes it.
    #[error("stopped: {0}")]
    Stopped(String),
    #[error("cancelled by the operator")]
    Cancelled,
}

impl From<mysql_async::Error> for MigrationError {
    fn from(e: mysql_async::Error) -> Self {
        MigrationError::Backend(e.to_string())
    }
}

/// Live progress of a migration run by this node.
pub use slotgate_shared::api::MigrationProgress as Progress;

/// Column `i` of a backend's row as `T`, or an error (never the panic of a typed query).
pub(crate) fn cell<T: mysql_async::prelude::FromValue>(row: &mysql_async::Row, i: usize) -> Result<T, MigrationError> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(MigrationError::Backend(format!("unexpected value in column {i} of a backend's answer: {e}"))),
        None => Err(MigrationError::Backend(format!("a backend's answer has no column {i}"))),
    }
}

/// What a running job checks and reports through.
pub struct Control {
    pub sw: Switchover,
    pub id: u64,
    pub settings: MigrationSettings,
    pub progress: Arc<Mutex<Progress>>,
    pub stop: CancellationToken,
    started: Instant,
}

impl Control {
    /// `Err` when the job must stop (not leader, shutting down) or roll back (cancelled).
    pub fn check(&self) -> Result<(), MigrationError> {
        self.check_running()?;
        if self.migration().is_some_and(|m| m.cancel) {
            return Err(MigrationError::Cancelled);
        }
        Ok(())
    }

    /// Like [`Control::check`] but ignores a cancel (cleanups and rollbacks run to the end).
    pub fn check_running(&self) -> Result<(), MigrationError> {
        if self.stop.is_cancelled() {
            return Err(MigrationError::Stopped("the node is shutting down".into()));
        }
        if !self.sw.meta.is_leader() {
            return Err(MigrationError::Stopped("this node is no longer the meta leader".into()));
        }
        Ok(())
    }

    fn migration(&self) -> Option<Migration> {
        self.sw.meta.current().topology.as_ref().and_then(|t| t.migration(self.id).cloned())
    }

    pub async fn copied(&self, rows: u64) {
        self.sw.metrics.migration().rows_copied.increment(rows);
        {
            let mut p = self.progress.lock().await;
            p.rows_copied += rows;
            let secs = self.started.elapsed().as_secs_f64();
            if p.rows_copied > 0 && secs > 0.0 && p.rows_estimated > p.rows_copied {
                let rate = p.rows_copied as f64 / secs;
                p.eta_seconds = Some(((p.rows_estimated - p.rows_copied) as f64 / rate) as u64);
            }
        }
        self.throttle(rows).await;
    }

    pub async fn deleted(&self, rows: u64) {
        self.sw.metrics.migration().rows_deleted.increment(rows);
        self.progress.lock().await.rows_deleted += rows;
    }

    /// Sleeps as long as `rows` take at `max_rows_per_sec`.
    pub async fn throttle(&self, rows: u64) {
        if self.settings.max_rows_per_sec > 0 {
            let secs = rows as f64 / self.settings.max_rows_per_sec as f64;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }

    async fn phase(&self, phase: MigrationPhase, detail: &str) -> Result<(), MigrationError> {
        let from = self.migration().map(|m| m.phase);
        self.submit(TopologyCommand::MigrationPhase { id: self.id, phase, detail: detail.to_string() }).await?;
        self.sw.metrics.migration().phase(from, Some(phase));
        tracing::info!(migration = self.id, phase = phase.name(), detail, "migration phase");
        Ok(())
    }

    async fn submit(&self, command: TopologyCommand) -> Result<u64, MigrationError> {
        let req = CommandRequest { request_id: None, actor: Some(format!("migration {} (node {})", self.id, self.sw.meta.id())), if_version: None, force: true, command };
        self.sw.meta.submit(req).await.map(|r| r.version).map_err(|e| MigrationError::Meta(e.to_string()))
    }
}

/// The tables a migration moves rows of, read on the source.
/// The sharded tables as `conn`'s shard has them (a missing one holds no rows there).
async fn describe(conn: &mut Conn, t: &Topology) -> Result<Vec<TableInfo>, MigrationError> {
    let mut out = Vec::new();
    for rule in &t.rules {
        match TableInfo::read(conn, &rule.database, &rule.table, &rule.column).await {
            Ok(info) => out.push(info),
            // A sharded table not created on this shard holds no rows here.
            Err(MigrationError::Check(m)) if m.ends_with("does not exist on the source shard") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The checks a migration runs before it copies anything (also run by `POST /migrations`
/// before the migration is recorded). Returns the tables to move.
pub async fn check(sw: &Switchover, t: &Topology, from: &str, to: &str) -> Result<Vec<TableInfo>, MigrationError> {
    let addr = |id: &str| t.shards.iter().find(|s| s.id == id).map(|s| s.primary.clone()).ok_or_else(|| MigrationError::Check(format!("unknown shard {id:?}")));
    let mut source = open(sw, &addr(from)?).await.map_err(|e| MigrationError::Check(format!("the source shard {from:?} does not answer: {e}")))?;
    let mut target = open(sw, &addr(to)?).await.map_err(|e| MigrationError::Check(format!("the target shard {to:?} does not answer: {e}")))?;
    let row: mysql_async::Row = source
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
        .await?
        .ok_or_else(|| MigrationError::Check("the source did not answer its binlog settings".into()))?;
    let (log_bin, format, image): (u8, String, String) = (cell(&row, 0)?, cell(&row, 1)?, cell(&row, 2)?);
    if log_bin != 1 || !format.eq_ignore_ascii_case("ROW") || !image.eq_ignore_ascii_case("FULL") {
        return Err(MigrationError::Check(format!(
            "the source shard {from:?} must write a ROW binlog with full images (log_bin=ON, binlog_format=ROW, binlog_row_image=FULL; it has log_bin={log_bin}, binlog_format={format}, binlog_row_image={image}): set them in its server config and restart it"
        )));
    }
    let row: Option<mysql_async::Row> = target.query_first("SELECT @@read_only").await?;
    let read_only: u8 = row.map(|r| cell(&r, 0)).transpose()?.unwrap_or(1);
    if read_only != 0 {
        return Err(MigrationError::Check(format!("the target shard {to:?}'s primary is read-only; make it writable (SET GLOBAL read_only=OFF) and retry")));
    }
    let tables = describe(&mut source, t).await?;
    for table in &tables {
        table.ensure_on_target(&mut source, &mut target).await?;
    }
    let _ = source.disconnect().await;
    let _ = target.disconnect().await;
    Ok(tables)
}

/// A job's own connection to a backend node: byte-exact strings, UTC, no FK checks, zero kept
/// in AUTO_INCREMENT columns.
async fn open(sw: &Switchover, addr: &str) -> Result<Conn, MigrationError> {
    let mut c = sw.connect(addr, Duration::from_secs(5)).await.map_err(MigrationError::Backend)?;
    c.query_drop("SET NAMES binary").await?;
    c.query_drop("SET SESSION time_zone = '+00:00', foreign_key_checks = 0, sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')").await?;
    Ok(c)
}

/// Runs (or resumes) migration `m` to its end; returns its final phase.
pub async fn run(ctl: Control, m: Migration) -> MigrationPhase {
    ctl.sw.metrics.migration().phase(None, Some(m.phase));
    let result = match m.phase {
        MigrationPhase::Cleanup => cleanup(&ctl, &m).await.map(|_| MigrationPhase::Done),
        MigrationPhase::RollingBack => Err(MigrationError::Stopped(m.detail.clone())),
        _ => forward(&ctl, &m).await.map(|_| MigrationPhase::Done),
    };
    let last = ctl.migration().map(|x| x.phase).unwrap_or(m.phase);
    ctl.sw.metrics.migration().phase(Some(last), None);
    match result {
        Ok(p) => p,
        Err(MigrationError::Stopped(why)) if m.phase != MigrationPhase::RollingBack => {
            tracing::info!(migration = m.id, %why, "migration job stopped; the meta leader resumes it");
            last
        }
        Err(e) if !last.before_commit() => {
            // After the commit nothing rolls back: the target owns the slots. Try again later.
            tracing::warn!(migration = m.id, error = %e, "migration cleanup interrupted; it resumes");
            last
        }
        Err(e) => {
            let (final_phase, why) = match &e {
                MigrationError::Cancelled => (MigrationPhase::Cancelled, "cancelled by the operator".to_string()),
                MigrationError::Stopped(detail) => (if m.cancel { MigrationPhase::Cancelled } else { MigrationPhase::Failed }, detail.clone()),
                other => (MigrationPhase::Failed, other.to_string()),
            };
            tracing::warn!(migration = m.id, error = %why, "migration rolls back");
            match rollback(&ctl, &m, &why, final_phase).await {
                Ok(()) => final_phase,
                Err(r) => {
                    tracing::warn!(migration = m.id, error = %r, "migration rollback interrupted; it resumes");
                    MigrationPhase::RollingBack
                }
            }
        }
    }
}

fn slot_list(m: &Migration) -> String {
    SlotRange::expand(&m.slots).map(|s| s.to_string()).collect::<Vec<_>>().join(",")
}

fn topology(ctl: &Control) -> Result<Arc<Topology>, MigrationError> {
    ctl.sw.meta.current().topology.clone().map(Arc::new).ok_or_else(|| MigrationError::Meta("no topology".into()))
}

fn primary(t: &Topology, id: &str) -> Result<String, MigrationError> {
    t.shards.iter().find(|s| s.id == id).map(|s| s.primary.clone()).ok_or_else(|| MigrationError::Check(format!("shard {id:?} no longer exists")))
}

/// Copy, catch-up, verify, cutover, cleanup.
async fn forward(ctl: &Control, m: &Migration) -> Result<(), MigrationError> {
    let t = topology(ctl)?;
    // A prepared cutover of a previous leader is rolled back first: this job starts over.
    if t.moving.iter().any(|mv| mv.slots == m.slots && mv.to == m.to) {
        ctl.submit(TopologyCommand::UnfreezeSlots { slots: m.slots.clone(), to: m.to.clone() }).await?;
    }
    // Recorded at every start, so that a job started again by a new leader shows in the history.
    let node = ctl.sw.meta.id();
    let detail = if m.phase == MigrationPhase::Copy && m.detail.is_empty() { format!("copy started by node {node}") } else { format!("restarted by node {node} from phase {}", m.phase.name()) };
    ctl.phase(MigrationPhase::Copy, &detail).await?;
    ctl.check()?;
    let tables = check(&ctl.sw, &t, &m.from, &m.to).await?;
    let (src_addr, dst_addr) = (primary(&t, &m.from)?, primary(&t, &m.to)?);
    let slots = slot_list(m);
    let n = t.slot_count;
    let mut target = open(&ctl.sw, &dst_addr).await?;
    // Copies left by an earlier attempt may be stale (deleted on the source since): start clean.
    for table in &tables {
        copy::delete_slots(&mut target, table, n, &slots, ctl).await?;
    }
    // Copy.
    let mut source = open(&ctl.sw, &src_addr).await?;
    let mut estimate = 0;
    for table in &tables {
        estimate += copy::count(&mut source, table, n, &slots).await?;
    }
    ctl.progress.lock().await.rows_estimated = estimate;
    let start = copy::snapshot(&mut source).await?;
    let mut copied = 0;
    for table in &tables {
        copied += copy::copy_table(&mut source, &mut target, table, n, &slots, ctl).await?;
    }
    source.query_drop("COMMIT").await?;
    ctl.phase(MigrationPhase::CatchUp, &format!("copied {copied} rows as of binlog {start}")).await?;

    // Catch-up.
    let mut moving = vec![false; n as usize];
    for s in SlotRange::expand(&m.slots) {
        if let Some(x) = moving.get_mut(s as usize) {
            *x = true;
        }
    }
    let server_id = 0xF000_0000u32 | ((ctl.sw.meta.id() as u32 & 0xFF) << 16) | (m.id as u32 & 0xFFFF);
    let stream_conn = open(&ctl.sw, &src_addr).await?;
    let mut applier = Applier::start(stream_conn, target, server_id, start, tables.clone(), moving, n).await?;
    let result = async {
        catch_up(ctl, &mut applier, &mut source).await?;
        // Verify at one binlog position on both sides.
        ctl.phase(MigrationPhase::Verify, "comparing checksums of source and target").await?;
        verify(ctl, &mut applier, &src_addr, &dst_addr, &tables, n, &slots).await?;
        // Cutover.
        let mut attempt = 0;
        loop {
            attempt += 1;
            catch_up(ctl, &mut applier, &mut source).await?;
            ctl.phase(MigrationPhase::Cutover, &format!("cutover attempt {attempt}")).await?;
            match cutover(ctl, m, &mut applier, &mut source).await {
                Ok(pause) => {
                    ctl.progress.lock().await.cutover_pause_ms = Some(pause.as_millis() as u64);
                    ctl.sw.metrics.migration().cutover_pause.record(pause.as_secs_f64());
                    ctl.sw.metrics.migration().phase(Some(MigrationPhase::Cutover), Some(MigrationPhase::Cleanup));
                    return Ok(());
                }
                Err(e @ (MigrationError::Stopped(_) | MigrationError::Cancelled)) => return Err(e),
                Err(e) if attempt >= ctl.settings.cutover_attempts => return Err(MigrationError::Timeout(format!("the cutover failed {attempt} times, last: {e}"))),
                Err(e) => {
                    tracing::warn!(migration = m.id, attempt, error = %e, "migration cutover rolled back; catching up again");
                    ctl.phase(MigrationPhase::CatchUp, &format!("cutover attempt {attempt} rolled back: {e}")).await?;
                }
            }
        }
    }
    .await;
    applier.close().await;
    let _ = source.disconnect().await;
    result?;
    cleanup(ctl, m).await
}

/// Applies the source's binlog until one pass takes less than the lag target.
async fn catch_up(ctl: &Control, applier: &mut Applier, source: &mut Conn) -> Result<(), MigrationError> {
    let give_up = Instant::now() + Duration::from_secs(ctl.settings.catch_up_timeout_s.max(1));
    loop {
        ctl.check()?;
        let pass = Instant::now();
        let want = BinlogPos::current(source).await.map_err(from_source)?;
        let step = (Instant::now() + Duration::from_secs(10)).min(give_up);
        match applier.run_until(&want, step).await {
            Ok(()) => {}
            Err(MigrationError::Timeout(_)) if Instant::now() < give_up => {}
            Err(e) => return Err(e),
        }
        report(ctl, applier).await;
        applier.ping().await?;
        if pass.elapsed() < Duration::from_millis(ctl.settings.catch_up_lag_ms) && applier.position() >= &want {
            return Ok(());
        }
        if Instant::now() >= give_up {
            return Err(MigrationError::Timeout(format!("the target did not catch up with the source within {} s; raise migration.catch_up_timeout_s or lower the write load", ctl.settings.catch_up_timeout_s)));
        }
    }
}

/// A backend error on the source's connection, told as the source's.
fn from_source(e: MigrationError) -> MigrationError {
    match e {
        MigrationError::Backend(m) => MigrationError::Source(format!("the source shard stopped answering ({m})")),
        other => other,
    }
}

async fn report(ctl: &Control, applier: &Applier) {
    let mut p = ctl.progress.lock().await;
    let applied = applier.applied.rows.saturating_sub(p.binlog_rows_applied);
    ctl.sw.metrics.migration().rows_applied.increment(applied);
    p.binlog_rows_applied = applier.applied.rows;
    p.binlog_events = applier.applied.events;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    p.lag_seconds = if applier.last_event_at == 0 { 0.0 } else { now.saturating_sub(u64::from(applier.last_event_at)) as f64 };
    ctl.sw.metrics.migration().lag_seconds.set(p.lag_seconds);
}

/// Checksums of the moving slots on the source and the target at one binlog position.
async fn verify(ctl: &Control, applier: &mut Applier, src: &str, dst: &str, tables: &[TableInfo], n: u32, slots: &str) -> Result<(), MigrationError> {
    ctl.check()?;
    let mut source = open(&ctl.sw, src).await?;
    let at = copy::snapshot(&mut source).await?;
    tracing::debug!(migration = ctl.id, %at, "verification snapshot");
    applier.run_until(&at, Instant::now() + Duration::from_secs(ctl.settings.catch_up_timeout_s.max(1))).await?;
    let mut target = open(&ctl.sw, dst).await?;
    target.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    target.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
    let mut failures = Vec::new();
    for table in tables {
        let s = verify::checksums(&mut source, table, n, slots).await?;
        let t = verify::checksums(&mut target, table, n, slots).await?;
        if let Err(e) = verify::compare(table, &s, &t) {
            failures.push(e);
        }
    }
    let _ = source.disconnect().await;
    let _ = target.disconnect().await;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(MigrationError::Verify(failures.join(" ")))
    }
}

/// Freeze, drain, apply the last events, commit the new owner. Returns the write pause.
async fn cutover(ctl: &Control, m: &Migration, applier: &mut Applier, source: &mut Conn) -> Result<Duration, MigrationError> {
    let meta = &ctl.sw.meta;
    let deadline = Instant::now() + meta.cutover_budget();
    let prepared = ctl.submit(TopologyCommand::FreezeSlots { slots: m.slots.clone(), to: m.to.clone() }).await?;
    let frozen_at = Instant::now();
    let done = async {
        meta.wait_acks(prepared, deadline).await.map_err(MigrationError::Timeout)?;
        let last = BinlogPos::current(source).await?;
        applier.run_until(&last, deadline).await?;
        ctl.check()?;
        ctl.submit(TopologyCommand::AssignSlots { slots: m.slots.clone(), to: m.to.clone() }).await
    }
    .await;
    match done {
        Ok(_) => {
            ctl.sw.metrics.cutover().cutover("slot_move", "committed");
            Ok(frozen_at.elapsed())
        }
        Err(e) => {
            ctl.sw.metrics.cutover().cutover("slot_move", "rolled_back");
            ctl.submit(TopologyCommand::UnfreezeSlots { slots: m.slots.clone(), to: m.to.clone() }).await?;
            Err(e)
        }
    }
}

/// Deletes the moved rows from the source, then records `done`.
async fn cleanup(ctl: &Control, m: &Migration) -> Result<(), MigrationError> {
    settle(ctl).await;
    let t = topology(ctl)?;
    let mut source = open(&ctl.sw, &primary(&t, &m.from)?).await?;
    let tables = describe(&mut source, &t).await?;
    let slots = slot_list(m);
    let mut deleted = 0;
    for table in &tables {
        let n = copy::delete_slots(&mut source, table, t.slot_count, &slots, ctl).await?;
        ctl.deleted(n).await;
        deleted += n;
    }
    let _ = source.disconnect().await;
    ctl.phase(MigrationPhase::Done, &format!("moved; {deleted} rows deleted from the source")).await?;
    if m.retire_source {
        // A merge: the source owns no slot any more.
        if let Err(e) = ctl.submit(TopologyCommand::RemoveShard { shard: m.from.clone() }).await {
            tracing::warn!(migration = m.id, shard = %m.from, error = %e, "the merged shard could not be removed; remove it with slotctl shard remove");
        }
    }
    Ok(())
}

/// Before the source's rows go: lets every member of the meta group apply the commit, so that
/// no node still reads the moved slots from the source (each member has the leader's applied
/// log, or a lease passed: a node that hears nothing for a lease stops serving), plus the time
/// for a heartbeat to carry the commit index and the node to swap its topology.
async fn settle(ctl: &Control) {
    let meta = &ctl.sw.meta;
    let deadline = Instant::now() + meta.lease_duration();
    let want = meta.cluster_status().await.applied_index;
    loop {
        let s = meta.cluster_status().await;
        if s.members.iter().all(|m| m.matched_index >= want) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Deletes the target's copies, then records `final_phase` (failed or cancelled).
async fn rollback(ctl: &Control, m: &Migration, why: &str, final_phase: MigrationPhase) -> Result<(), MigrationError> {
    let t = topology(ctl)?;
    if t.moving.iter().any(|mv| mv.slots == m.slots && mv.to == m.to) {
        ctl.submit(TopologyCommand::UnfreezeSlots { slots: m.slots.clone(), to: m.to.clone() }).await?;
    }
    if ctl.migration().is_some_and(|x| x.phase != MigrationPhase::RollingBack) {
        ctl.phase(MigrationPhase::RollingBack, why).await?;
    }
    // Only the target is needed (the tables are read there too): a lost source does not keep
    // the copies from being deleted.
    let mut target = open(&ctl.sw, &primary(&t, &m.to)?).await?;
    let tables = describe(&mut target, &t).await?;
    let slots = slot_list(m);
    for table in &tables {
        let n = copy::delete_slots(&mut target, table, t.slot_count, &slots, ctl).await?;
        ctl.deleted(n).await;
    }
    let detail = ctl.migration().map(|x| x.detail).unwrap_or_else(|| why.to_string());
    ctl.phase(final_phase, &format!("rolled back, the source kept the slots: {detail}")).await
}

impl Control {
    pub fn new(sw: Switchover, id: u64, settings: MigrationSettings, progress: Arc<Mutex<Progress>>, stop: CancellationToken) -> Control {
        Control { sw, id, settings, progress, stop, started: Instant::now() }
    }
}
