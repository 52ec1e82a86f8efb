//! Protocol fidelity (issue #13): what stock drivers do must work through slotgate as on
//! MariaDB. Each test runs against real MariaDB servers through a slotgate node.

use mysql_async::prelude::*;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::{TestProxy, PASSWORD, USER};
use slotgate_tests::raw::{err_code, lenenc, RawClient};

#[tokio::test]
async fn stored_program_bodies_are_not_split_without_multi_statements() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    // mysql_async negotiates multi-statements; a raw client does not.
    let mut c = RawClient::login(proxy.mysql_port, USER, PASSWORD).await?;
    let ok = c.command(b"\x03CREATE DATABASE IF NOT EXISTS prog").await?;
    assert_eq!(ok.get(0), Some(&0), "{:?}", String::from_utf8_lossy(&ok));
    let body = "CREATE PROCEDURE prog.p(IN a INT) BEGIN DECLARE x INT DEFAULT 0; IF a > 0 THEN SET x = IF(a > 5, 1, 2); END IF; \
                WHILE x < 3 DO SET x = x + 1; END WHILE; SELECT x, CASE WHEN a = 1 THEN 'one' ELSE 'other' END AS w; END";
    let mut q = vec![0x03];
    q.extend_from_slice(body.as_bytes());
    let ok = c.command(&q).await?;
    assert_eq!(ok.get(0), Some(&0), "CREATE PROCEDURE answered {:?}", String::from_utf8_lossy(&ok));
    let ok = c.command(b"\x03CREATE TRIGGER prog.t BEFORE INSERT ON prog.x FOR EACH ROW BEGIN SET NEW.a = NEW.a + 1; SET NEW.b = 2; END").await?;
    // The table does not exist: MariaDB's own error (1146), not a split into statements (1064).
    assert_eq!(err_code(&ok), Some(1146), "{:?}", String::from_utf8_lossy(&ok));
    // Several real statements are still refused without multi-statements.
    assert_eq!(err_code(&c.command(b"\x03SELECT 1; SELECT 2").await?), Some(1064));
    let mut p = proxy.conn(Some("prog")).await?;
    let row: Option<(i64, String)> = p.query_first("CALL p(1)").await?;
    assert_eq!(row, Some((3, "one".to_string())));
    Ok(())
}

#[tokio::test]
async fn prepared_statements_follow_the_table_and_do_not_leak() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE ps").await?;
    p.query_drop("CREATE TABLE ps.t (a INT)").await?;
    let stmt = p.prep("SELECT * FROM ps.t").await?;
    assert_eq!(stmt.columns().len(), 1);
    p.close(stmt).await?;
    p.query_drop("DROP TABLE ps.t").await?;
    p.query_drop("CREATE TABLE ps.t (a INT, b INT, c INT)").await?;
    // A fresh driver connection (no client-side cache) prepares the same text again.
    let mut q = proxy.conn(None).await?;
    let stmt = q.prep("SELECT * FROM ps.t").await?;
    assert_eq!(stmt.columns().len(), 3, "the prepare describes the table as it is now");
    // Executed, the text sits in the backend connection's statement cache; after the table
    // changes again, a new prepare must not be described from that cache (as
    // mariadb-client-test's test_select_prepare does).
    let _: Vec<mysql_async::Row> = q.exec(&stmt, ()).await?;
    q.close(stmt).await?;
    q.query_drop("DROP TABLE ps.t").await?;
    q.query_drop("CREATE TABLE ps.t (a INT, b INT, c INT, d INT, e INT)").await?;
    let stmt = q.prep("SELECT * FROM ps.t").await?;
    assert_eq!(stmt.columns().len(), 5, "not the cached description of the old table");
    q.query_drop("INSERT INTO ps.t VALUES (1, 2, 3, 4, 5)").await?;
    let rows: Vec<(i32, i32, i32, i32, i32)> = q.exec(&stmt, ()).await?;
    assert_eq!(rows, vec![(1, 2, 3, 4, 5)]);
    q.close(stmt).await?;
    // Prepare and close many times: the backend does not keep them.
    let mut direct = s0.conn().await?;
    let before: Option<(String, i64)> = direct.query_first("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").await?;
    for i in 0..50 {
        let stmt = q.prep(format!("SELECT a + {i} FROM ps.t")).await?;
        q.close(stmt).await?;
    }
    let after: Option<(String, i64)> = direct.query_first("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").await?;
    let (b, a) = (before.map(|r| r.1).unwrap_or(-1), after.map(|r| r.1).unwrap_or(-1));
    assert!(a <= b + 2, "prepared statements leaked on the backend: {b} before, {a} after");
    Ok(())
}

