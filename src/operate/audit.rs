//! The audit trail of operators' changes: one JSON line per action
//! ([`AuditRecord`]) appended to a file, and who the operator is.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// clusterops' state folder for this user: `$XDG_STATE_HOME/clusterops`,
/// else `~/.local/state/clusterops`; `None` when neither is set.
pub fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .map(|dir| dir.join("clusterops"))
}

/// Where operators' actions (the console's and the `maintenance`
/// command's) are recorded by default: `audit-console.jsonl` in
/// [`state_dir`], else `clusterops-audit-console.jsonl` in the temp folder.
pub fn default_audit_path() -> PathBuf {
    match state_dir() {
        Some(dir) => dir.join("audit-console.jsonl"),
        None => std::env::temp_dir().join("clusterops-audit-console.jsonl"),
    }
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// `user@host`.
    pub who: String,
    /// Unix ms.
    pub at_ms: u64,
    /// `set-maintenance`, `clear-maintenance`, `force-release-lock`,
    /// `free-lease`, `requeue-dead-letters`, `purge-dead-letters`,
    /// `pause-queue`, `resume-queue`.
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// `ok` or `refused`.
    pub outcome: String,
    /// The one-line outcome shown in the Events view.
    pub detail: String,
}

/// The operator running this process: `$USER@hostname`.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let host = crate::clock::hostname().unwrap_or_default();
    format!("{user}@{host}")
}

/// Append `value` as one JSON line to `path`, creating its folder.
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(value).map_err(std::io::Error::other)?;
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}
