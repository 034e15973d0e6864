//! App versions: parsing (`2`, `v2`, `1.4.0`, `1.5.0-rc1`) and ordering, so
//! a node can tell whether its binary is older than the schema it finds.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// An application version: up to four dot-separated numbers, an optional
/// leading `v`, an optional pre-release suffix after `-` (`1.5.0-rc1`).
/// Compared numerically, missing parts count as 0 (`2` == `2.0`); a
/// pre-release comes before its release (`1.5.0-rc1` < `1.5.0`), and two
/// pre-releases of the same numbers compare by their suffix's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppVersion {
    text: String,
    parts: [u64; 4],
    pre: Option<String>,
}

/// What [`AppVersion::parse`] accepts, for error messages.
pub const ACCEPTED: &str = "1 to 4 dot-separated numbers and an optional -suffix of letters, digits, \
     . or -, e.g. 2, v1.4.0 or 1.5.0-rc1";

impl AppVersion {
    /// Parse a version string. The error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a version; expected {ACCEPTED}");
        let trimmed = text.trim();
        let unprefixed = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let (body, pre) = match unprefixed.split_once('-') {
            Some((body, pre)) => (body, Some(pre)),
            None => (unprefixed, None),
        };
        if let Some(pre) = pre
            && (pre.is_empty()
                || !pre
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
        {
            return Err(bad());
        }
        let mut parts = [0u64; 4];
        let pieces: Vec<&str> = body.split('.').collect();
        if body.is_empty() || pieces.len() > 4 {
            return Err(bad());
        }
        for (slot, piece) in parts.iter_mut().zip(&pieces) {
            *slot = piece.parse().map_err(|_| bad())?;
        }
        Ok(Self {
            text: trimmed.to_string(),
            parts,
            pre: pre.map(str::to_string),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pre-release suffix (`rc1` of `1.5.0-rc1`), if any.
    pub fn pre_release(&self) -> Option<&str> {
        self.pre.as_deref()
    }

    /// The next minor release, written with as many parts as this one
    /// (`1.4.0` → `1.5.0`, `2` → `3`, `v1.4` → `v1.5`, `1.5.0-rc1` →
    /// `1.5.0`: a pre-release is followed by its release).
    pub fn next(&self) -> String {
        let body = self
            .text
            .split_once('-')
            .map_or(self.text.as_str(), |(b, _)| b);
        if self.pre.is_some() {
            return body.to_string();
        }
        let (prefix, numbers) = match body.strip_prefix('v') {
            Some(rest) => ("v", rest),
            None => ("", body),
        };
        let mut pieces: Vec<u64> = numbers.split('.').filter_map(|p| p.parse().ok()).collect();
        let bump = if pieces.len() >= 2 { 1 } else { 0 };
        if let Some(p) = pieces.get_mut(bump) {
            *p = p.saturating_add(1);
        }
        for p in pieces.iter_mut().skip(bump + 1) {
            *p = 0;
        }
        let text: Vec<String> = pieces.iter().map(u64::to_string).collect();
        format!("{prefix}{}", text.join("."))
    }
}

impl TryFrom<String> for AppVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<AppVersion> for String {
    fn from(v: AppVersion) -> String {
        v.text
    }
}

impl PartialEq for AppVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for AppVersion {}

impl PartialOrd for AppVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AppVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // A release (no suffix) sorts after its pre-releases.
        self.parts
            .cmp(&other.parts)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let v = |s| AppVersion::parse(s).unwrap();
        assert!(v("v2") > v("1.9.9"));
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("2"), v("v2.0.0"));
        assert_eq!(v("v2").as_str(), "v2");
    }

    #[test]
    fn bad_versions_are_rejected() {
        for bad in [
            "",
            "v",
            "1..2",
            "1.2.3.4.5",
            "two",
            "1.-1",
            "1.5-",
            "1.5-a;b",
            "-rc1",
        ] {
            assert!(AppVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pre_release_comes_before_its_release() {
        let v = |s| AppVersion::parse(s).unwrap();
        assert!(v("1.5.0-broken") < v("1.5.0"));
        assert!(v("1.5.0-broken") > v("1.4.9"));
        assert!(v("1.5.0-rc1") < v("1.5.0-rc2"));
        assert_eq!(v("1.5-rc1"), v("1.5.0-rc1"));
        assert_ne!(v("1.5.0-rc1"), v("1.5.0"));
        assert_eq!(v("1.5.0-broken").pre_release(), Some("broken"));
        assert_eq!(v("1.5.0-broken").as_str(), "1.5.0-broken");
    }

    #[test]
    fn the_next_version_bumps_the_minor_part() {
        let next = |s| AppVersion::parse(s).unwrap().next();
        assert_eq!(next("1.4.0"), "1.5.0");
        assert_eq!(next("1.4.7"), "1.5.0");
        assert_eq!(next("2"), "3");
        assert_eq!(next("v1.4"), "v1.5");
        assert_eq!(next("1.5.0-rc1"), "1.5.0");
    }
}
