//! `slotgate users-sync`: accounts created on the home shard log in through slotgate after a
//! sync (and a restart); what the users file cannot check is skipped with the reason.

use anyhow::Context;
use mysql_async::prelude::*;
use slotgate_tests::cluster::free_port;
use slotgate_tests::proxy::{config_text, ProxyOptions, PASSWORD, USER};
use slotgate_tests::{slotgate_bin, MariaDb};
use std::time::{Duration, Instant};

fn login(port: u16, user: &str, password: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some(user)).pass(Some(password)).prefer_socket(false).into()
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_of_the_home_shard_log_in_after_a_sync() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    db.exec("CREATE USER 'sync_a'@'%' IDENTIFIED BY 'pw-a'").await?;
    db.exec("CREATE USER 'sync_b'@'%' IDENTIFIED BY 'pw-b'").await?;
    db.exec("CREATE USER 'sync_b'@'localhost' IDENTIFIED BY 'other'").await?;
    db.exec("CREATE USER 'sock'@'localhost' IDENTIFIED VIA unix_socket").await?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let users = dir.path().join("users.toml");
    let opts = ProxyOptions { listen: Some(format!("127.0.0.1:{port}")), ..ProxyOptions::default() };
    let (config, users_text) = config_text(&[&db], &opts, &users.display().to_string())?;
    std::fs::write(&users, &users_text)?;
    let config_path = dir.path().join("slotgate.toml");
    std::fs::write(&config_path, config)?;
    let bin = slotgate_bin();
    let sync = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.arg("--config").arg(&config_path).arg("users-sync").args(args);
        c.output()
    };

    // A dry run writes nothing.
    let out = sync(&["--dry-run"])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("added: ") && text.contains("sync_a"), "{text}");
    assert_eq!(std::fs::read_to_string(&users)?, users_text, "the dry run left the file alone");

    let out = sync(&[])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("skipped sock@localhost: authenticates with unix_socket"), "{text}");
    assert!(text.contains("skipped sync_b: has accounts on several hosts with different passwords"), "{text}");
    let written = std::fs::read_to_string(&users)?;
    assert!(!written.contains("pw-a"), "hashes only");
    let parsed = slotgate_proxy::config::users::Users::parse(&written)?;
    assert!(parsed.get("sync_a").is_some() && parsed.get(USER).is_some() && parsed.get("sync_b").is_none());

    // The node started with the synced file lets sync_a in with its MariaDB password.
    let _node = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting slotgate")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match mysql_async::Conn::new(login(port, "sync_a", "pw-a")).await {
            Ok(c) => break c,
            Err(e) => anyhow::ensure!(Instant::now() < deadline, "sync_a could not log in: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let one: Option<i64> = conn.query_first("SELECT 1").await?;
    assert_eq!(one, Some(1));
    match mysql_async::Conn::new(login(port, "sync_a", "wrong")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("a wrong password must be refused with 1045: {:?}", other.map(|_| ())),
    }
    mysql_async::Conn::new(login(port, USER, PASSWORD)).await.context("the file's own user still logs in")?;
    Ok(())
}
