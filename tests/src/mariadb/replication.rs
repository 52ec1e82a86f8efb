//! GTID replication between harness servers.
//!
//! Contract: [`MariaDb::start_replica_of`] starts a fresh server with the primary's app
//! credentials, points it at the primary with `MASTER_USE_GTID=slave_pos` (replication user
//! `repl`), sets `read_only=ON` and returns once it has caught up. Because every harness server
//! does its user setup with `sql_log_bin=0`, the replica replays the primary's whole binlog
//! (everything tests did before attaching) without conflicts. [`MariaDb::wait_caught_up`]
//! polls until the replica's `@@gtid_slave_pos` covers the primary's `@@gtid_binlog_pos` as it
//! was when the wait began, failing fast on a replication SQL error and with a deadline.

use super::{sql_str, MariaDb, MariaDbOptions, REPL_USER};
use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Default deadline of [`MariaDb::wait_caught_up`].
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The interesting columns of `SHOW SLAVE STATUS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub io_running: String,
    pub sql_running: String,
    pub last_io_error: String,
    pub last_sql_error: String,
}

impl MariaDb {
    /// Starts a primary and a caught-up GTID replica of it.
    pub async fn start_with_replica() -> Result<(MariaDb, MariaDb)> {
        let primary = MariaDb::start().await?;
        let replica = MariaDb::start_replica_of(&primary).await?;
        Ok((primary, replica))
    }

    /// Starts a new server (same app user, password and extra args as `primary`) replicating
    /// from `primary`, and waits until it has caught up.
    pub async fn start_replica_of(primary: &MariaDb) -> Result<MariaDb> {
        let replica = MariaDb::start_with(MariaDbOptions {
            app_user: Some(primary.user.clone()),
            app_password: Some(primary.password.clone()),
            extra_args: primary.extra_args.clone(),
        })
        .await?;
        replica.replicate_from(primary).await?;
        replica.wait_caught_up(primary).await?;
        Ok(replica)
    }

    /// Semi-synchronous replication (AFTER_SYNC) from this primary to `replica`: a commit is
    /// acknowledged once the replica has it. Waits until the replica is a semi-sync client.
    pub async fn enable_semi_sync(&self, replica: &MariaDb) -> Result<()> {
        for sql in [
            "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
            "SET GLOBAL rpl_semi_sync_master_timeout = 60000",
            "SET GLOBAL rpl_semi_sync_master_enabled = ON",
        ] {
            self.root_exec(sql).await?;
        }
        for sql in ["SET GLOBAL rpl_semi_sync_slave_enabled = ON", "STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"] {
            replica.root_exec(sql).await?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let on: Option<(String, String)> = self.root_conn().await?.query_first("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'").await?;
            if on.is_some_and(|(_, v)| v == "1") {
                return Ok(());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "the replica never became a semi-sync client");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes this server a read-only GTID replica of `primary` (`CHANGE MASTER` + `START SLAVE`).
    pub async fn replicate_from(&self, primary: &MariaDb) -> Result<()> {
        let mut conn = self.root_conn().await?;
        let statements = [
            "STOP SLAVE".to_string(),
            format!(
                "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={}, MASTER_USER={}, \
                 MASTER_PASSWORD={}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                sql_str(primary.host()),
                primary.port(),
                sql_str(REPL_USER),
                sql_str(&primary.repl_password)
            ),
            "START SLAVE".to_string(),
            "SET GLOBAL read_only = ON".to_string(),
        ];
        for sql in statements {
            conn.query_drop(&sql).await.with_context(|| {
                format!(
                    "{}: {}",
                    self.addr(),
                    sql.replace(&primary.repl_password, "***")
                )
            })?;
        }
        conn.disconnect().await?;
        Ok(())
    }

    /// Waits (30 s deadline) until this replica has applied everything `primary` had binlogged
    /// when the call began.
    pub async fn wait_caught_up(&self, primary: &MariaDb) -> Result<()> {
        self.wait_caught_up_within(primary, CATCH_UP_TIMEOUT).await
    }

    /// [`wait_caught_up`](Self::wait_caught_up) with an explicit deadline.
    pub async fn wait_caught_up_within(&self, primary: &MariaDb, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let target = primary.gtid_binlog_pos().await?;
        let mut conn = self.root_conn().await?;
        loop {
            let applied = gtid_slave_pos(&mut conn).await?;
            if covers(&applied, &target)? {
                conn.disconnect().await?;
                return Ok(());
            }
            let status = replica_status(&mut conn).await?;
            if let Some(status) = &status {
                if !status.last_sql_error.is_empty() {
                    bail!(
                        "replica {} stopped applying: {}",
                        self.addr(),
                        status.last_sql_error
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "replica {} not caught up with {} after {timeout:?}: gtid_slave_pos={applied:?}, \
                     primary gtid_binlog_pos={target:?}, status={status:?}",
                    self.addr(),
                    primary.addr()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `@@gtid_binlog_pos` (read as root).
    pub async fn gtid_binlog_pos(&self) -> Result<String> {
        let mut conn = self.root_conn().await?;
        let pos: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await?;
        conn.disconnect().await?;
        Ok(pos.unwrap_or_default())
    }

    /// `SHOW SLAVE STATUS` (read as root); `None` when this server is not a replica.
    pub async fn replica_status(&self) -> Result<Option<ReplicaStatus>> {
        let mut conn = self.root_conn().await?;
        let status = replica_status(&mut conn).await?;
        conn.disconnect().await?;
        Ok(status)
    }
}

async fn gtid_slave_pos(conn: &mut Conn) -> Result<String> {
    let pos: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_slave_pos").await?;
    Ok(pos.unwrap_or_default())
}

async fn replica_status(conn: &mut Conn) -> Result<Option<ReplicaStatus>> {
    let row: Option<Row> = conn.query_first("SHOW SLAVE STATUS").await?;
    let Some(row) = row else { return Ok(None) };
    let column = |name: &str| -> String {
        row.get_opt::<Option<String>, _>(name)
            .and_then(|v| v.ok())
            .flatten()
            .unwrap_or_default()
    };
    Ok(Some(ReplicaStatus {
        io_running: column("Slave_IO_Running"),
        sql_running: column("Slave_SQL_Running"),
        last_io_error: column("Last_IO_Error"),
        last_sql_error: column("Last_SQL_Error"),
    }))
}

/// Parses a GTID position (`"0-1-5,1-7-3"`) into the highest sequence number per domain.
pub(crate) fn parse_gtid_pos(pos: &str) -> Result<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for gtid in pos.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let parts: Vec<&str> = gtid.split('-').collect();
        let [domain, _server, seq] = parts[..] else {
            bail!("malformed GTID {gtid:?} in {pos:?}")
        };
        let domain: u32 = domain
            .parse()
            .with_context(|| format!("GTID domain in {gtid:?}"))?;
        let seq: u64 = seq
            .parse()
            .with_context(|| format!("GTID sequence in {gtid:?}"))?;
        let entry = out.entry(domain).or_insert(seq);
        *entry = (*entry).max(seq);
    }
    Ok(out)
}

/// True when position `applied` includes every transaction of position `target`.
pub(crate) fn covers(applied: &str, target: &str) -> Result<bool> {
    let applied = parse_gtid_pos(applied)?;
    Ok(parse_gtid_pos(target)?
        .iter()
        .all(|(domain, seq)| applied.get(domain).is_some_and(|have| have >= seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions() {
        assert!(parse_gtid_pos("").unwrap().is_empty());
        let pos = parse_gtid_pos("0-1-5, 3-9-12,0-2-7").unwrap();
        assert_eq!(pos.into_iter().collect::<Vec<_>>(), vec![(0, 7), (3, 12)]);
        assert!(parse_gtid_pos("0-1").is_err());
        assert!(parse_gtid_pos("x-1-2").is_err());
    }

    #[test]
    fn coverage() {
        assert!(covers("", "").unwrap());
        assert!(covers("0-1-5", "").unwrap());
        assert!(!covers("", "0-1-1").unwrap());
        assert!(covers("0-1-5", "0-1-5").unwrap());
        assert!(!covers("0-1-4", "0-1-5").unwrap());
        assert!(!covers("0-1-9", "0-1-5,1-1-1").unwrap());
        assert!(covers("0-1-9,1-1-1", "0-1-5,1-1-1").unwrap());
    }
}
