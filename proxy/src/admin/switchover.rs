//! Planned switchover of a shard's primary, led by the meta leader, and its HTTP endpoint.
//!
//! Contract (`POST /switchover {"shard", "to"?}`; any node forwards to the leader):
//! 1. prepare: commit `freeze` for the shard; every node holds new work on it and drains it,
//!    then acknowledges; the leader waits for every node with a live lease (within the
//!    cutover budget, and never within one lease of becoming leader);
//! 2. set the old primary `read_only=ON`, read its `gtid_binlog_pos`, wait until the chosen
//!    replica applied it (its `gtid_current_pos` covers it, per domain), promote it (`STOP SLAVE`, `RESET SLAVE ALL`,
//!    `read_only=OFF`);
//! 3. commit `cutover` (new primary, shard unfrozen): nodes release the held work to it;
//! 4. repoint the other replicas and the old primary at the new one (GTID).
//!
//! Any failure before step 3 rolls back: the old primary is writable again and the shard is
//! unfrozen, so held work resumes on it. Clients see a pause, not an error.

use crate::config::{parse_host_port, BackendConfig};
use crate::metrics::Metrics;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde::{Deserialize, Serialize};
use slotgate_meta::MetaNode;
use slotgate_shared::api::CommandRequest;
use slotgate_shared::TopologyCommand;
use std::sync::atomic::{AtomicUsize, Ordering};
use super::idempotent::step_id;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    pub shard: String,
    /// The replica to promote (default: the shard's first replica).
    #[serde(default)]
    pub to: Option<String>,
    /// Idempotency key: a retry with the same key never starts a second operation.
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchoverReply {
    pub shard: String,
    pub old_primary: String,
    pub new_primary: String,
    /// Topology version that made the new primary live.
    pub version: u64,
    /// Milliseconds from the prepare's commit to the cutover's commit (the write pause).
    pub frozen_ms: u64,
}

/// What a switchover needs: the meta member, backend credentials, metrics.
#[derive(Clone)]
pub struct Switchover {
    pub meta: MetaNode,
    pub backend: BackendConfig,
    pub password: String,
    pub metrics: Metrics,
    /// Cutovers this node is running now (the health check leaves their freezes alone).
    pub active: Arc<AtomicUsize>,
    /// Operations by idempotency key (see `idempotent`).
    pub ops: Arc<super::idempotent::Operations>,
}

/// Counts a running cutover while alive.
pub(super) struct Active(Arc<AtomicUsize>);