#[tokio::test]
async fn load_data_local_without_the_capability_gets_4166_and_keeps_the_connection() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE ld").await?;
    p.query_drop("CREATE TABLE ld.t (a INT)").await?;
    let mut c = RawClient::login(proxy.mysql_port, USER, PASSWORD).await?;
    let r = c.command(b"\x03LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE ld.t").await?;
    assert_eq!(err_code(&r), Some(4166), "{:?}", String::from_utf8_lossy(&r));
    // Still connected and answering.
    let ok = c.command(b"\x0e").await?;
    assert_eq!(ok.get(0), Some(&0), "COM_PING after the refusal");
    Ok(())
}

#[tokio::test]
async fn field_list_statistics_and_refresh_answer_as_mariadb() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE fl").await?;
    p.query_drop("CREATE TABLE fl.t (id INT PRIMARY KEY, name VARCHAR(10), nick VARCHAR(5))").await?;
    let mut c = RawClient::login(proxy.mysql_port, USER, PASSWORD).await?;
    let ok = c.command(b"\x02fl").await?;
    assert_eq!(ok.get(0), Some(&0));
    // COM_FIELD_LIST t, wildcard n%: two column definitions, then EOF.
    c.write_packet(0, b"\x04t\0n%").await?;
    let mut names = Vec::new();
    loop {
        let (_, packet) = c.read_packet().await?;
        if packet.get(0) == Some(&0xfe) && packet.len() < 9 {
            break;
        }
        assert_ne!(packet.get(0), Some(&0xff), "{:?}", String::from_utf8_lossy(&packet));
        // catalog, schema, table, org_table, name: length-prefixed strings (short here).
        let mut at = 0;
        let mut fields = Vec::new();
        for _ in 0..5 {
            let len = packet[at] as usize;
            fields.push(String::from_utf8_lossy(&packet[at + 1..at + 1 + len]).to_string());
            at += 1 + len;
        }
        names.push(fields[4].clone());
    }
    assert_eq!(names, vec!["name".to_string(), "nick".to_string()]);
    assert_eq!(err_code(&c.command(b"\x04nosuch\0").await?), Some(1146));
    // COM_STATISTICS: the status line.
    let stats = c.command(b"\x09").await?;
    let text = String::from_utf8_lossy(&stats);
    assert!(text.starts_with("Uptime: ") && text.contains("Threads: ") && text.contains("Questions: "), "{text}");
    // COM_REFRESH tables + status: OK; replication resets are refused.
    let flushed = c.command(b"\x07\x14").await?;
    assert_eq!(flushed.get(0), Some(&0), "{:?}", String::from_utf8_lossy(&flushed));
    assert_eq!(err_code(&c.command(b"\x07\x40").await?), Some(1235));
    assert_eq!(c.command(b"\x0e").await?.get(0), Some(&0), "the connection goes on");
    Ok(())
}

/// Reads packets up to and including the next EOF; returns them without the EOF and the EOF's
/// status flags.
async fn until_eof(c: &mut RawClient) -> anyhow::Result<(Vec<Vec<u8>>, u16)> {
    let mut got = Vec::new();
    loop {
        let (_, packet) = c.read_packet().await?;
        assert_ne!(packet.get(0), Some(&0xff), "{:?}", String::from_utf8_lossy(&packet));
        if packet.get(0) == Some(&0xfe) && packet.len() < 9 {
            return Ok((got, u16::from_le_bytes([packet[3], packet[4]])));
        }
        got.push(packet);
    }
}

