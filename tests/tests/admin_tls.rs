//! The admin port over TLS: three members talk Raft, forward requests and run a switchover
//! over mutual TLS; slotctl speaks https with a client certificate; clients without a
//! certificate, with one from another CA, or speaking plain http are refused.

use serde_json::json;
use slotgate_tests::certs::Certs;
use slotgate_tests::cluster::{TestCluster, ADMIN_TOKEN};
use slotgate_tests::proxy::ProxyOptions;
use slotgate_tests::MariaDb;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn members_and_slotctl_speak_mutual_tls_and_others_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = Certs::make(dir.path())?;
    let (p, r) = MariaDb::start_with_replica().await?;
    p.exec("CREATE DATABASE co").await?;
    let opts = ProxyOptions {
        sections: format!(
            "[admin_tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nrequire_client_cert = true\n",
            certs.node_cert.display(),
            certs.node_key.display(),
            certs.ca.display()
        ),
        ..ProxyOptions::default()
    };
    let mut c = TestCluster::new(&[&p], 3, 3, opts)?;
    c.use_tls(certs.client(Some((&certs.client_cert, &certs.client_key)))?);
    for i in 0..3 {
        c.start_node(i).await?;
    }
    // Raft over TLS: a leader is elected and every member applies the first version.
    let leader = c.wait_leader(SECS).await?;
    for i in 0..3 {
        c.wait_version(i, 1, SECS).await?;
    }
    // A write through a follower is forwarded to the leader over TLS.
    let follower = (leader + 1) % 3;
    let (s, v) = c.command(follower, "add-r", json!({"kind": "add_replica", "shard": "s0", "addr": r.addr()})).await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post(follower, "/switchover", &json!({"shard": "s0", "to": r.addr()})).await?;
    assert_eq!(s, 200, "a switchover forwarded and run over TLS: {v}");
    let mut conn = c.node(0)?.conn(Some("co")).await?;
    mysql_async::prelude::Queryable::query_drop(&mut conn, "CREATE TABLE t (id INT PRIMARY KEY)").await?;

    // slotctl over https with the client certificate.
    let slotctl = slotgate_tests::slotctl_bin();
    let out = std::process::Command::new(&slotctl)
        .args(["--cluster", &c.cluster_urls(), "--token", ADMIN_TOKEN, "--ca"])
        .arg(&certs.ca)
        .arg("--cert")
        .arg(&certs.client_cert)
        .arg("--key")
        .arg(&certs.client_key)
        .args(["shard", "list"])
        .output()?;
    assert!(out.status.success(), "slotctl over TLS: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&r.addr()), "{}", String::from_utf8_lossy(&out.stdout));

    // Refused: no client certificate, a certificate of another CA, plain http.
    let url = format!("https://127.0.0.1:{}/topology", c.admin_port(leader));
    let anonymous = certs.client(None)?;
    assert!(anonymous.get(&url).bearer_auth(ADMIN_TOKEN).send().await.is_err(), "a client without a certificate got in");
    let outsider = certs.client(Some((&certs.outsider_cert, &certs.outsider_key)))?;
    assert!(outsider.get(&url).bearer_auth(ADMIN_TOKEN).send().await.is_err(), "a certificate of another CA got in");
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/topology", c.admin_port(leader))).bearer_auth(ADMIN_TOKEN).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "plain http got an answer");
    let out = std::process::Command::new(&slotctl)
        .args(["--cluster", &c.cluster_urls(), "--token", ADMIN_TOKEN, "--timeout", "2", "--ca"])
        .arg(&certs.ca)
        .args(["shard", "list"])
        .output()?;
    assert!(!out.status.success(), "slotctl without a client certificate got in");
    Ok(())
}
