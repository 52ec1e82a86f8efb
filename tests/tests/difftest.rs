//! The generative differential tester in CI: a bounded number of seeded sessions through
//! slotgate (4 shards) against one reference MariaDB (see `slotgate_tests::difftest`), and
//! again over a meta cluster after a shard split and after the merge back.
//! `scripts/difftest.sh` runs it longer.

use serde_json::{json, Value};
use slotgate_tests::cluster::TestCluster;
use slotgate_tests::difftest::fixture::{Fixture, RULES};
use slotgate_tests::difftest::{run, run_on, Settings};
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::time::{Duration, Instant};

async fn check(settings: &Settings, f: Option<&Fixture>, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let (reports, ran, refused) = match f {
        Some(f) => run_on(settings, f).await?,
        None => run(settings).await?,
    };
    eprintln!("difftest ({what}): {ran} sessions ({refused} refused with 1235) in {:.1?}, seed {}, {} differences", started.elapsed(), settings.seed, reports.len());
    assert!(reports.is_empty(), "{what}: {} session(s) answered differently from one MariaDB:\n{}", reports.len(), reports.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n\n"));
    assert!(ran > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_sessions_answer_as_one_mariadb() -> anyhow::Result<()> {
    check(&Settings::from_env(500), None, "4 shards").await
}

/// Waits until migration `id` ends; its last state.
async fn finished(c: &TestCluster<'_>, id: u64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (s, m) = c.get(0, &format!("/migrations/{id}")).await?;
        if s == 200 && matches!(m["phase"].as_str(), Some("done" | "failed" | "cancelled")) {
            return Ok(m);
        }
        anyhow::ensure!(Instant::now() < deadline, "migration {id} did not end: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_sessions_answer_as_one_mariadb_after_a_split_and_a_merge_back() -> anyhow::Result<()> {
    let (a, b, spare) = tokio::try_join!(MariaDb::start(), MariaDb::start(), MariaDb::start())?;
    let c = TestCluster::start(&[&a, &b], 1, 1, ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await?;
    c.wait_leader(Duration::from_secs(20)).await?;
    c.wait_version(0, 1, Duration::from_secs(20)).await?;
    let f = Fixture::over(c.node(0)?.url(Some("dt"))).await?;
    let mut settings = Settings::from_env(300);

    // s0 (slots 0-511) splits: 256-511 move, with their rows, to the spare as s2.
    let (s, v) = c.post(0, "/shards/split", &json!({"shard": "s0", "into": "s2", "primary": spare.addr()})).await?;
    anyhow::ensure!(s == 200, "split: {v}");
    let end = finished(&c, v["id"].as_u64().unwrap_or(0)).await?;
    assert_eq!((end["phase"].clone(), end["slot_list"].clone()), (json!("done"), json!("256-511")), "{end}");
    check(&settings, Some(&f), "after a split").await?;

    // And merged back: s2 leaves the topology.
    let (s, v) = c.post(0, "/shards/merge", &json!({"from": "s2", "into": "s0"})).await?;
    anyhow::ensure!(s == 200, "merge: {v}");
    let end = finished(&c, v["id"].as_u64().unwrap_or(0)).await?;
    assert_eq!(end["phase"], json!("done"), "{end}");
    settings.seed = settings.seed.wrapping_add(1_000_000);
    check(&settings, Some(&f), "after the merge back").await
}
