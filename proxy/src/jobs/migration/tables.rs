//! What a migration needs to know about a sharded table, read from the source's
//! `information_schema`: its columns in order, its primary key, the shard key column, and how
//! each column's binlog value is written back.
//!
//! Contract: [`TableInfo::read`] refuses, with a sentence that says what to do, a table without
//! a primary key, a shard key of a type whose slot the binlog reader cannot compute exactly
//! (integers and strings only), and column types whose binlog image cannot be written back
//! as is (BIT, old TIME, GEOMETRY). `ensure_on_target` creates a missing table on the target
//! from the source's `SHOW CREATE TABLE` and refuses a different definition.

use super::{cell, MigrationError};
use crate::backend::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// How a column's value is decoded and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Signed integer: as is.
    Signed,
    /// Unsigned integer of this many bits: binlog images carry it as signed.
    Unsigned(u32),
    /// TIMESTAMP: binlog images carry seconds since the epoch.
    Timestamp,
    /// Anything else: as is.
    Other,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub database: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Indices in `columns` of the primary key, in key order.
    pub pk: Vec<usize>,
    /// Index in `columns` of the shard key.
    pub key: usize,
    /// `db`.`t`, quoted.
    pub quoted: String,
}

impl TableInfo {
    pub async fn read(conn: &mut Conn, database: &str, table: &str, key_column: &str) -> Result<TableInfo, MigrationError> {
        let raw: Vec<mysql_async::Row> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (database, table),
            )
            .await?;
        let rows = raw.iter().map(|r| Ok((cell::<String>(r, 0)?, cell::<String>(r, 1)?, cell::<String>(r, 2)?))).collect::<Result<Vec<_>, MigrationError>>()?;
        let name = format!("{database}.{table}");
        if rows.is_empty() {
            return Err(MigrationError::Check(format!("table {name} does not exist on the source shard")));
        }
        let mut columns = Vec::new();
        let mut key = None;
        for (i, (col, data_type, column_type)) in rows.iter().enumerate() {
            let dt = data_type.to_ascii_lowercase();
            let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
            let bits = match dt.as_str() {
                "tinyint" => Some(8),
                "smallint" => Some(16),
                "mediumint" => Some(24),
                "int" | "integer" => Some(32),
                "bigint" => Some(64),
                _ => None,
            };
            if matches!(dt.as_str(), "bit" | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection") {
                return Err(MigrationError::Check(format!(
                    "column {col} of {name} is of type {dt}, which the migration cannot copy from the binlog yet; move this table's rows by hand"
                )));
            }
            let kind = match (bits, unsigned) {
                (Some(b), true) => ColumnKind::Unsigned(b),
                (Some(_), false) => ColumnKind::Signed,
                _ if dt == "timestamp" => ColumnKind::Timestamp,
                _ => ColumnKind::Other,
            };
            if col == key_column {
                let string = matches!(dt.as_str(), "char" | "varchar" | "binary" | "varbinary");
                if bits.is_none() && !string {
                    return Err(MigrationError::Check(format!(
                        "the shard key {col} of {name} is of type {dt}; online migration supports integer and string keys"
                    )));
                }
                key = Some(i);
            }
            columns.push(Column { name: col.clone(), kind });
        }
        let key = key.ok_or_else(|| MigrationError::Check(format!("{name} has no column {key_column} (its shard key)")))?;
        let raw: Vec<mysql_async::Row> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (database, table),
            )
            .await?;
        let pk_cols = raw.iter().map(|r| cell::<String>(r, 0)).collect::<Result<Vec<_>, MigrationError>>()?;
        if pk_cols.is_empty() {
            return Err(MigrationError::Check(format!(
                "{name} has no primary key; online migration copies and replays rows by primary key: add one (ALTER TABLE {name} ADD PRIMARY KEY (...)) and retry"
            )));
        }
        let pk = pk_cols.iter().filter_map(|p| columns.iter().position(|c| &c.name == p)).collect();
        let quoted = format!("{}.{}", quote_ident(database), quote_ident(table));
        Ok(TableInfo { database: database.into(), table: table.into(), columns, pk, key, quoted })
    }

    pub fn name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// `a`, `b`, ...: every column, quoted.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ")
    }

    /// The primary key columns, quoted and comma-separated.
    pub fn pk_list(&self) -> String {
        self.pk.iter().map(|i| quote_ident(&self.columns[*i].name)).collect::<Vec<_>>().join(", ")
    }

    /// `CRC32(key) % n IN (slots)`: the slot function over the table's key.
    pub fn slot_filter(&self, slot_count: u32, slots: &str) -> String {
        format!("CRC32({}) % {slot_count} IN ({slots})", quote_ident(&self.columns[self.key].name))
    }

    /// Creates the table (and its database) on the target if it is missing; refuses a table
    /// whose definition differs from the source's.
    pub async fn ensure_on_target(&self, source: &mut Conn, target: &mut Conn) -> Result<(), MigrationError> {
        let create = show_create(source, &self.quoted).await?.ok_or_else(|| MigrationError::Check(format!("{} vanished from the source", self.name())))?;
        match show_create(target, &self.quoted).await? {
            Some(existing) if normalise(&existing) == normalise(&create) => Ok(()),
            Some(_) => Err(MigrationError::Check(format!(
                "{} exists on the target with another definition than on the source; make them the same (SHOW CREATE TABLE on both) and retry",
                self.name()
            ))),
            None => {
                target.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&self.database))).await?;
                target.query_drop(format!("USE {}", quote_ident(&self.database))).await?;
                target.query_drop(create).await?;
                Ok(())
            }
        }
    }
}

async fn show_create(conn: &mut Conn, quoted: &str) -> Result<Option<String>, MigrationError> {
    match conn.query_first::<mysql_async::Row, _>(format!("SHOW CREATE TABLE {quoted}")).await {
        Ok(Some(row)) => Ok(Some(String::from_utf8_lossy(&cell::<Vec<u8>>(&row, 1)?).into_owned())),
        Ok(None) => Ok(None),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A `CREATE TABLE` without its `AUTO_INCREMENT=n` counter, which differs between shards.
fn normalise(create: &str) -> String {
    create
        .split_whitespace()
        .filter(|w| !w.to_ascii_uppercase().starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn definitions_compare_without_their_counter() {
        let a = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=57 DEFAULT CHARSET=utf8mb4";
        let b = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        assert_eq!(super::normalise(a), super::normalise(b));
        assert_ne!(super::normalise(a), super::normalise(&b.replace("int", "bigint")));
    }
}
