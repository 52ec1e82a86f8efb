//! The binlog applier of a migration: reads the source's binlog from a position (as a replica
//! would, with mysql_async's binlog stream), keeps the row events of the migrated tables whose
//! shard key hashes into the moving slots, and applies them to the target idempotently
//! (REPLACE by primary key for inserts and updates' after images, DELETE by primary key for
//! deletes and for updates that move a row out of the slots or change its key).
//!
//! Contract: events are applied in binlog order, the source's transactions grouped into target
//! transactions that commit at source transaction boundaries (nothing reads the target's
//! copies before the cutover); [`Applier::run_until`] commits and returns at the first
//! transaction boundary at or after the position asked for, so after it returns the target
//! holds, for the moving slots, exactly the source's rows as of that position (given a copy
//! taken at or before the start position).
//! Replaying from an earlier position converges to the same rows. DDL on a migrated table
//! stops the applier with [`MigrationError::Ddl`]; a purged binlog or a lost source is an
//! error, never a silent gap.

use super::tables::{ColumnKind, TableInfo};
use super::MigrationError;
use crate::backend::quote_ident;
use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Value};
use slotgate_shared::{slot_of, KeyValue};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A binlog position; ordered by file (same base name, numbered) then offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl BinlogPos {
    /// The source's current write position (`SHOW MASTER STATUS`).
    pub async fn current(conn: &mut Conn) -> Result<BinlogPos, MigrationError> {
        let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
        let row = row.ok_or_else(|| MigrationError::Check("the source has no binary log (log_bin is OFF); start it with --log-bin".into()))?;
        let file: String = row.get_opt(0).and_then(Result::ok).unwrap_or_default();
        let pos: u64 = row.get_opt(1).and_then(Result::ok).unwrap_or(0);
        Ok(BinlogPos { file, pos })
    }
}

/// A rotate event's file name without what follows it in the event (MariaDB sends the
/// fake rotate with its 4 checksum bytes after the name, which may hold digits, dots or
/// bytes that are not UTF-8): the current file's base name, a dot, and as many digits as the
/// current file's extension has (more only when the name carries nothing after them).
/// Binlog files have one base name per server, so the base is matched, not searched for.
fn file_name(raw: &str, current: &str) -> String {
    let Some((base, ext)) = current.rsplit_once('.') else { return raw.to_string() };
    let Some(rest) = raw.strip_prefix(base).and_then(|r| r.strip_prefix('.')) else {
        // Another base name: not a file of this server's sequence; keep what was sent.
        return raw.to_string();
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let exact = digits.len() == rest.len();
    let keep = if digits.len() > ext.len() && !exact { ext.len() } else { digits.len() };
    format!("{base}.{}", &digits[..keep])
}

/// Counters of what the applier did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub events: u64,
    pub rows: u64,
}

/// Rows the applier groups in one target transaction at most.
const GROUP_ROWS: u64 = 5000;

pub struct Applier {
    stream: BinlogStream,
    target: Conn,
    tables: HashMap<(String, String), TableInfo>,
    moving: Vec<bool>,
    slot_count: u32,
    pos: BinlogPos,
    /// Inside a transaction of the source's binlog (a position mid-group is not a stop).
    in_tx: bool,
    /// The target's transaction is open: opened by the first row of a moving slot, it groups
    /// the source's transactions and commits when the applier stops (or holds `GROUP_ROWS`),
    /// since nothing reads the target's copies before the cutover; the source's other
    /// transactions cost the target nothing.
    target_tx: bool,
    /// Rows in the open target transaction, and in the source transaction being read.
    group_rows: u64,
    tx_rows: u64,
    pub applied: Applied,
    /// Timestamp (Unix seconds) of the last event read.
    pub last_event_at: u32,
}

