//! App versions: parsing (`2`, `v2`, `1.4.0`) and ordering, so a node can
//! tell whether its binary is older than the schema it finds.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// An application version: up to four dot-separated numbers, an optional
/// leading `v`. Compared numerically, missing parts count as 0 (`2` == `2.0`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppVersion {
    text: String,
    parts: [u64; 4],
}

impl AppVersion {
    /// Parse a version string. The error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let mut parts = [0u64; 4];
        let pieces: Vec<&str> = body.split('.').collect();
        if body.is_empty() || pieces.len() > 4 {
            return Err(format!(
                "{text:?} is not a version; expected 1 to 4 dot-separated numbers, e.g. 2 or v1.4.0"
            ));
        }
        for (slot, piece) in parts.iter_mut().zip(&pieces) {
            *slot = piece
                .parse()
                .map_err(|_| format!("{text:?} is not a version; expected 1 to 4 dot-separated numbers, e.g. 2 or v1.4.0"))?;
        }
        Ok(Self {
            text: trimmed.to_string(),
            parts,
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
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
        self.parts == other.parts
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
        self.parts.cmp(&other.parts)
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
        for bad in ["", "v", "1..2", "1.2.3.4.5", "two", "1.-1"] {
            assert!(AppVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
