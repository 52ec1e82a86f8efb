//! UTC timestamps for humans, without a date crate.
//!
//! Contract: [`format_utc_ms`] turns Unix milliseconds into `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339,
//! whole seconds, proleptic Gregorian calendar); it is total (never panics) for every `u64`.

/// `at_ms` (Unix time in milliseconds) as `2023-11-14T22:13:20Z`.
pub fn format_utc_ms(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Year, month (1-12) and day (1-31) of the `days`-th day after 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_timestamps() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_ms(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(format_utc_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc_ms(4_102_444_799_999), "2099-12-31T23:59:59Z");
        assert_eq!(format_utc_ms(951_782_399_000), "2000-02-28T23:59:59Z");
    }

    #[test]
    fn never_panics_at_the_edge() {
        assert!(format_utc_ms(u64::MAX).ends_with('Z'));
    }
}