/// COM_STMT_PREPARE of `sql` on a raw connection; its statement id (the description read).
async fn prepare(c: &mut RawClient, sql: &str) -> anyhow::Result<[u8; 4]> {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    c.write_packet(0, &p).await?;
    let (_, ok) = c.read_packet().await?;
    anyhow::ensure!(ok.get(0) == Some(&0), "prepare {sql}: {:?}", String::from_utf8_lossy(&ok));
    let (cols, params) = (u16::from_le_bytes([ok[5], ok[6]]), u16::from_le_bytes([ok[7], ok[8]]));
    for _ in 0..[params, cols].iter().filter(|n| **n > 0).count() {
        until_eof(c).await?;
    }
    Ok([ok[1], ok[2], ok[3], ok[4]])
}

/// The packets of a cursor session, one line each: what a direct MariaDB and slotgate must
/// both answer. Column definitions are counted, rows given by their bytes; terminators by
/// their warning count and the status bits a cursor changes (CURSOR_EXISTS 0x40,
/// LAST_ROW_SENT 0x80, MORE_RESULTS 0x08, and autocommit 0x02 after the columns); errors by
/// code.
async fn cursor_transcript(port: u16, user: &str, password: &str) -> anyhow::Result<Vec<String>> {
    let mut c = RawClient::login(port, user, password).await?;
    let mut out = Vec::new();
    // Reads one answer to the end: a result's header, its rows and terminator, or OK/ERR.
    async fn answer(c: &mut RawClient, out: &mut Vec<String>) -> anyhow::Result<()> {
        let (_, first) = c.read_packet().await?;
        match first.get(0) {
            Some(0xff) => out.push(format!("ERR {}", u16::from_le_bytes([first[1], first[2]]))),
            Some(0x00) if first.len() > 1 && first.len() < 9 => out.push("OK".into()),
            Some(0xfe) if first.len() < 9 => out.push(format!("EOF w={} st={:#x}", u16::from_le_bytes([first[1], first[2]]), u16::from_le_bytes([first[3], first[4]]) & 0xc8)),
            _ => {
                // A result: its column count, then definitions up to the terminator.
                let (defs, st) = until_eof(c).await?;
                // Not 0x20/0x10 (no index used): slotgate does not pass the backend's
                // query-plan flags on (README, Compatibility).
                out.push(format!("columns {} defs {} st={:#x}", first[0], defs.len(), st & 0xcb));
                if st & 0x40 == 0 {
                    // No cursor: the rows follow.
                    let (rows, st) = until_eof(c).await?;
                    out.push(format!("rows {:?} st={:#x}", rows, st & 0xc8));
                }
            }
        }
        Ok(())
    }
    async fn fetch(c: &mut RawClient, id: [u8; 4], n: u32, out: &mut Vec<String>) -> anyhow::Result<()> {
        let mut f = vec![0x1c];
        f.extend_from_slice(&id);
        f.extend_from_slice(&n.to_le_bytes());
        c.write_packet(0, &f).await?;
        let mut rows = Vec::new();
        loop {
            let (_, p) = c.read_packet().await?;
            match p.get(0) {
                Some(0xff) => {
                    out.push(format!("fetch {n}: ERR {}", u16::from_le_bytes([p[1], p[2]])));
                    return Ok(());
                }
                Some(0xfe) if p.len() < 9 => {
                    out.push(format!("fetch {n}: rows {rows:?} w={} st={:#x}", u16::from_le_bytes([p[1], p[2]]), u16::from_le_bytes([p[3], p[4]]) & 0xc8));
                    return Ok(());
                }
                _ => rows.push(p),
            }
        }
    }
    let exec = |id: [u8; 4], flags: u8| {
        let mut e = vec![0x17];
        e.extend_from_slice(&id);
        e.extend_from_slice(&[flags, 1, 0, 0, 0]);
        e
    };
    let select = prepare(&mut c, "SELECT id, CAST(id AS CHAR) AS s FROM cu.t ORDER BY id").await?;
    // CURSOR_TYPE_READ_ONLY: the header only, then the rows in parts.
    c.write_packet(0, &exec(select, 1)).await?;
    answer(&mut c, &mut out).await?;
    fetch(&mut c, select, 2, &mut out).await?;
    fetch(&mut c, select, 0, &mut out).await?;
    fetch(&mut c, select, 10, &mut out).await?;
    fetch(&mut c, select, 1, &mut out).await?;
    // Executed again, the cursor starts over; COM_STMT_RESET closes it.
    c.write_packet(0, &exec(select, 1)).await?;
    answer(&mut c, &mut out).await?;
    fetch(&mut c, select, 1, &mut out).await?;
    c.write_packet(0, &[0x1a, select[0], select[1], select[2], select[3]]).await?;
    answer(&mut c, &mut out).await?;
    fetch(&mut c, select, 1, &mut out).await?;
    // Without the flag: the whole result with the execute.
    c.write_packet(0, &exec(select, 0)).await?;
    answer(&mut c, &mut out).await?;
    // A statement without a result opens no cursor, whatever the flag.
    let insert = prepare(&mut c, "INSERT INTO cu.t VALUES (10)").await?;
    c.write_packet(0, &exec(insert, 1)).await?;
    answer(&mut c, &mut out).await?;
    fetch(&mut c, insert, 1, &mut out).await?;
    // An empty result: a cursor whose first fetch is its end.
    let empty = prepare(&mut c, "SELECT id FROM cu.t WHERE id > 100").await?;
    c.write_packet(0, &exec(empty, 1)).await?;
    answer(&mut c, &mut out).await?;
    fetch(&mut c, empty, 5, &mut out).await?;
    fetch(&mut c, [99, 0, 0, 0], 1, &mut out).await?;
    c.write_packet(0, b"\x03DELETE FROM cu.t WHERE id = 10").await?;
    answer(&mut c, &mut out).await?;
    Ok(out)
}

