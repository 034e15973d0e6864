//! This machine's wall clock and how its readings are written: Unix time now
//! (seconds, milliseconds, microseconds), UTC dates (through jiff), and the
//! host name that goes with a reading in audit lines and lease holders.
//!
//! Every reading saturates instead of wrapping: a clock before 1970 reads 0,
//! one past what the type holds reads its maximum.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since 1970-01-01T00:00:00Z by this machine's clock (zero if the
/// clock is set before 1970).
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Unix time in whole seconds.
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Unix time in microseconds (signed, as clock offsets are).
pub fn now_us() -> i64 {
    i64::try_from(since_epoch().as_micros()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as a UTC date and time, `2025-03-04 05:06:07 UTC`. A
/// value past year 9999 (only corrupt data holds one) is written as
/// `unix ms N`.
pub fn datetime(unix_ms: u64) -> String {
    match timestamp_ms(unix_ms) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("unix ms {unix_ms}"),
    }
}

/// A Unix second as RFC 3339 UTC, `2020-11-10T16:00:00Z`. A value past year
/// 9999 is written as `unix s N`.
pub fn rfc3339(unix_seconds: u64) -> String {
    match i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
    {
        Some(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("unix s {unix_seconds}"),
    }
}

fn timestamp_ms(unix_ms: u64) -> Option<jiff::Timestamp> {
    // Whole seconds only: the formats above show no fraction, and flooring
    // the milliseconds first keeps a reading from rounding up a second.
    let secs = i64::try_from(unix_ms / 1000).ok()?;
    jiff::Timestamp::from_second(secs).ok()
}

/// This machine's host name (the kernel's, else `$HOSTNAME`), or `None` when
/// neither says one.
pub fn hostname() -> Option<String> {
    let kernel = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().trim().to_string());
    kernel
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_utc() {
        assert_eq!(datetime(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(datetime(1_700_000_000_999), "2023-11-14 22:13:20 UTC");
        assert_eq!(datetime(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(datetime(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(datetime(u64::MAX), format!("unix ms {}", u64::MAX));
        assert_eq!(rfc3339(1_605_024_000), "2020-11-10T16:00:00Z");
        assert_eq!(rfc3339(5_927_868_495), "2157-11-05T14:08:15Z");
        assert_eq!(rfc3339(1_709_208_000), "2024-02-29T12:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("unix s {}", u64::MAX));
    }

    #[test]
    fn readings_agree_with_each_other() {
        let (s, ms, us) = (now_secs(), now_ms(), now_us());
        assert!(s > 1_600_000_000, "{s}");
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1, "{ms} vs {s}");
        assert!(us / 1000 >= i64::try_from(ms).unwrap_or(i64::MAX));
    }

    #[test]
    fn this_machine_has_a_host_name() {
        let host = hostname().unwrap_or_default();
        assert!(!host.is_empty() && host.trim() == host, "{host:?}");
    }
}
