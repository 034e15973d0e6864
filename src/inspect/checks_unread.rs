//! A check never passes on data it could not read: when its source is
//! unreachable it fails (`not checked: …`), naming the source (password
//! masked) so the operator knows what to fix first.

use super::types::{CheckResult, CheckStatus, ServerView, Snapshot, Source};

/// The failing result of a check whose source could not be read.
pub fn not_read(id: &str, what: impl std::fmt::Display) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status: CheckStatus::Fail,
        reason: format!("not checked: {what} could not be read"),
    }
}

fn unavailable<T>(source: &Source<T>, what: &str) -> Option<String> {
    match source {
        Source::Unavailable { source, .. } => Some(format!("{what} ({source})")),
        _ => None,
    }
}

/// `Some(fail)` when the node registry could not be read.
pub fn registry(id: &str, snap: &Snapshot) -> Option<CheckResult> {
    unavailable(&snap.nodes, "the node registry").map(|what| not_read(id, what))
}

/// `Some(fail)` when the worker-ID leases could not be read.
pub fn leases(id: &str, snap: &Snapshot) -> Option<CheckResult> {
    unavailable(&snap.leases, "the worker-ID leases").map(|what| not_read(id, what))
}

/// Servers of `kind` whose facts could not be read (an error, or no
/// version in the answer).
pub fn servers<'a>(snap: &'a Snapshot, kind: &str) -> Vec<&'a ServerView> {
    snap.servers
        .iter()
        .filter(|s| s.kind == kind && (s.error.is_some() || s.version.is_none()))
        .collect()
}

/// `Some(fail)` naming `unread` servers, when there are any.
pub fn servers_fail(id: &str, unread: &[&ServerView]) -> Option<CheckResult> {
    if unread.is_empty() {
        return None;
    }
    let names: Vec<String> = unread
        .iter()
        .map(|s| match &s.error {
            Some(e) => format!("{} ({}: {e})", s.url, s.used_by.join(", ")),
            None => format!("{} ({})", s.url, s.used_by.join(", ")),
        })
        .collect();
    Some(not_read(id, names.join("; ")))
}
