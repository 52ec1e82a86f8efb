//! Automatic split (`[autosplit]`, off by default): when one shard carries more than
//! `load_share` of the cluster's counted load for `for_ms`, the meta leader splits it by load
//! onto the first spare shard of `spares` that the topology does not use yet.
//!
//! Contract: the load of a check is the growth of the per-slot counters since the previous
//! check (`jobs::load`), ignored below `min_load` (an idle cluster never splits); a counter
//! that went down (a node restarted) starts the measurement again. At most one controller
//! action runs at a time: nothing is started while any migration or slot move is active,
//! and the measurement starts again after each split. The split is an ordinary
//! `shard split --by-load` whose commands carry the actor `autosplit` in the history; a
//! leader change starts the measurement again on the new leader.

use super::Jobs;
use serde::Deserialize;
use slotgate_shared::api::{SlotCount, SplitRequest};
use slotgate_shared::Topology;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The actor the controller's commands carry.
pub const ACTOR: &str = "autosplit";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutosplitSettings {
    #[serde(default)]
    pub enabled: bool,
    /// The share (0..1) of the load above which a shard is hot.
    #[serde(default = "default_load_share")]
    pub load_share: f64,
    /// The least load (statements + rows written) between two checks that counts.
    #[serde(default = "default_min_load")]
    pub min_load: u64,
    /// How long a shard must stay hot before it is split.
    #[serde(default = "default_for_ms")]
    pub for_ms: u64,
    #[serde(default = "default_check_interval_ms")]
    pub check_interval_ms: u64,
    /// Servers ready to become shards, used in order.
    #[serde(default)]
    pub spares: Vec<SpareShard>,
}

impl Default for AutosplitSettings {
    fn default() -> Self {
        AutosplitSettings {
            enabled: false,
            load_share: default_load_share(),
            min_load: default_min_load(),
            for_ms: default_for_ms(),
            check_interval_ms: default_check_interval_ms(),
            spares: Vec::new(),
        }
    }
}

fn default_load_share() -> f64 {
    0.75
}
fn default_min_load() -> u64 {
    1000
}
fn default_for_ms() -> u64 {
    300_000
}
fn default_check_interval_ms() -> u64 {
    10_000
}

/// `[[autosplit.spares]]`: a server that can become a new shard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpareShard {
    pub id: String,
    pub primary: String,
    #[serde(default)]
    pub replicas: Vec<String>,
}

impl AutosplitSettings {
    /// The key that is wrong and the sentence that says why, if any.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.load_share > 0.0 && self.load_share < 1.0) {
            return Err(("autosplit.load_share", format!("must be between 0 and 1 (exclusive), not {}", self.load_share)));
        }
        if self.check_interval_ms == 0 {
            return Err(("autosplit.check_interval_ms", "must be above 0".into()));
        }
        if self.enabled && self.spares.is_empty() {
            return Err(("autosplit.spares", "autosplit.enabled needs at least one [[autosplit.spares]] server to split onto".into()));
        }
        Ok(())
    }
}

/// The controller's measurement (pure: fed samples, it says when to split what).
pub struct Controller {
    settings: AutosplitSettings,
    last: Option<BTreeMap<u32, SlotCount>>,
    hot_since: HashMap<String, Instant>,
}

/// A decision: split `shard`, balancing `window` (the load since the previous check).
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub shard: String,
    pub window: BTreeMap<u32, SlotCount>,
}

impl Controller {
    pub fn new(settings: AutosplitSettings) -> Controller {
        Controller { settings, last: None, hot_since: HashMap::new() }
    }

    /// Starts the measurement again.
    pub fn reset(&mut self) {
        self.last = None;
        self.hot_since.clear();
    }

    /// Takes one sample of the cumulative counters at `now`.
    pub fn observe(&mut self, now: Instant, t: &Topology, sums: BTreeMap<u32, SlotCount>) -> Option<Decision> {
        let last = self.last.replace(sums.clone())?;
        let mut window = BTreeMap::new();
        for (slot, c) in &sums {
            let before = last.get(slot).copied().unwrap_or(SlotCount { slot: *slot, statements: 0, rows_written: 0 });
            if c.statements < before.statements || c.rows_written < before.rows_written {
                // A node restarted (or left the sums): measure again from here.
                self.hot_since.clear();
                return None;
            }
            let d = SlotCount { slot: *slot, statements: c.statements - before.statements, rows_written: c.rows_written - before.rows_written };
            if d.load() > 0 && *slot < t.slot_count {
                window.insert(*slot, d);
            }
        }
        let total: u64 = window.values().map(SlotCount::load).sum();
        if total < self.settings.min_load {
            self.hot_since.clear();
            return None;
        }
        let mut per_shard: BTreeMap<usize, u64> = BTreeMap::new();
        for c in window.values() {
            *per_shard.entry(t.shard_of_slot(c.slot)).or_default() += c.load();
        }
        let hot: Vec<String> = per_shard
            .iter()
            .filter(|(_, load)| **load as f64 > self.settings.load_share * total as f64)
            .filter_map(|(i, _)| t.shards.get(*i).map(|s| s.id.clone()))
            .collect();
        self.hot_since.retain(|shard, _| hot.contains(shard));
        for shard in &hot {
            self.hot_since.entry(shard.clone()).or_insert(now);
        }
        let due = Duration::from_millis(self.settings.for_ms);
        let shard = hot.into_iter().find(|s| self.hot_since.get(s).is_some_and(|since| now.duration_since(*since) >= due))?;
        Some(Decision { shard, window })
    }
}

