//! Leader-run jobs: long tasks the meta leader drives through topology commands, resumed by
//! the next leader from what the topology records. Today: online slot migrations
//! (`migration/`), topology change webhooks (`webhooks.rs`) and the automatic split
//! controller (`autosplit.rs`, over the cluster's per-slot load from `load.rs`). Switchover, failover and slot moves are short cutovers run inside their
//! admin requests (`admin/`).
//!
//! Contract: [`Jobs::run`] watches the topology on every node; on the leader (once it has led
//! for [`SETTLE`], so that a former leader's job has seen it lost the lead and stopped) it
//! starts one job per active migration that no job of this node runs, and keeps each job's
//! live progress for `GET /migrations/{id}`. A job that stopped without finishing (leadership
//! lost, an interrupted cleanup) is started again on the next pass.

pub mod autosplit;
pub mod load;
pub mod migration;
pub mod webhooks;

use crate::admin::Switchover;
use dashmap::DashMap;
use migration::{Control, MigrationSettings, Progress};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a node must have led before it starts (or resumes) jobs.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The jobs of one node.
#[derive(Clone)]
pub struct Jobs {
    pub sw: Switchover,
    pub settings: MigrationSettings,
    /// Migrations whose job runs on this node, with their live progress.
    running: Arc<DashMap<u64, Arc<Mutex<Progress>>>>,
    /// The last progress of jobs that ended here.
    ended: Arc<DashMap<u64, Progress>>,
}

impl Jobs {
    pub fn new(sw: Switchover, settings: MigrationSettings) -> Jobs {
        Jobs { sw, settings, running: Default::default(), ended: Default::default() }
    }

    /// Live progress of migration `id`, when this node runs (or ran) it.
    pub async fn progress(&self, id: u64) -> Option<Progress> {
        let live = self.running.get(&id).map(|p| p.value().clone());
        match live {
            Some(p) => Some(p.lock().await.clone()),
            None => self.ended.get(&id).map(|p| p.clone()),
        }
    }

    /// Starts and resumes jobs while this node leads; returns when `cancel` fires.
    pub async fn run(self, cancel: CancellationToken, tracker: TaskTracker) {
        let mut leading_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            if !self.sw.meta.is_leader() {
                leading_since = None;
                continue;
            }
            let since = *leading_since.get_or_insert_with(Instant::now);
            if since.elapsed() < SETTLE {
                continue;
            }
            let Some(t) = self.sw.meta.current().topology.clone() else { continue };
            for m in t.migrations.iter().filter(|m| !m.phase.finished()) {
                if self.running.contains_key(&m.id) {
                    continue;
                }
                tracing::info!(migration = m.id, phase = m.phase.name(), "migration job starts on this node (the meta leader)");
                let progress = Arc::new(Mutex::new(Progress::default()));
                self.running.insert(m.id, progress.clone());
                let ctl = Control::new(self.sw.clone(), m.id, self.settings.clone(), progress.clone(), cancel.clone());
                let (me, m) = (self.clone(), m.clone());
                tracker.spawn(async move {
                    let id = m.id;
                    let phase = migration::run(ctl, m).await;
                    tracing::info!(migration = id, phase = phase.name(), "migration job ended");
                    let last = progress.lock().await.clone();
                    me.ended.insert(id, last);
                    me.running.remove(&id);
                });
            }
        }
    }
}
