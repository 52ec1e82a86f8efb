//! Unplanned failover of a shard whose primary died, led by the meta leader, and the health
//! check that triggers it.
//!
//! Contract: [`health_loop`] runs on every node but acts only on the meta leader: every
//! `interval` it pings each unfrozen shard's primary (that has a replica); after `threshold`
//! failures in a row it runs [`Switchover::failover`]. Only no answer is a failure: a
//! server that answers with an error (access denied, too many connections) is running and
//! is never failed over ([`Health::Refusing`], logged and counted). A failover:
//! 1. commits `freeze` and waits for every node with a live lease to acknowledge (statements
//!    in flight on the dead primary fail with a clear error; new ones are held);
//! 2. fences the old primary (`read_only=ON` if it answers; in any case it leaves the
//!    topology, so no node routes to it again);
//! 3. on each replica stops the I/O thread, waits until the SQL thread applied everything
//!    received, and promotes the one with the most advanced GTID position;
//! 4. commits `cutover` (old primary dropped) and repoints the other replicas.
//!
//! With semi-synchronous replication (`AFTER_SYNC`) every acknowledged write reached a replica,
//! so none is lost. Any failure before step 4 unfreezes the shard (and the check runs again).
//!
//! The loop also rolls back what a dead leader left half done: a shard frozen, or a slot move
//! prepared, for longer than twice the cutover budget while no cutover runs here is released
//! (`unfreeze`, `unfreeze_slots`): held work resumes where it was.

use super::switchover::{Switchover, SwitchoverReply};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use slotgate_shared::TopologyCommand;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

impl Switchover {
    /// Fails `shard_id` over; `key` is the request's idempotency key (see `idempotent`).
    pub async fn failover(&self, shard_id: &str, key: Option<&str>) -> Result<SwitchoverReply, String> {
        let _active = super::switchover::Active::new(&self.active);
        let t = self.meta.current().topology.clone().ok_or("the cluster has no topology yet")?;
        let shard = t.shards.iter().find(|s| s.id == shard_id).ok_or_else(|| format!("unknown shard {shard_id:?}"))?;
        if shard.replicas.is_empty() {
            return Err(format!("shard {shard_id:?} has no replica to fail over to"));
        }
        let (old, replicas) = (shard.primary.clone(), shard.replicas.clone());
        let deadline = Instant::now() + self.meta.cutover_budget();
        let prepare = self.submit_as(TopologyCommand::Freeze { shard: shard_id.to_string() }, super::idempotent::step_id(key, "prepare")).await?;
        let frozen_at = Instant::now();
        let chosen = self.promote_best(prepare, &old, &replicas, deadline).await;
        let done = match &chosen {
            Ok((new, _)) => self.submit_as(TopologyCommand::Cutover { shard: shard_id.to_string(), primary: new.clone(), drop_old: true }, super::idempotent::step_id(key, "commit")).await,
            Err(e) => Err(e.clone()),
        };
        let (new, semisync, version) = match (chosen, done) {
            (Ok((new, semisync)), Ok(v)) => (new, semisync, v),
            (_, Err(e)) => {
                let undo = self.submit(TopologyCommand::Unfreeze { shard: shard_id.to_string() }).await;
                self.metrics.cutover().cutover("failover", "rolled_back");
                return Err(match undo {
                    Ok(_) => format!("failover of shard {shard_id:?} rolled back: {e}"),
                    Err(u) => format!("failover of shard {shard_id:?} failed ({e}) and unfreezing too ({u})"),
                });
            }
            (Err(e), _) => return Err(e),
        };
        self.metrics.cutover().cutover("failover", "committed");
        self.metrics.cutover().failovers.increment(1);
        for r in replicas.iter().filter(|r| **r != new) {
            if let Err(e) = self.repoint(r, &new, "slave_pos", semisync).await {
                tracing::warn!(replica = %r, new_primary = %new, error = %e, "could not repoint a replica; do it by hand");
            }
        }
        let frozen_ms = frozen_at.elapsed().as_millis() as u64;
        tracing::warn!(shard = shard_id, %old, %new, version, frozen_ms, "failover committed; the old primary is out of the topology");
        Ok(SwitchoverReply { shard: shard_id.to_string(), old_primary: old, new_primary: new, version, frozen_ms })
    }

    async fn promote_best(&self, prepare: u64, old: &str, replicas: &[String], deadline: Instant) -> Result<(String, bool), String> {
        self.meta.wait_acks(prepare, deadline).await?;
        // Fence: a primary that still answers must not take writes any more.
        if let Ok(mut c) = self.connect(old, Duration::from_secs(1)).await {
            let _ = self.fence(&mut c, old, Duration::from_secs(2)).await;
        }
        let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let mut candidates: Vec<(String, String)> = Vec::new();
        for r in replicas {
            match self.drain_relay_log(r, left()).await {
                Ok(pos) => candidates.push((r.clone(), pos)),
                Err(e) => tracing::warn!(replica = %r, error = %e, "replica not usable for failover"),
            }
        }
        // Compared domain by domain, never by a sum over domains.
        let new = candidates[super::gtid::most_advanced(&candidates)?].0.clone();
        let mut c = self.connect(&new, left()).await?;
        let semisync = super::switchover::SemiSync::of_replica(&mut c).await;
        for sql in ["STOP SLAVE", "RESET SLAVE ALL"] {
            c.query_drop(sql).await.map_err(|e| format!("{new}: {sql}: {e}"))?;
        }
        // Semi-sync only when a replica remains to acknowledge (else every commit would wait
        // out the semi-sync timeout).
        let semisync = semisync.filter(|_| replicas.len() > 1);
        if let Some(s) = &semisync {
            s.make_primary(&mut c).await;
        } else {
            let _ = c.query_drop("SET GLOBAL rpl_semi_sync_master_enabled = OFF").await;
        }
        c.query_drop("SET GLOBAL read_only = OFF").await.map_err(|e| format!("{new}: read_only: {e}"))?;
        Ok((new, semisync.is_some()))
    }