/// Cursors (item 3): COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY opens a cursor that
/// COM_STMT_FETCH reads in parts, packet for packet as on MariaDB (status flags, warning
/// counts, errors 1421 for no open cursor and 1243 for an unknown statement).
#[tokio::test]
async fn cursors_answer_packet_for_packet_as_mariadb() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE cu").await?;
    p.query_drop("CREATE TABLE cu.t (id INT PRIMARY KEY)").await?;
    p.query_drop("INSERT INTO cu.t VALUES (1), (2), (3)").await?;
    let direct = cursor_transcript(s0.port(), s0.user(), s0.password()).await?;
    let through = cursor_transcript(proxy.mysql_port, USER, PASSWORD).await?;
    assert!(direct.iter().any(|l| l.contains("st=0x40")), "MariaDB opened a cursor: {direct:#?}");
    assert_eq!(through, direct);
    Ok(())
}

/// KILL (item 4) takes slotgate's connection ids, those of the handshake: KILL QUERY ends
/// the other connection's running statement on its shard, KILL ends the connection, one's own
/// connection answers 1927; unknown ids 1094; KILL USER 1235.
#[tokio::test]
async fn kill_takes_the_handshake_ids() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut a = proxy.conn(None).await?;
    let mut b = proxy.conn(None).await?;
    let a_id = a.id();
    let sleeper = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r: Result<Option<i64>, _> = a.query_first("SELECT SLEEP(60) AS slotgate_kill_test").await;
        (r.map_err(|e| e.to_string()), started.elapsed(), a)
    });
    // Wait (bounded) until the statement runs on the shard.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n: Option<i64> = s0.query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60) AS slotgate_kill_test%'").await?;
        if n == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the SLEEP never reached the shard");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    b.query_drop(format!("KILL QUERY {a_id}")).await?;
    let (r, took, mut a) = sleeper.await?;
    // As on MariaDB 10.11: the backend's 1317.
    assert!(r.as_ref().is_err_and(|e| e.contains("1317")), "{r:?}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    let alive: Option<i64> = a.query_first("SELECT 1").await?;
    assert_eq!(alive, Some(1), "KILL QUERY keeps the connection");
    // KILL <id> ends the connection.
    b.query_drop(format!("KILL {a_id}")).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if a.query_drop("SELECT 1").await.is_err() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the killed connection still answers");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let code = |e: mysql_async::Error| match e {
        mysql_async::Error::Server(e) => e.code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code(b.query_drop(format!("KILL {a_id}")).await.unwrap_err()), 1094, "gone");
    assert_eq!(code(b.query_drop("KILL 4294967295").await.unwrap_err()), 1094);
    assert_eq!(code(b.query_drop("KILL USER app").await.unwrap_err()), 1235);
    b.query_drop("KILL QUERY CONNECTION_ID()").await?;
    assert_eq!(code(b.query_drop("KILL CONNECTION_ID()").await.unwrap_err()), 1927);
    assert!(b.query_drop("SELECT 1").await.is_err(), "killed itself");
    Ok(())
}

