//! The slot function: `slot = CRC32(key) % slot_count`, exactly what MariaDB's and MySQL's
//! `CRC32(key) % slot_count` compute, so operators can find a slot's rows in plain SQL.
//!
//! Contract (public, pinned by tests against a real MariaDB): CRC-32 is the IEEE/zlib one;
//! integers are hashed as their decimal text (`CRC32(42) = CRC32('42')`), strings as their
//! bytes, decimals as the text they were written with.

/// A shard key's value, as a statement or a bound parameter gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Int(i64),
    UInt(u64),
    /// A string literal's bytes (in the connection character set, utf8mb4).
    Bytes(Vec<u8>),
    /// A decimal number as written (`1.50`).
    Decimal(String),
}

impl KeyValue {
    /// The bytes CRC32 is computed over.
    pub fn hash_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            KeyValue::Int(i) => i.to_string().into_bytes().into(),
            KeyValue::UInt(u) => u.to_string().into_bytes().into(),
            KeyValue::Bytes(b) => b.as_slice().into(),
            KeyValue::Decimal(d) => d.as_bytes().into(),
        }
    }
}

/// CRC-32 (IEEE, as zlib and MariaDB's CRC32()).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The slot a key belongs to. `slot_count` must be at least 1.
pub fn slot_of(key: &KeyValue, slot_count: u32) -> u32 {
    crc32(&key.hash_bytes()) % slot_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by MariaDB: SELECT CRC32(x), CRC32(x) % 1024.
    #[test]
    fn pinned_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"42"), 841265288);
        assert_eq!(crc32(b"MySQL"), 3259397556);
        assert_eq!(slot_of(&KeyValue::Int(42), 1024), 841265288 % 1024);
        assert_eq!(slot_of(&KeyValue::Bytes(b"MySQL".to_vec()), 1024), 3259397556 % 1024);
        assert_eq!(slot_of(&KeyValue::Int(-7), 1024), crc32(b"-7") % 1024);
        assert_eq!(slot_of(&KeyValue::UInt(u64::MAX), 16), crc32(b"18446744073709551615") % 16);
    }
}
