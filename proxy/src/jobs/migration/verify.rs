//! The verifier of a migration: per moving slot and table, the row count and an
//! order-independent checksum of the rows, on the source and on the target as of one binlog
//! position.
//!
//! Contract: [`checksums`] runs inside the caller's snapshot transaction (the caller opens one
//! on the source at position P, brings the applier exactly to P, then opens one on the
//! target); [`compare`] reports every slot whose count or checksum differs, in one sentence.

use super::tables::TableInfo;
use super::{cell, MigrationError};
use crate::backend::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::BTreeMap;

/// Per slot: (rows, XOR of row checksums, sum of row checksums).
pub type Sums = BTreeMap<u32, (u64, u64, u64)>;

pub async fn checksums(conn: &mut Conn, table: &TableInfo, slot_count: u32, slots: &str) -> Result<Sums, MigrationError> {
    let row_text = table
        .columns
        .iter()
        .map(|c| format!("IFNULL(HEX(CAST({} AS BINARY)), 'N')", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let key = quote_ident(&table.columns[table.key].name);
    let sql = format!(
        "SELECT CRC32({key}) % {slot_count} AS s, COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', {row_text}))), SUM(CRC32(CONCAT_WS(',', {row_text}))) FROM {} WHERE {} GROUP BY s",
        table.quoted,
        table.slot_filter(slot_count, slots)
    );
    let rows: Vec<mysql_async::Row> = conn.query(sql).await?;
    rows.iter().map(|r| Ok((cell::<u32>(r, 0)?, (cell::<u64>(r, 1)?, cell::<u64>(r, 2)?, cell::<u64>(r, 3)?)))).collect()
}

/// `Ok` when both sides agree, else a sentence naming the differing slots.
pub fn compare(table: &TableInfo, source: &Sums, target: &Sums) -> Result<(), String> {
    let mut bad = Vec::new();
    for slot in source.keys().chain(target.keys()).collect::<std::collections::BTreeSet<_>>() {
        let s = source.get(slot).copied().unwrap_or_default();
        let t = target.get(slot).copied().unwrap_or_default();
        if s != t {
            bad.push(format!("slot {slot}: {} rows on the source, {} on the target{}", s.0, t.0, if s.0 == t.0 { " (contents differ)" } else { "" }));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("verification of {} failed: {}", table.name(), bad.join("; ")))
    }
}
