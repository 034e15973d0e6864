//! Operator-facing formatting of durations, sizes, counts and clock times;
//! pure functions so every view says "12s" and "3.2 MiB" the same way.

/// A duration in milliseconds, short: `850ms`, `12s`, `4m05s`, `3h12m`, `2d04h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A time-to-live that may already have run out: `12s`, or `expired`.
pub fn ttl(ms: i64) -> String {
    if ms <= 0 {
        "expired".to_string()
    } else {
        age(ms as u64)
    }
}

/// An optional age, `-` when unknown.
pub fn opt_age(ms: Option<u64>) -> String {
    ms.map(age).unwrap_or_else(|| "-".to_string())
}

/// Bytes in binary units: `512 B`, `3.2 KiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate per second, `-` when unknown.
pub fn rate(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}/s"),
        Some(r) => format!("{r:.1}/s"),
        None => "-".to_string(),
    }
}

/// Unix ms as a UTC wall-clock time, `HH:MM:SS`.
pub fn clock(unix_ms: u64) -> String {
    let s = (unix_ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The first `n` characters of a fingerprint, enough to compare by eye.
pub fn short_fingerprint(fp: &str) -> &str {
    match fp.char_indices().nth(12) {
        Some((i, _)) => &fp[..i],
        None => fp,
    }
}

/// A clock offset in microseconds, signed, in at most 6 characters:
/// `+0.4ms`, `-850ms`, `+3.02s`, `-12.3s`, `+3600s`.
pub fn offset(us: i64) -> String {
    let sign = if us < 0 { '-' } else { '+' };
    let abs = us.unsigned_abs();
    match abs {
        0..9_950 => format!("{sign}{:.1}ms", abs as f64 / 1000.0),
        9_950..999_500 => format!("{sign}{}ms", (abs + 500) / 1000),
        999_500..9_995_000 => format!("{sign}{:.2}s", abs as f64 / 1e6),
        9_995_000..99_950_000 => format!("{sign}{:.1}s", abs as f64 / 1e6),
        _ => format!("{sign}{}s", (abs + 500_000) / 1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_an_operator_would_say_them() {
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_000), "12s");
        assert_eq!(age(245_000), "4m05s");
        assert_eq!(age(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(age(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
        assert_eq!(ttl(-5), "expired");
        assert_eq!(ttl(0), "expired");
    }

    #[test]
    fn sizes_counts_and_times_are_formatted() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(clock(1_700_000_000_000), "22:13:20");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(rate(Some(2.46)), "2.5/s");
        assert_eq!(rate(None), "-");
    }

    #[test]
    fn clock_offsets_fit_six_characters() {
        let cases = [
            (0, "+0.0ms"),
            (400, "+0.4ms"),
            (-9_940, "-9.9ms"),
            (9_950, "+10ms"),
            (-850_000, "-850ms"),
            (999_499, "+999ms"),
            (999_500, "+1.00s"),
            (-3_021_400, "-3.02s"),
            (12_340_000, "+12.3s"),
            (-3_600_000_000, "-3600s"),
        ];
        for (us, want) in cases {
            assert_eq!(offset(us), want, "{us}");
            assert!(offset(us).chars().count() <= 6, "{us}");
        }
    }
}
