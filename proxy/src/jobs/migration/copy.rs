//! The row copier of a migration: a consistent snapshot of the source, and the moving slots'
//! rows of each table copied into the target in primary-key order, in bounded batches, with
//! idempotent writes (REPLACE).
//!
//! Contract: [`snapshot`] opens a `WITH CONSISTENT SNAPSHOT` transaction on the source and
//! returns the binlog position it corresponds to (MariaDB's `binlog_snapshot_file/position`);
//! [`copy_table`] reads only inside that snapshot, so the target holds the source's rows as of
//! that position, and the binlog applier continues from it. Memory is bounded by two batches (one written while the next is read).

use super::binlog::BinlogPos;
use super::tables::TableInfo;
use super::{cell, Control, MigrationError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

/// Opens the snapshot transaction on `source` and returns its binlog position.
pub async fn snapshot(source: &mut Conn) -> Result<BinlogPos, MigrationError> {
    source.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    source.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
    let raw: Vec<Row> = source.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let rows = raw.iter().map(|r| Ok((cell::<String>(r, 0)?, cell::<String>(r, 1)?))).collect::<Result<Vec<_>, MigrationError>>()?;
    let get = |name: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    match (get("binlog_snapshot_file"), get("binlog_snapshot_position").and_then(|p| p.parse().ok())) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(BinlogPos { file, pos }),
        _ => Err(MigrationError::Check("the source does not report the binlog position of a consistent snapshot (binlog_snapshot_file); it must be MariaDB with log_bin on".into())),
    }
}

/// Copies `table`'s rows of the moving slots; returns how many rows were written. The next
/// batch is read from the source while the current one is written to the target.
pub async fn copy_table(source: &mut Conn, target: &mut Conn, table: &TableInfo, slot_count: u32, slots: &str, ctl: &Control) -> Result<u64, MigrationError> {
    let batch = ctl.settings.batch_rows.clamp(1, 60_000 / table.columns.len().max(1));
    let filter = table.slot_filter(slot_count, slots);
    let pk = table.pk_list();
    let mut copied = 0u64;
    let mut rows = fetch(source, table, &filter, &pk, batch, None).await?;
    while !rows.is_empty() {
        ctl.check()?;
        let last: Option<Vec<Value>> = rows.last().map(|r| table.pk.iter().map(|i| r[*i].clone()).collect());
        let (written, next) = tokio::join!(write_batch(target, table, &rows), fetch(source, table, &filter, &pk, batch, last.as_deref()));
        written?;
        copied += rows.len() as u64;
        ctl.copied(rows.len() as u64).await;
        rows = next?;
    }
    Ok(copied)
}

/// The next `batch` rows of the moving slots after the key `last`, in primary-key order.
async fn fetch(source: &mut Conn, table: &TableInfo, filter: &str, pk: &str, batch: usize, last: Option<&[Value]>) -> Result<Vec<Vec<Value>>, MigrationError> {
    let (cond, params) = after(pk, last);
    let sql = format!("SELECT {} FROM {} WHERE {filter}{cond} ORDER BY {pk} LIMIT {batch}", table.column_list(), table.quoted);
    let rows: Vec<Row> = source.exec(sql, params).await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// The keyset condition `AND (pk) > (last key)` and its parameters (none before the first batch).
fn after(pk: &str, last: Option<&[Value]>) -> (String, Vec<Value>) {
    match last {
        None => (String::new(), Vec::new()),
        Some(k) => (format!(" AND ({pk}) > ({})", vec!["?"; k.len()].join(", ")), k.to_vec()),
    }
}

async fn write_batch(target: &mut Conn, table: &TableInfo, rows: &[Vec<Value>]) -> Result<(), MigrationError> {
    let one = format!("({})", vec!["?"; table.columns.len()].join(", "));
    let sql = format!("REPLACE INTO {} ({}) VALUES {}", table.quoted, table.column_list(), vec![one; rows.len()].join(", "));
    let params: Vec<Value> = rows.iter().flatten().cloned().collect();
    target.exec_drop(sql, params).await?;
    Ok(())
}

/// Rows of the moving slots on `conn` (an estimate for progress: the source's count).
pub async fn count(conn: &mut Conn, table: &TableInfo, slot_count: u32, slots: &str) -> Result<u64, MigrationError> {
    let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", table.quoted, table.slot_filter(slot_count, slots));
    let row: Option<Row> = conn.query_first(sql).await?;
    Ok(row.map(|r| cell::<u64>(&r, 0)).transpose()?.unwrap_or(0))
}

/// Deletes the moving slots' rows of `table` on `conn` in primary-key batches (cleanup on the
/// source after the cutover, or the target's copies on a rollback); returns how many.
pub async fn delete_slots(conn: &mut Conn, table: &TableInfo, slot_count: u32, slots: &str, ctl: &Control) -> Result<u64, MigrationError> {
    let batch = ctl.settings.batch_rows.clamp(1, 10_000);
    let filter = table.slot_filter(slot_count, slots);
    let pk = table.pk_list();
    let mut deleted = 0u64;
    let mut last: Option<Vec<Value>> = None;
    loop {
        ctl.check_running()?;
        let (cond, params) = after(&pk, last.as_deref());
        let sql = format!("SELECT {pk} FROM {} WHERE {filter}{cond} ORDER BY {pk} LIMIT {batch}", table.quoted);
        let keys: Vec<Row> = conn.exec(sql, params).await?;
        if keys.is_empty() {
            return Ok(deleted);
        }
        let n = keys.len();
        let one = format!("({})", vec!["?"; table.pk.len()].join(", "));
        let params: Vec<Value> = keys.into_iter().flat_map(Row::unwrap).collect();
        last = Some(params[params.len().saturating_sub(table.pk.len())..].to_vec());
        let sql = format!("DELETE FROM {} WHERE ({pk}) IN ({}) AND {filter}", table.quoted, vec![one; n].join(", "));
        conn.exec_drop(sql, params).await?;
        deleted += n as u64;
        ctl.throttle(n as u64).await;
    }
}