impl Applier {
    /// Starts reading `source`'s binlog at `from` (the connection becomes the stream).
    pub async fn start(source: Conn, target: Conn, server_id: u32, from: BinlogPos, tables: Vec<TableInfo>, moving: Vec<bool>, slot_count: u32) -> Result<Applier, MigrationError> {
        let request = BinlogStreamRequest::new(server_id).with_filename(from.file.as_bytes()).with_pos(from.pos);
        let stream = source.get_binlog_stream(request).await.map_err(|e| {
            MigrationError::Source(format!("cannot read the source's binlog from {from} ({e}); the backend account needs REPLICATION SLAVE, and the binlog must not be purged"))
        })?;
        let tables = tables.into_iter().map(|t| ((t.database.clone(), t.table.clone()), t)).collect();
        Ok(Applier { stream, target, tables, moving, slot_count, pos: from, in_tx: false, target_tx: false, group_rows: 0, tx_rows: 0, applied: Applied::default(), last_event_at: 0 })
    }

    pub fn position(&self) -> &BinlogPos {
        &self.pos
    }

    /// Applies events until the applier stands at a transaction boundary at or after `want`,
    /// or fails when `deadline` passes first.
    pub async fn run_until(&mut self, want: &BinlogPos, deadline: Instant) -> Result<(), MigrationError> {
        while self.in_tx || self.pos < *want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MigrationError::Timeout(format!("the binlog applier stands at {} and did not reach {want} in time", self.pos)));
            }
            let next = tokio::time::timeout(left.min(Duration::from_secs(30)), self.stream.next()).await;
            let event = match next {
                Err(_) => continue,
                Ok(None) => return Err(MigrationError::Source("the source closed its binlog stream".into())),
                Ok(Some(Err(e))) => return Err(MigrationError::Source(format!("reading the source's binlog at {}: {e}", self.pos))),
                Ok(Some(Ok(ev))) => ev,
            };
            self.handle(&event).await?;
        }
        self.flush().await?;
        tracing::debug!(at = %self.pos, want = %want, events = self.applied.events, rows = self.applied.rows, "binlog applier reached its target position");
        Ok(())
    }

    async fn handle(&mut self, event: &Event) -> Result<(), MigrationError> {
        let header = event.header();
        self.last_event_at = header.timestamp();
        self.applied.events += 1;
        let raw = header.event_type_raw();
        // Only the events this applier needs are decoded: MariaDB's own types (GTID,
        // annotate rows, checkpoints) are skipped as positions.
        const QUERY: u8 = 2;
        const ROTATE: u8 = 4;
        const XID: u8 = 16;
        const ROWS: [u8; 6] = [23, 24, 25, 30, 31, 32];
        let data = if matches!(raw, QUERY | ROTATE | XID) || ROWS.contains(&raw) {
            event.read_data().map_err(|e| MigrationError::Source(format!("cannot decode a binlog event at {}: {e}", self.pos)))?
        } else {
            None
        };
        match data {
            Some(EventData::RotateEvent(r)) => {
                self.pos = BinlogPos { file: file_name(&r.name(), &self.pos.file), pos: r.position() };
                return Ok(());
            }
            Some(EventData::QueryEvent(q)) => {
                let sql = q.query();
                let word = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                match word.as_str() {
                    "BEGIN" | "XA" => {
                        self.in_tx = true;
                        self.tx_rows = 0;
                    }
                    "COMMIT" => self.commit().await?,
                    "ROLLBACK" => {
                        // Logged only for transactions that also wrote non-transactional tables.
                        if self.tx_rows > 0 {
                            return Err(MigrationError::Source(format!("a transaction rolled back on the source at {} after its rows reached the target; the migration starts again", self.pos)));
                        }
                        self.in_tx = false;
                    }
                    _ => self.check_ddl(&String::from_utf8_lossy(q.schema_raw()), &sql)?,
                }
            }
            Some(EventData::XidEvent(_)) => self.commit().await?,
            Some(EventData::RowsEvent(rows)) => self.rows(&rows).await?,
            _ => {}
        }
        if header.log_pos() != 0 {
            self.pos.pos = u64::from(header.log_pos());
        }
        Ok(())
    }

    /// Opens the target's transaction before the first row it applies.
    async fn begin(&mut self) -> Result<(), MigrationError> {
        if !self.target_tx {
            self.target.query_drop("BEGIN").await?;
            self.target_tx = true;
        }
        self.in_tx = true;
        self.tx_rows += 1;
        self.group_rows += 1;
        Ok(())
    }

    /// The end of a source transaction; the target's group commits once it is big.
    async fn commit(&mut self) -> Result<(), MigrationError> {
        self.in_tx = false;
        self.tx_rows = 0;
        if self.group_rows >= GROUP_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Commits the target's open group (at a source transaction boundary).
    async fn flush(&mut self) -> Result<(), MigrationError> {
        if self.target_tx {
            self.target.query_drop("COMMIT").await?;
            self.target_tx = false;
            self.group_rows = 0;
        }
        Ok(())
    }

    /// A statement that is not a transaction boundary: DDL naming a migrated table stops the
    /// migration (the copy's definition no longer holds).
    fn check_ddl(&self, schema: &str, sql: &str) -> Result<(), MigrationError> {
        let lower = sql.to_ascii_lowercase();
        for t in self.tables.values() {
            let table = t.table.to_ascii_lowercase();
            let named = lower.contains(&table) && (schema == t.database || lower.contains(&t.database.to_ascii_lowercase()));
            if named {
                return Err(MigrationError::Ddl(format!("{} was changed on the source during the migration ({}); retry the migration", t.name(), sql.chars().take(200).collect::<String>())));
            }
        }
        Ok(())
    }

    async fn rows(&mut self, rows: &RowsEventData<'_>) -> Result<(), MigrationError> {
        let Some(tme) = self.stream.get_tme(rows.table_id()) else {
            return Err(MigrationError::Source(format!("a row event at {} has no table map", self.pos)));
        };
        let key = (tme.database_name().into_owned(), tme.table_name().into_owned());
        let Some(table) = self.tables.get(&key).cloned() else { return Ok(()) };
        if tme.columns_count() as usize != table.columns.len() {
            return Err(MigrationError::Ddl(format!("{} has {} columns in the binlog but {} when the migration started; retry the migration", table.name(), tme.columns_count(), table.columns.len())));
        }
        let mut changes = Vec::new();
        for row in rows.rows(tme) {
            let (before, after) = row.map_err(|e| MigrationError::Source(format!("cannot decode a row of {} at {}: {e}", table.name(), self.pos)))?;
            let before = before.map(|r| values(&table, r)).transpose()?;
            let after = after.map(|r| values(&table, r)).transpose()?;
            changes.push((before, after));
        }
        // Rows applied belong to a transaction on the target (MariaDB logs BEGIN/COMMIT around
        // non-transactional tables' rows too).
        for (before, after) in changes {
            let inside = |v: &Vec<Value>| self.is_moving(&table, v);
            let before_in = before.as_ref().is_some_and(inside);
            let after_in = after.as_ref().is_some_and(inside);
            if before_in || after_in {
                self.begin().await?;
            }
            if let Some(b) = before.as_ref().filter(|_| before_in) {
                let key_changed = after.as_ref().is_none_or(|a| table.pk.iter().any(|i| a[*i] != b[*i]));
                if key_changed || !after_in {
                    delete(&mut self.target, &table, b).await?;
                    self.applied.rows += 1;
                }
            }
            if let Some(a) = after.filter(|_| after_in) {
                replace(&mut self.target, &table, a).await?;
                self.applied.rows += 1;
            }
        }
        Ok(())
    }

    fn is_moving(&self, table: &TableInfo, row: &[Value]) -> bool {
        let key = match &row[table.key] {
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Bytes(b) => KeyValue::Bytes(b.clone()),
            _ => return false,
        };
        let slot = slot_of(&key, self.slot_count) as usize;
        self.moving.get(slot).copied().unwrap_or(false)
    }

    /// `Err` when the target no longer answers (checked on every catch-up pass, so that a lost
    /// target is noticed even when no row comes to apply).
    pub async fn ping(&mut self) -> Result<(), MigrationError> {
        match tokio::time::timeout(Duration::from_secs(5), self.target.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MigrationError::Backend(format!("the target does not answer: {e}"))),
            Err(_) => Err(MigrationError::Backend("the target did not answer a ping within 5 s".into())),
        }
    }

    pub async fn close(self) {
        let _ = self.stream.close().await;
        let _ = self.target.disconnect().await;
    }
}