impl Active {
    pub(super) fn new(count: &Arc<AtomicUsize>) -> Active {
        count.fetch_add(1, Ordering::SeqCst);
        Active(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Switchover {
    pub(super) async fn submit(&self, command: TopologyCommand) -> Result<u64, String> {
        self.submit_as(command, None).await
    }

    /// Submits `command` under meta request id `request_id` (an operation's step, see
    /// `idempotent`).
    pub(super) async fn submit_as(&self, command: TopologyCommand, request_id: Option<String>) -> Result<u64, String> {
        let req = CommandRequest { request_id, actor: Some(format!("switchover (node {})", self.meta.id())), if_version: None, force: true, command };
        self.meta.submit(req).await.map(|r| r.version).map_err(|e| e.to_string())
    }

    /// Connection options for `addr` as the backend account.
    pub(super) fn backend_opts(&self, addr: &str) -> Result<OptsBuilder, String> {
        let (host, port) = parse_host_port(addr)?;
        Ok(OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(self.backend.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false))
    }

    pub(crate) async fn connect(&self, addr: &str, within: Duration) -> Result<Conn, String> {
        let opts = self.backend_opts(addr)?;
        match tokio::time::timeout(within, Conn::new(opts)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
            Err(_) => Err(format!("cannot connect to {addr}: timed out")),
        }
    }

    /// Runs the switchover (this node must be the meta leader).
    pub async fn run(&self, req: &SwitchoverRequest) -> Result<SwitchoverReply, String> {
        let _active = Active::new(&self.active);
        let t = self.meta.current().topology.clone().ok_or("the cluster has no topology yet")?;
        let shard = t.shards.iter().find(|s| s.id == req.shard).ok_or_else(|| format!("unknown shard {:?}", req.shard))?;
        let old = shard.primary.clone();
        let new = match &req.to {
            Some(to) if shard.replicas.contains(to) => to.clone(),
            Some(to) => return Err(format!("{to} is not a replica of shard {:?}; `slotctl shard list` shows its replicas", req.shard)),
            None => shard.replicas.first().cloned().ok_or_else(|| format!("shard {:?} has no replica to switch to", req.shard))?,
        };
        let others: Vec<String> = shard.replicas.iter().filter(|r| **r != new).cloned().collect();
        let budget = self.meta.cutover_budget();
        let deadline = Instant::now() + budget;

        let key = req.request_id.as_deref();
        let prepare = self.submit_as(TopologyCommand::Freeze { shard: req.shard.clone() }, step_id(key, "prepare")).await?;
        let frozen_at = Instant::now();
        let promoted = self.promote(prepare, &old, &new, deadline).await;
        let semisync = promoted.as_ref().ok().and_then(|s| s.is_some().then_some(true)).unwrap_or(false);
        let version = match promoted {
            Ok(_) => self.submit_as(TopologyCommand::Cutover { shard: req.shard.clone(), primary: new.clone(), drop_old: false }, step_id(key, "commit")).await,
            Err(e) => Err(e),
        };
        let version = match version {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(shard = %req.shard, error = %e, "switchover rolled back");
                if let Ok(mut c) = self.connect(&old, Duration::from_secs(2)).await {
                    let _ = c.query_drop("SET GLOBAL read_only = OFF").await;
                }
                let undo = self.submit(TopologyCommand::Unfreeze { shard: req.shard.clone() }).await;
                self.metrics.cutover().cutover("switchover", "rolled_back");
                return Err(match undo {
                    Ok(_) => format!("switchover of shard {:?} rolled back, {old} stays primary: {e}", req.shard),
                    Err(u) => format!("switchover of shard {:?} failed ({e}) and its rollback too ({u}); run `slotctl shard list` and unfreeze by hand", req.shard),
                });
            }
        };
        let frozen_ms = frozen_at.elapsed().as_millis() as u64;
        self.metrics.cutover().cutover("switchover", "committed");
        // Repoint the rest after the cutover: they only follow, nobody writes to them.
        for (addr, pos) in others.iter().map(|r| (r, "slave_pos")).chain(std::iter::once((&old, "current_pos"))) {
            if let Err(e) = self.repoint(addr, &new, pos, semisync).await {
                tracing::warn!(replica = %addr, new_primary = %new, error = %e, "could not repoint a replica; do it by hand");
            }
        }
        tracing::info!(shard = %req.shard, %old, %new, version, frozen_ms, "switchover committed");
        Ok(SwitchoverReply { shard: req.shard.clone(), old_primary: old, new_primary: new, version, frozen_ms })
    }

    /// Returns whether the old primary used semi-synchronous replication (then so does the
    /// new one, and the others are repointed as semi-sync replicas).
    async fn promote(&self, prepare: u64, old: &str, new: &str, deadline: Instant) -> Result<Option<SemiSync>, String> {
        self.meta.wait_acks(prepare, deadline).await?;
        let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let mut oldc = self.connect(old, left()).await?;
        self.fence(&mut oldc, old, left()).await?;
        let semisync = SemiSync::of_primary(&mut oldc).await;
        let pos: Option<String> = oldc.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await.map_err(|e| format!("{old}: {e}"))?;
        let pos = pos.unwrap_or_default();
        let mut newc = self.connect(new, left()).await?;
        // The replica's gtid_current_pos (what it applied, and what it wrote itself when it
        // was primary before) must cover every domain of the old primary's binlog.
        let mut have = String::new();
        loop {
            let current: Option<String> = newc.query_first("SELECT @@GLOBAL.gtid_current_pos").await.map_err(|e| format!("{new}: {e}"))?;
            have = current.unwrap_or(have);
            if super::gtid::covers(&have, &pos) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("replica {new} (at {have}) did not reach the primary's position {pos} within the cutover budget"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for sql in ["STOP SLAVE", "RESET SLAVE ALL"] {
            newc.query_drop(sql).await.map_err(|e| format!("{new}: {sql}: {e}"))?;
        }
        if let Some(s) = &semisync {
            s.make_primary(&mut newc).await;
        }
        newc.query_drop("SET GLOBAL read_only = OFF").await.map_err(|e| format!("{new}: read_only: {e}"))?;
        Ok(semisync)
    }

    /// Makes `addr` refuse writes: `read_only=ON`, then ends every other session of the
    /// backend account there (that account may write despite `read_only` when it holds
    /// READ_ONLY ADMIN) and waits until they are gone, so no late commit follows.
    pub(super) async fn fence(&self, c: &mut Conn, addr: &str, within: Duration) -> Result<(), String> {
        let work = async {
            c.query_drop("SET GLOBAL read_only = ON").await.map_err(|e| format!("{addr}: read_only: {e}"))?;
            let list = "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND ID <> CONNECTION_ID() AND COMMAND NOT LIKE 'Binlog Dump%'";
            let ids: Vec<u64> = c.query(list).await.map_err(|e| format!("{addr}: {e}"))?;
            for id in ids {
                let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
            }
            loop {
                let left: Vec<u64> = c.query(list).await.map_err(|e| format!("{addr}: {e}"))?;
                if left.is_empty() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(within, work).await.map_err(|_| format!("{addr}: fencing did not finish in time"))?
    }

    pub(super) async fn repoint(&self, replica: &str, primary: &str, use_gtid: &str, semisync: bool) -> Result<(), String> {
        let (host, port) = parse_host_port(primary)?;
        let mut c = self.connect(replica, Duration::from_secs(5)).await?;
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={port}, MASTER_USER={}, MASTER_PASSWORD={}, MASTER_USE_GTID={use_gtid}",
            q(&host),
            q(&self.backend.user),
            q(&self.password)
        );
        for sql in ["STOP SLAVE", "SET GLOBAL read_only = ON"] {
            c.query_drop(sql).await.map_err(|e| format!("{sql}: {e}"))?;
        }
        if semisync {
            // A replica must not wait for semi-sync acks of its own (it would stall applying).
            let _ = c.query_drop("SET GLOBAL rpl_semi_sync_master_enabled = OFF").await;
            let _ = c.query_drop("SET GLOBAL rpl_semi_sync_slave_enabled = ON").await;
        }
        c.query_drop(change).await.map_err(|e| format!("CHANGE MASTER: {e}"))?;
        c.query_drop("START SLAVE").await.map_err(|e| format!("START SLAVE: {e}"))
    }
}

/// Semi-synchronous replication settings carried from an old primary to the new one.
#[derive(Debug, Clone)]
pub(super) struct SemiSync {
    wait_point: String,
    timeout_ms: u64,
}

impl SemiSync {
    /// The primary's settings when it has semi-sync enabled (`None` otherwise or when the
    /// server has no semi-sync support).
    pub(super) async fn of_primary(c: &mut Conn) -> Option<SemiSync> {
        Self::read(c, "rpl_semi_sync_master_enabled").await
    }

    /// Settings for a promoted replica that had the semi-sync replica side on.
    pub(super) async fn of_replica(c: &mut Conn) -> Option<SemiSync> {
        Self::read(c, "rpl_semi_sync_slave_enabled").await
    }

    async fn read(c: &mut Conn, enabled_var: &str) -> Option<SemiSync> {
        let sql = format!("SELECT @@{enabled_var}, @@rpl_semi_sync_master_wait_point, @@rpl_semi_sync_master_timeout");
        let row: Option<(i64, String, u64)> = c.query_first(sql).await.ok().flatten();
        row.filter(|r| r.0 == 1).map(|(_, wait_point, timeout_ms)| SemiSync { wait_point, timeout_ms })
    }

    /// Turns the primary side on (best effort: logged, never fatal).
    pub(super) async fn make_primary(&self, c: &mut Conn) {
        let wait_point = if self.wait_point.eq_ignore_ascii_case("AFTER_COMMIT") { "AFTER_COMMIT" } else { "AFTER_SYNC" };
        for sql in [
            "SET GLOBAL rpl_semi_sync_slave_enabled = OFF".to_string(),
            format!("SET GLOBAL rpl_semi_sync_master_wait_point = {wait_point}"),
            format!("SET GLOBAL rpl_semi_sync_master_timeout = {}", self.timeout_ms),
            "SET GLOBAL rpl_semi_sync_master_enabled = ON".to_string(),
        ] {
            if let Err(e) = c.query_drop(&sql).await {
                tracing::warn!(error = %e, %sql, "semi-sync setting not applied on the new primary");
            }
        }
    }
}