/// What a server answers to one raw packet: an error code, another first byte, or "closed"
/// (and whether the connection still answers a COM_PING afterwards).
async fn answer_to(port: u16, user: &str, password: &str, seq: u8, packet: &[u8], prepare: bool) -> String {
    let mut c = RawClient::login(port, user, password).await.expect("login");
    if prepare {
        // Statement 1 with one parameter.
        c.write_packet(0, b"\x16SELECT ?").await.expect("prepare");
        let (_, ok) = c.read_packet().await.expect("prepare answer");
        assert_eq!(ok.get(0), Some(&0));
        until_eof(&mut c).await.expect("params");
        // An id that is the statement's, whatever the server numbered it.
        let id = [ok[1], ok[2], ok[3], ok[4]];
        let mut p = packet.to_vec();
        if p.len() >= 5 {
            p[1..5].copy_from_slice(&id);
        }
        c.write_packet(seq, &p).await.expect("write");
    } else {
        c.write_packet(seq, packet).await.expect("write");
    }
    let first = match tokio::time::timeout(std::time::Duration::from_secs(5), c.read_packet()).await {
        Ok(Ok((_, p))) => err_code(&p).map(|c| c.to_string()).unwrap_or_else(|| format!("0x{:02x}", p.get(0).copied().unwrap_or(0))),
        Ok(Err(_)) => "closed".to_string(),
        Err(_) => "no answer".to_string(),
    };
    let alive = match tokio::time::timeout(std::time::Duration::from_secs(5), c.command(b"\x0e")).await {
        Ok(Ok(p)) => p.get(0) == Some(&0),
        _ => false,
    };
    format!("{first}{}", if alive { "" } else { " then closed" })
}

