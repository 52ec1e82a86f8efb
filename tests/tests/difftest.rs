//! The generative differential tester in CI: a bounded number of seeded sessions through
//! slotgate (4 shards) against one reference MariaDB (see `slotgate_tests::difftest`).
//! `scripts/difftest.sh` runs it longer.

use slotgate_tests::difftest::{run, Settings};

#[tokio::test(flavor = "multi_thread")]
async fn generated_sessions_answer_as_one_mariadb() -> anyhow::Result<()> {
    let settings = Settings::from_env(500);
    let started = std::time::Instant::now();
    let (reports, ran, refused) = run(&settings).await?;
    eprintln!("difftest: {ran} sessions ({refused} refused with 1235) in {:.1?}, seed {}, {} differences", started.elapsed(), settings.seed, reports.len());
    assert!(reports.is_empty(), "{} session(s) answered differently from one MariaDB:\n{}", reports.len(), reports.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n\n"));
    assert!(ran > 0);
    Ok(())
}
