//! MariaDB GTID positions (`domain-server-seq,domain-server-seq`) and how they compare.
//!
//! Contract: pure. A position covers another when, for every replication domain of the
//! other, its sequence number there is at least as high. The server id does not matter: a
//! server that was primary holds its own transactions in `gtid_current_pos` (not in
//! `gtid_slave_pos`, which is why a switch back must not wait with MASTER_GTID_WAIT).

use std::collections::BTreeMap;

/// Sequence number per domain; malformed entries are skipped.
pub fn parse(pos: &str) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for g in pos.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = g.splitn(3, '-');
        let (Some(d), Some(_server), Some(n)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if let (Ok(d), Ok(n)) = (d.parse::<u32>(), n.parse::<u64>()) {
            let e = out.entry(d).or_insert(0);
            *e = (*e).max(n);
        }
    }
    out
}

/// Whether `have` holds every transaction of `want`, domain by domain.
pub fn covers(have: &str, want: &str) -> bool {
    let have = parse(have);
    parse(want).iter().all(|(d, n)| have.get(d).is_some_and(|h| h >= n))
}

/// A total to rank candidates by how much they applied (summed over domains).
pub fn score(pos: &str) -> u64 {
    parse(pos).values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_per_domain_whatever_the_server() {
        assert!(covers("0-1-177", "0-1-177"));
        assert!(covers("0-2-178", "0-1-177"), "a later transaction of another server");
        assert!(!covers("0-1-176", "0-1-177"));
        assert!(covers("0-1-5,1-2-9", "1-2-9"));
        assert!(!covers("0-1-500", "0-1-5,1-2-9"), "domain 1 missing");
        assert!(covers("anything", ""));
        assert!(!covers("", "0-1-1"));
        assert_eq!(score("0-1-23,1-2-5"), 28);
        assert_eq!(score("garbage,0-1-x"), 0);
    }
}