    /// Stops fetching from the dead primary, applies everything already received, returns the
    /// replica's GTID position (`gtid_current_pos`).
    async fn drain_relay_log(&self, replica: &str, within: Duration) -> Result<String, String> {
        let mut c = self.connect(replica, within.min(Duration::from_secs(2))).await?;
        c.query_drop("STOP SLAVE IO_THREAD").await.map_err(|e| e.to_string())?;
        let status: Option<Row> = c.query_first("SHOW SLAVE STATUS").await.map_err(|e| e.to_string())?;
        let received: String = status.and_then(|r| r.get_opt::<String, _>("Gtid_IO_Pos").and_then(Result::ok)).unwrap_or_default();
        // Applied means in gtid_current_pos, domain by domain (a former primary's own GTIDs
        // are not in gtid_slave_pos, which MASTER_GTID_WAIT would wait on).
        let deadline = Instant::now() + within;
        loop {
            let pos: Option<String> = c.query_first("SELECT @@GLOBAL.gtid_current_pos").await.map_err(|e| e.to_string())?;
            let pos = pos.unwrap_or_default();
            if super::gtid::covers(&pos, &received) {
                return Ok(pos);
            }
            if Instant::now() >= deadline {
                return Err(format!("did not apply its relay log ({received}) in time (at {pos})"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What a health check found.
#[derive(Debug)]
pub enum Health {
    Up,
    /// The server answered with an error (access denied, account locked, too many
    /// connections, host blocked): it is running, so a failover would make two primaries.
    Refusing(String),
    /// No answer: refused at TCP level, timed out, or the connection broke.
    Down(String),
}

impl Health {
    fn index(&self) -> usize {
        match self {
            Health::Up => 0,
            Health::Refusing(_) => 1,
            Health::Down(_) => 2,
        }
    }

    fn of(e: mysql_async::Error) -> Health {
        match e {
            mysql_async::Error::Server(e) => Health::Refusing(format!("ERROR {}: {}", e.code, e.message)),
            other => Health::Down(other.to_string()),
        }
    }
}

impl Switchover {
    /// Connects to `addr` as the backend account and runs `SELECT 1`, within `within`.
    async fn check(&self, addr: &str, within: Duration) -> Health {
        let opts = match self.backend_opts(addr) {
            Ok(o) => o,
            Err(e) => return Health::Down(e),
        };
        let probe = async {
            let mut c = Conn::new(opts).await.map_err(Health::of)?;
            c.query_drop("SELECT 1").await.map_err(Health::of)?;
            let _ = c.disconnect().await;
            Ok::<(), Health>(())
        };
        match tokio::time::timeout(within, probe).await {
            Ok(Ok(())) => Health::Up,
            Ok(Err(h)) => h,
            Err(_) => Health::Down(format!("no answer within {} ms", within.as_millis())),
        }
    }
}

/// Pings the primaries from the meta leader and fails over a dead one; see the module docs.
pub async fn health_loop(sw: Switchover, interval: Duration, threshold: u32, cancel: CancellationToken) {
    let mut failures: HashMap<String, u32> = HashMap::new();
    let mut frozen_seen: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = cancel.cancelled() => return,
        }
        if !sw.meta.is_leader() {
            failures.clear();
            frozen_seen.clear();
            continue;
        }
        let Some(t) = sw.meta.current().topology.clone() else { continue };
        // A freeze or a prepared move whose cutover died with an earlier leader: roll it back.
        let held = t.held_back();
        frozen_seen.retain(|key, _| held.iter().any(|(k, _)| k == key));
        for (key, rollback) in held {
            let since = *frozen_seen.entry(key.clone()).or_insert_with(Instant::now);
            let idle = sw.active.load(std::sync::atomic::Ordering::SeqCst) == 0;
            if idle && since.elapsed() > sw.meta.cutover_budget() * 2 {
                tracing::warn!(%key, "held back by a cutover nobody runs any more: rolling it back");
                let kind = if matches!(rollback, TopologyCommand::UnfreezeSlots { .. }) { "slot_move" } else { "switchover" };
                if sw.submit(rollback).await.is_ok() {
                    sw.metrics.cutover().cutover(kind, "rolled_back");
                }
            }
        }
        for shard in t.shards.iter().filter(|s| !s.replicas.is_empty() && !t.is_frozen(&s.id)) {
            let health = sw.check(&shard.primary, interval.max(Duration::from_millis(500))).await;
            sw.metrics.cutover().checks[health.index()].increment(1);
            if let Health::Refusing(why) = &health {
                tracing::warn!(shard = %shard.id, primary = %shard.primary, error = %why, "primary answers but refuses the backend account: not failing over; fix the account or the server's limits");
            }
            if let Health::Down(why) = &health {
                tracing::debug!(shard = %shard.id, primary = %shard.primary, error = %why, "primary check failed");
            }
            let alive = !matches!(health, Health::Down(_));
            let n = failures.entry(shard.id.clone()).or_insert(0);
            *n = if alive { 0 } else { *n + 1 };
            if *n >= threshold {
                tracing::warn!(shard = %shard.id, primary = %shard.primary, checks = *n, "primary unreachable: failing over");
                *n = 0;
                if let Err(e) = sw.failover(&shard.id, None).await {
                    tracing::error!(shard = %shard.id, error = %e, "failover failed");
                }
            }
        }
    }
}