/// Item 11: malformed commands get the codes MariaDB gives them (1835 malformed, 1210 wrong
/// arguments, 1156 packets out of order), compared with a direct connection.
#[tokio::test]
async fn malformed_commands_get_the_servers_error_codes() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let cases: Vec<(&str, u8, Vec<u8>, bool)> = vec![
        ("execute too short", 0, b"\x17\x01\x00\x00\x00".to_vec(), true),
        ("execute without bound types", 0, b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00".to_vec(), true),
        ("execute with a truncated value", 0, b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\xfe\x00\x05ab".to_vec(), true),
        ("execute with an unknown type", 0, b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x99\x00\x01".to_vec(), true),
        ("command with a wrong sequence id", 3, b"\x03SELECT 1".to_vec(), false),
        ("empty command", 0, Vec::new(), false),
    ];
    let mut differ = Vec::new();
    for (name, seq, packet, prepare) in &cases {
        let direct = answer_to(s0.port(), s0.user(), s0.password(), *seq, packet, *prepare).await;
        let through = answer_to(proxy.mysql_port, USER, PASSWORD, *seq, packet, *prepare).await;
        if direct != through {
            differ.push(format!("{name}: MariaDB {direct}, slotgate {through}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    Ok(())
}

/// An OK packet by its affected rows and insert id, anything else by its error code.
fn describe(p: &[u8]) -> String {
    match p.get(0) {
        Some(0) => {
            let (affected, at) = lenenc(p, 1);
            let (id, _) = lenenc(p, at);
            format!("OK affected={affected} insert_id={id}")
        }
        _ => format!("ERR {:?}", err_code(p)),
    }
}

/// One COM_STMT_BULK_EXECUTE session, as lines: what a direct MariaDB and slotgate must both
/// answer (OK packets by affected rows and insert id, errors by code, then the table).
async fn bulk_transcript(port: u16, user: &str, password: &str, db: &str) -> anyhow::Result<Vec<String>> {
    // Without the capability negotiated: 1295, as MariaDB.
    let mut plain = RawClient::login(port, user, password).await?;
    let mut out = vec![describe(&plain.command(&[0xfa, 1, 0, 0, 0, 0, 0]).await?)];
    let mut c = RawClient::login_with(port, user, password, true).await?;
    let query = |sql: String| {
        let mut q = vec![0x03];
        q.extend_from_slice(sql.as_bytes());
        q
    };
    for sql in [
        format!("CREATE TABLE {db}.b (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))"),
        format!("CREATE TABLE {db}.u (id INT PRIMARY KEY)"),
    ] {
        out.push(describe(&c.command(&query(sql)).await?));
    }
    // INSERT INTO b (v) VALUES (?) over 'a', NULL, 'c' (types sent: VAR_STRING).
    let ins = prepare(&mut c, &format!("INSERT INTO {db}.b (v) VALUES (?)")).await?;
    let mut bulk = vec![0xfa, ins[0], ins[1], ins[2], ins[3], 128, 0, 253, 0];
    bulk.extend_from_slice(&[0, 1, b'a', 1, 0, 1, b'c']);
    out.push(describe(&c.command(&bulk).await?));
    // Again without the types: those bound before.
    let again = vec![0xfa, ins[0], ins[1], ins[2], ins[3], 0, 0, 0, 1, b'd'];
    out.push(describe(&c.command(&again).await?));
    // A duplicate key in the third row: an error, and none of the bulk's rows stay (MariaDB
    // runs a bulk as one statement).
    let uni = prepare(&mut c, &format!("INSERT INTO {db}.u VALUES (?)")).await?;
    let mut dup = vec![0xfa, uni[0], uni[1], uni[2], uni[3], 128, 0, 3, 0];
    for id in [1u32, 2, 1] {
        dup.push(0);
        dup.extend_from_slice(&id.to_le_bytes());
    }
    out.push(describe(&c.command(&dup).await?));
    // Inside a transaction that is then rolled back.
    out.push(describe(&c.command(&query("BEGIN".into())).await?));
    let mut more = vec![0xfa, uni[0], uni[1], uni[2], uni[3], 0, 0];
    for id in [7u32, 8] {
        more.push(0);
        more.extend_from_slice(&id.to_le_bytes());
    }
    out.push(describe(&c.command(&more).await?));
    out.push(describe(&c.command(&query("ROLLBACK".into())).await?));
    // An unknown statement id.
    out.push(describe(&c.command(&[0xfa, 99, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).await?));
    drop(c);
    Ok(out)
}

/// MariaDB bulk execution (item 8): COM_STMT_BULK_EXECUTE runs a prepared statement over
/// rows of parameters, answered as MariaDB answers it, with the same rows in the tables.
#[tokio::test]
async fn bulk_execute_answers_as_mariadb() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let mut p = proxy.conn(None).await?;
    p.query_drop("CREATE DATABASE direct").await?;
    p.query_drop("CREATE DATABASE through").await?;
    let direct = bulk_transcript(s0.port(), s0.user(), s0.password(), "direct").await?;
    let through = bulk_transcript(proxy.mysql_port, USER, PASSWORD, "through").await?;
    assert_eq!(through, direct);
    let rows = |db: &str| format!("SELECT CONCAT((SELECT GROUP_CONCAT(CONCAT(id, ':', IFNULL(v, 'NULL')) ORDER BY id) FROM {db}.b), ' / ', IFNULL((SELECT GROUP_CONCAT(id ORDER BY id) FROM {db}.u), ''))");
    let d: Option<String> = p.query_first(rows("direct")).await?;
    let t: Option<String> = p.query_first(rows("through")).await?;
    assert_eq!(t, d, "the same rows through slotgate as directly");
    assert_eq!(d.as_deref().map(|s| s.starts_with("1:a,2:NULL,3:c,4:d")), Some(true), "{d:?}");
    Ok(())
}

/// Character sets and prepared statements (item 2): an execution after the session changed
/// character_set_results describes its columns in the new one (the backend's cached
/// metadata must not answer), and a prepared `SET ... = ?` is replayed with its value on
/// the next connection the session gets (found by node mysql2's test-charset-results).
#[tokio::test]
async fn executions_follow_the_sessions_character_set() -> anyhow::Result<()> {
    let s0 = MariaDb::start().await?;
    let opts = slotgate_tests::proxy::ProxyOptions { backend_extra: "pool_max = 1\n".into(), ..Default::default() };
    let proxy = TestProxy::start_with(&[&s0], opts).await?;
    let mut a = proxy.conn(None).await?;
    let mut charsets = Vec::new();
    for cs in ["cp1251", "koi8r", "cp866"] {
        a.query_drop(format!("SET character_set_results = {cs}")).await?;
        let mut r = a.exec_iter("SELECT ? AS n", ("x",)).await?;
        charsets.push(r.columns().map(|c| c[0].character_set()).unwrap_or(0));
        r.drop_result().await?;
    }
    assert_eq!(charsets, vec![51, 7, 36], "cp1251, koi8r and cp866 general collations");
    // A prepared SET with a parameter; another session then takes the one pooled connection.
    a.exec_drop("SET character_set_results = ?", ("latin1",)).await?;
    let mut b = proxy.conn(None).await?;
    let cs: Option<String> = b.query_first("SELECT @@character_set_results").await?;
    assert_eq!(cs.as_deref(), Some("utf8mb4"), "b's own session");
    let cs: Option<String> = a.query_first("SELECT @@character_set_results").await?;
    assert_eq!(cs.as_deref(), Some("latin1"), "the prepared SET was replayed with its value");
    Ok(())
}

/// MariaDB's direct execution (Connector/C's mariadb_stmt_execute_direct): COM_STMT_PREPARE
/// and a COM_STMT_EXECUTE naming statement 0xFFFFFFFF ("the one prepared last") sent
/// together, then COM_STMT_CLOSE of it: answered as MariaDB answers them, also after a
/// prepare that failed.
#[tokio::test]
async fn direct_execution_names_the_last_prepared_statement() -> anyhow::Result<()> {
    async fn transcript(port: u16, user: &str, password: &str) -> anyhow::Result<Vec<String>> {
        let mut c = RawClient::login(port, user, password).await?;
        let mut out = Vec::new();
        for sql in ["SELECT 40 + 2 AS answer", "SELECT nosuch FROM nowhere"] {
            let mut p = vec![0x16];
            p.extend_from_slice(sql.as_bytes());
            c.write_packet(0, &p).await?;
            c.write_packet(0, &[0x17, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0]).await?;
            // The prepare's answer.
            let (_, ok) = c.read_packet().await?;
            if ok.get(0) == Some(&0) {
                let (cols, params) = (u16::from_le_bytes([ok[5], ok[6]]), u16::from_le_bytes([ok[7], ok[8]]));
                for _ in 0..[params, cols].iter().filter(|n| **n > 0).count() {
                    until_eof(&mut c).await?;
                }
                out.push(format!("prepared {cols} columns"));
            } else {
                out.push(describe(&ok));
            }
            // The execute's.
            let (_, first) = c.read_packet().await?;
            if first.get(0) == Some(&0xff) {
                out.push(describe(&first));
            } else {
                until_eof(&mut c).await?;
                let (rows, _) = until_eof(&mut c).await?;
                out.push(format!("rows {rows:?}"));
            }
        }
        // Closing "the last" statement, then pinging: the connection goes on.
        c.write_packet(0, &[0x19, 0xff, 0xff, 0xff, 0xff]).await?;
        out.push(describe(&c.command(b"\x0e").await?));
        Ok(out)
    }
    let s0 = MariaDb::start().await?;
    let proxy = TestProxy::start(&[&s0]).await?;
    let direct = transcript(s0.port(), s0.user(), s0.password()).await?;
    let through = transcript(proxy.mysql_port, USER, PASSWORD).await?;
    assert!(direct[1].starts_with("rows"), "{direct:?}");
    assert_eq!(through, direct);
    Ok(())
}