/// The first spare the topology does not use yet (absent, or present without slots).
fn next_spare<'a>(t: &Topology, spares: &'a [SpareShard]) -> Option<&'a SpareShard> {
    spares.iter().find(|sp| match t.shards.iter().position(|s| s.id == sp.id) {
        None => true,
        Some(i) => (0..t.slot_count).all(|slot| t.shard_of_slot(slot) != i),
    })
}

/// Runs the controller while this node leads; returns when `cancel` fires.
pub async fn run(jobs: Jobs, settings: AutosplitSettings, cancel: CancellationToken) {
    let mut controller = Controller::new(settings.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(settings.check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_no_spare = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let meta = &jobs.sw.meta;
        if !meta.is_leader() {
            controller.reset();
            continue;
        }
        let Some(t) = meta.current().topology.clone() else { continue };
        if t.migrations.iter().any(|m| !m.phase.finished()) || !t.moving.is_empty() {
            controller.reset();
            continue;
        }
        let (_, sums) = super::load::cluster_load(&jobs.sw.metrics, Some(meta)).await;
        let Some(decision) = controller.observe(Instant::now(), &t, sums) else { continue };
        let Some(spare) = next_spare(&t, &settings.spares) else {
            if !warned_no_spare {
                tracing::warn!(shard = %decision.shard, "autosplit: the shard is hot but every spare shard is in use; add [[autosplit.spares]]");
                warned_no_spare = true;
            }
            continue;
        };
        let req = SplitRequest {
            shard: decision.shard.clone(),
            into: spare.id.clone(),
            primary: Some(spare.primary.clone()),
            replicas: spare.replicas.clone(),
            by_load: true,
            actor: Some(ACTOR.into()),
        };
        match crate::admin::migrations::split(&jobs, &req, Some(&decision.window)).await {
            Ok(view) => tracing::info!(shard = %decision.shard, into = %spare.id, migration = view.migration.id, slots = %view.slot_list, "autosplit: split started"),
            Err(e) => tracing::warn!(shard = %decision.shard, into = %spare.id, error = %e, "autosplit: the split was refused"),
        }
        controller.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotgate_shared::{Shard, ShardState};

    fn topo() -> Topology {
        let shard = |id: &str| Shard { id: id.into(), state: ShardState::Active, primary: "127.0.0.1:1".into(), replicas: vec![] };
        Topology::uniform(8, vec![shard("s0"), shard("s1")], "s0", vec![]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sums(v: &[(u32, u64)]) -> BTreeMap<u32, SlotCount> {
        v.iter().map(|(s, n)| (*s, SlotCount { slot: *s, statements: *n, rows_written: 0 })).collect()
    }

    #[test]
    fn a_shard_hot_for_long_enough_is_split_and_noise_or_restarts_start_again() {
        let settings = AutosplitSettings { enabled: true, load_share: 0.7, min_load: 100, for_ms: 1000, ..Default::default() };
        let t = topo();
        let mut c = Controller::new(settings);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Slots 0-3 are s0's. The first sample only sets the baseline.
        assert_eq!(c.observe(at(0), &t, sums(&[(1, 1000), (5, 1000)])), None);
        // 900 on s0, 100 on s1: hot from 500 ms on, but not yet for 1 s.
        assert_eq!(c.observe(at(500), &t, sums(&[(1, 1900), (5, 1100)])), None);
        assert_eq!(c.observe(at(1000), &t, sums(&[(1, 2800), (5, 1200)])), None);
        let d = c.observe(at(1500), &t, sums(&[(1, 3700), (5, 1300)])).expect("split after 1 s hot");
        assert_eq!(d.shard, "s0");
        assert_eq!(d.window, sums(&[(1, 900), (5, 100)]));
        // Too little load between checks: not hot, the clock starts again.
        c.reset();
        assert_eq!(c.observe(at(0), &t, sums(&[(1, 0)])), None);
        assert_eq!(c.observe(at(500), &t, sums(&[(1, 50)])), None);
        assert_eq!(c.observe(at(2000), &t, sums(&[(1, 1050)])), None, "hot since 2000 only");
        // A node restart (a counter went down) starts the measurement again.
        assert_eq!(c.observe(at(2500), &t, sums(&[(1, 10)])), None);
        assert_eq!(c.observe(at(3000), &t, sums(&[(1, 1010)])), None);
        assert_eq!(c.observe(at(3600), &t, sums(&[(1, 2010)])), None, "hot since 3000 only");
        assert!(c.observe(at(4100), &t, sums(&[(1, 3010)])).is_some());
        // Balanced load never splits.
        c.reset();
        let mut n = 0;
        for ms in (0..5000).step_by(500) {
            n += 1000;
            assert_eq!(c.observe(at(ms), &t, sums(&[(1, n), (6, n)])), None);
        }
    }

    #[test]
    fn spares_are_used_in_order_and_settings_are_checked() {
        let t = topo();
        let spare = |id: &str| SpareShard { id: id.into(), primary: "127.0.0.1:2".into(), replicas: vec![] };
        let spares = vec![spare("s1"), spare("s2")];
        assert_eq!(next_spare(&t, &spares).map(|s| s.id.as_str()), Some("s2"), "s1 owns slots");
        assert!(AutosplitSettings { enabled: true, ..Default::default() }.validate().is_err());
        assert!(AutosplitSettings { load_share: 1.5, ..Default::default() }.validate().is_err());
        assert!(AutosplitSettings { enabled: true, spares, ..Default::default() }.validate().is_ok());
    }
}