/// A row image as values ready to bind, unsigned integers and timestamps fixed up.
fn values(table: &TableInfo, mut row: BinlogRow) -> Result<Vec<Value>, MigrationError> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, col) in table.columns.iter().enumerate() {
        let v = row.take(i).ok_or_else(|| MigrationError::Check(format!("the binlog row image of {} lacks column {}; set binlog_row_image=FULL", table.name(), col.name)))?;
        let v = match v {
            BinlogValue::Value(v) => v,
            other => Value::try_from(other).map_err(|e| MigrationError::Source(format!("column {} of {}: {e}", col.name, table.name())))?,
        };
        out.push(match (col.kind, v) {
            (ColumnKind::Unsigned(64), Value::Int(i)) => Value::UInt(i as u64),
            (ColumnKind::Unsigned(bits), Value::Int(i)) if i < 0 => Value::UInt((i + (1i64 << bits)) as u64),
            (ColumnKind::Unsigned(_), Value::Int(i)) => Value::UInt(i as u64),
            (_, v) => v,
        });
    }
    Ok(out)
}

/// The placeholder of a column's binlog value.
fn placeholder(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Timestamp => "FROM_UNIXTIME(?)",
        _ => "?",
    }
}

async fn replace(target: &mut Conn, table: &TableInfo, row: Vec<Value>) -> Result<(), MigrationError> {
    let marks = table.columns.iter().map(|c| placeholder(c.kind)).collect::<Vec<_>>().join(", ");
    let sql = format!("REPLACE INTO {} ({}) VALUES ({marks})", table.quoted, table.column_list());
    target.exec_drop(sql, row).await?;
    Ok(())
}

