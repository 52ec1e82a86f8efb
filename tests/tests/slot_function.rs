//! The slot function is a public contract: `slot_of` must equal MariaDB's own
//! `CRC32(key) % slot_count` for integers (hashed as decimal text), negative integers,
//! strings, unicode and the empty string.

use mysql_async::prelude::*;
use slotgate_shared::{slot_of, KeyValue};
use slotgate_tests::mariadb::MariaDb;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[tokio::test]
async fn slot_of_matches_mariadb_crc32() {
    let m = MariaDb::start().await.unwrap();
    let mut c = m.conn().await.unwrap();
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    let mut keys: Vec<(KeyValue, String)> = Vec::new();
    for i in (-1500i64..1500).chain([i64::MIN + 1, i64::MAX, 0, 1 << 40]) {
        keys.push((KeyValue::Int(i), i.to_string()));
    }
    for u in [u64::MAX, 1 << 63, 12345678901234567890] {
        keys.push((KeyValue::UInt(u), u.to_string()));
    }
    let strings: Vec<String> = (0..1500)
        .map(|i| format!("user-{i}"))
        .chain(["", " ", "é", "日本語", "😀", "a'b", "back\\slash", "MySQL", "tab\tnew\nline"].iter().map(|s| s.to_string()))
        .collect();
    for s in &strings {
        keys.push((KeyValue::Bytes(s.as_bytes().to_vec()), quote(s)));
    }
    for d in ["1.50", "-0.25", "3.14159"] {
        keys.push((KeyValue::Decimal(d.to_string()), d.to_string()));
    }
    for n in [1024u32, 16, 7] {
        for chunk in keys.chunks(250) {
            let exprs: Vec<String> = chunk.iter().map(|(_, sql)| format!("CRC32({sql}) % {n}")).collect();
            let row: mysql_async::Row = c.query_first(format!("SELECT {}", exprs.join(", "))).await.unwrap().unwrap();
            for (i, (key, sql)) in chunk.iter().enumerate() {
                let want: u64 = row.get(i).unwrap();
                assert_eq!(u64::from(slot_of(key, n)), want, "CRC32({sql}) % {n}");
            }
        }
    }
    assert!(keys.len() > 3000);
}
