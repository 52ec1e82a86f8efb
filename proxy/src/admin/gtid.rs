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

/// The candidate (name, position) whose position covers every other one, domain by
/// domain: promoting it loses nothing another candidate holds. Ties go to the first.
/// Positions that are ahead in different domains have no such candidate: an error naming
/// them (promoting either would lose the other's transactions).
pub fn most_advanced(candidates: &[(String, String)]) -> Result<usize, String> {
    if candidates.is_empty() {
        return Err("no replica answered".into());
    }
    candidates
        .iter()
        .position(|(_, pos)| candidates.iter().all(|(_, other)| covers(pos, other)))
        .ok_or_else(|| {
            let list: Vec<String> = candidates.iter().map(|(n, p)| format!("{n} at {p:?}")).collect();
            format!(
                "no replica holds every transaction the others hold, domain by domain ({}); promote one by hand with slotctl switchover after reconciling them",
                list.join(", ")
            )
        })
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
    }

    #[test]
    fn the_most_advanced_candidate_covers_every_domain() {
        let c = |v: &[(&str, &str)]| v.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect::<Vec<_>>();
        assert_eq!(most_advanced(&c(&[("a", "0-1-5"), ("b", "0-1-7")])), Ok(1));
        assert_eq!(most_advanced(&c(&[("a", "0-1-7,1-1-3"), ("b", "0-1-7")])), Ok(0));
        // A sum over domains would pick b (10 > 9) and lose a's domain-0 transactions.
        let err = most_advanced(&c(&[("a", "0-1-8,1-1-1"), ("b", "0-1-2,1-1-8")])).unwrap_err();
        assert!(err.contains("domain by domain"), "{err}");
        assert_eq!(most_advanced(&c(&[("a", "0-1-3"), ("b", "0-1-3")])), Ok(0));
        assert!(most_advanced(&[]).is_err());
    }
}