async fn delete(target: &mut Conn, table: &TableInfo, row: &[Value]) -> Result<(), MigrationError> {
    let cond = table
        .pk
        .iter()
        .map(|i| format!("{} = {}", quote_ident(&table.columns[*i].name), placeholder(table.columns[*i].kind)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let params: Vec<Value> = table.pk.iter().map(|i| row[*i].clone()).collect();
    target.exec_drop(format!("DELETE FROM {} WHERE {cond}", table.quoted), params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotate_names_lose_their_trailing_bytes() {
        assert_eq!(super::file_name("mariadb-bin.000001K,t", "mariadb-bin.000001"), "mariadb-bin.000001");
        assert_eq!(super::file_name("mariadb-bin.000002", "mariadb-bin.000001"), "mariadb-bin.000002");
        assert_eq!(super::file_name("mariadb-bin.0000017\u{fffd}", "mariadb-bin.000001"), "mariadb-bin.000001");
        // A dot or digits in the checksum bytes do not make another file.
        assert_eq!(super::file_name("mariadb-bin.000001.7\u{fffd}x", "mariadb-bin.000001"), "mariadb-bin.000001");
        assert_eq!(super::file_name("mariadb-bin.0000014.2.", "mariadb-bin.000001"), "mariadb-bin.000001");
        assert_eq!(super::file_name("mariadb-bin.000001\u{fffd}\u{fffd}", "mariadb-bin.000001"), "mariadb-bin.000001");
        assert_eq!(super::file_name("mariadb-bin.1000000", "mariadb-bin.999999"), "mariadb-bin.1000000");
    }
}
