//! Session state tracking (issue #13, item 8): a client that negotiates CLIENT_SESSION_TRACK
//! is told in OK packets what changed in its session (system variables, schema, "state
//! changed"), as MariaDB tells it, although slotgate runs the session on pooled connections.

use mysql_async::prelude::*;
use mysql_common::constants::CapabilityFlags;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{TestProxy, PASSWORD, USER};
use slotgate_tests::raw::{lenenc, RawClient};

fn lenenc_bytes(p: &[u8], at: usize) -> (Vec<u8>, usize) {
    let (n, at) = lenenc(p, at);
    let at = at.min(p.len());
    let end = (at + n as usize).min(p.len());
    (p[at..end].to_vec(), end)
}

/// An OK packet (0x00, or 0xFE ending a result) as one line: status flags, warnings, info and
/// the tracked changes (sorted: their order carries no meaning).
fn describe_ok(p: &[u8]) -> String {
    if p.get(0) == Some(&0xff) {
        return format!("ERR {}", u16::from_le_bytes([p[1], p[2]]));
    }
    let (affected, at) = lenenc(p, 1);
    let (_, at) = lenenc(p, at);
    let status = u16::from_le_bytes([p[at], p[at + 1]]);
    let warnings = u16::from_le_bytes([p[at + 2], p[at + 3]]);
    let (info, at) = lenenc_bytes(p, at + 4);
    let mut changes = Vec::new();
    if status & 0x4000 != 0 {
        let (state, _) = lenenc_bytes(p, at);
        let mut i = 0;
        while i < state.len() {
            let kind = state[i];
            let (data, next) = lenenc_bytes(&state, i + 1);
            i = next;
            match kind {
                0 => {
                    let (name, at) = lenenc_bytes(&data, 0);
                    let (value, _) = lenenc_bytes(&data, at);
                    let (name, value) = (String::from_utf8_lossy(&name), String::from_utf8_lossy(&value));
                    if name == "last_gtid" {
                        // Each run writes its own transactions: the GTID's shape, not its number.
                        let parts: Vec<&str> = value.split('-').collect();
                        assert!(parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok()), "last_gtid {value}");
                        changes.push("var last_gtid=<gtid>".into());
                    } else {
                        changes.push(format!("var {name}={value}"));
                    }
                }
                1 => changes.push(format!("schema {}", String::from_utf8_lossy(&lenenc_bytes(&data, 0).0))),
                2 => changes.push(format!("state {}", String::from_utf8_lossy(&data))),
                k => changes.push(format!("kind {k} {data:?}")),
            }
        }
        changes.sort();
    }
    // Status without the flags that follow the transaction and the pool, not the tracker.
    format!("OK affected={affected} status={:#06x} warnings={warnings} info={:?} changes={changes:?}", status & 0x4000, String::from_utf8_lossy(&info))
}

/// What one tracking session answers, statement by statement.
async fn transcript(port: u16, user: &str, password: &str) -> anyhow::Result<Vec<String>> {
    let caps = CapabilityFlags::CLIENT_SESSION_TRACK | CapabilityFlags::CLIENT_DEPRECATE_EOF | CapabilityFlags::CLIENT_MULTI_RESULTS;
    // Logging in with a database: what the login's OK reports.
    let c = RawClient::login_caps(port, user, password, false, caps, Some("trk2")).await?;
    let mut out = vec![format!("login trk2 -> {}", describe_ok(&c.login_ok))];
    drop(c);
    let mut c = RawClient::login_caps(port, user, password, false, caps, None).await?;
    let statements = [
        "DO 1",
        "USE trk1",
        "SET NAMES latin1",
        "SET autocommit = 0",
        "SET autocommit = 1",
        "SET time_zone = '+01:00'",
        "SET time_zone = 'bogus'",
        "SET sql_mode = 'ANSI'",
        "SET session_track_system_variables = 'sql_mode,time_zone'",
        "SET sql_mode = ''",
        "SET @@session.time_zone = 'SYSTEM', SESSION sql_mode = 'TRADITIONAL'",
        "SET session_track_schema = OFF",
        "USE trk2",
        "SET session_track_schema = ON",
        "SET session_track_state_change = ON",
        "SET @u = 1",
        "USE trk1",
        "SET session_track_system_variables = '*'",
        "SET max_join_size = 1000",
        "SET NAMES utf8mb4",
        "CREATE TABLE IF NOT EXISTS trk1.t (a INT)",
        "INSERT INTO trk1.t VALUES (1), (2)",
        "SELECT a FROM trk1.t",
        "UPDATE trk1.t SET a = 5 WHERE a = 99",
        "DELETE FROM trk1.t WHERE a = 2",
        "SET session_track_system_variables = ''",
        "SET time_zone = '+02:00'",
    ];
    for sql in statements {
        let mut q = vec![0x03];
        q.extend_from_slice(sql.as_bytes());
        let mut p = c.command(&q).await?;
        if p.get(0) != Some(&0) && p.get(0) != Some(&0xff) {
            // A result set: skip to its terminating OK (0xFE, short of a row's length).
            loop {
                p = c.read_packet().await?.1;
                if p.get(0) == Some(&0xfe) && p.len() < 0xffffff {
                    break;
                }
            }
        }
        out.push(format!("{sql} -> {}", describe_ok(&p)));
    }
    // COM_INIT_DB reports the schema too.
    let mut q = vec![0x02];
    q.extend_from_slice(b"trk2");
    out.push(format!("COM_INIT_DB trk2 -> {}", describe_ok(&c.command(&q).await?)));
    Ok(out)
}

#[tokio::test]
async fn session_changes_are_tracked_as_on_mariadb() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE trk1").await?;
    p.query_drop("CREATE DATABASE trk2").await?;
    let direct = transcript(s0.port(), s0.user(), s0.password()).await?;
    p.query_drop("DROP TABLE trk1.t").await?;
    let through = transcript(proxy.mysql_port, USER, PASSWORD).await?;
    for (d, t) in direct.iter().zip(&through) {
        eprintln!("direct:  {d}\nthrough: {t}");
    }
    assert_eq!(through, direct);
    Ok(())
}
