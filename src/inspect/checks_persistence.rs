//! The `redis-persistence` check: the Redis behind the locks
//! (`LOCK_ADAPTER_REDIS_URL`) and the worker-ID leases (`REDIS_URL`) should
//! keep its data across a restart (AOF, or RDB save points). One that keeps
//! nothing warns and says what a restart costs; one whose save points
//! cannot be read (`CONFIG` refused by an ACL, or renamed) warns that it
//! could not be determined; an unreadable server fails (`not checked`).

use super::checks_unread as unread;
use super::instances::{self, Instance};
use super::types::{CheckResult, CheckStatus, ServerView, Snapshot};

const ID: &str = "redis-persistence";

/// What a restart of a Redis that keeps nothing costs (docs/redis-keys.md,
/// "When Redis loses its data").
pub const COST: &str = "a restart forgets the fencing counters (new tokens \
     start from the server clock) and who holds which worker ID (every node \
     loses its lease and waits out the restart quarantine before issuing IDs \
     again); set appendonly yes or RDB save points";

fn result(status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: ID.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Whether `s` holds the locks or the worker-ID leases.
fn guarded(s: &&ServerView) -> bool {
    s.kind == "redis"
        && s.used_by
            .iter()
            .any(|v| v == "LOCK_ADAPTER_REDIS_URL" || v == "REDIS_URL")
}

/// An instance once, however many of its databases hold locks or leases.
fn named(i: &Instance<'_>) -> String {
    let what: Vec<&str> = i
        .used_by()
        .into_iter()
        .filter(|v| *v == "LOCK_ADAPTER_REDIS_URL" || *v == "REDIS_URL")
        .collect();
    format!("{} ({})", i.name(), what.join(", "))
}

/// The Redis of the locks and worker IDs keeps its data across a restart.
pub fn redis_persistence(snap: &Snapshot) -> CheckResult {
    let guarded_servers: Vec<ServerView> = snap.servers.iter().filter(guarded).cloned().collect();
    let not_seen: Vec<&ServerView> = guarded_servers
        .iter()
        .filter(|s| s.error.is_some())
        .collect();
    if let Some(r) = unread::servers_fail(ID, &not_seen) {
        return r;
    }
    // One entry per server instance: two databases of one Redis are one
    // server, said once.
    let servers = instances::group(&guarded_servers);
    if servers.is_empty() {
        return result(
            CheckStatus::Pass,
            "no Redis holds locks or worker IDs (LOCK_ADAPTER_DEFAULT not redis, REDIS_URL unset)",
        );
    }
    let mut nothing = Vec::new();
    let mut unknown = Vec::new();
    let mut kept = Vec::new();
    for i in &servers {
        let s = i.facts();
        let Some(p) = &s.persistence else {
            unknown.push(format!("{}: not read", named(i)));
            continue;
        };
        match p.keeps_data {
            Some(true) => kept.push(format!("{}: {}", named(i), p.describe())),
            Some(false) => {
                // On a Redis Cluster, name the masters that keep nothing.
                let masters: Vec<&str> = s
                    .cluster
                    .iter()
                    .flat_map(|c| &c.shards)
                    .filter(|m| m.persistence.as_ref().and_then(|p| p.keeps_data) == Some(false))
                    .map(|m| m.master.as_str())
                    .collect();
                if masters.is_empty() {
                    nothing.push(format!("{} keeps nothing ({})", named(i), p.describe()));
                } else {
                    nothing.push(format!(
                        "{}: master {} keep(s) nothing ({})",
                        named(i),
                        masters.join(", "),
                        p.describe()
                    ));
                }
            }
            None => unknown.push(format!("{}: {}", named(i), p.describe())),
        }
    }
    if !nothing.is_empty() {
        let mut reason = format!("{} across a restart: {COST}", nothing.join("; "));
        if !unknown.is_empty() {
            reason.push_str(&format!(
                "; could not be determined for {}",
                unknown.join("; ")
            ));
        }
        return result(CheckStatus::Warn, reason);
    }
    if !unknown.is_empty() {
        return result(
            CheckStatus::Warn,
            format!(
                "could not be determined whether the Redis of the locks and worker IDs keeps \
                 its data across a restart: {} (docs/operator-guide.md, redis-persistence)",
                unknown.join("; ")
            ),
        );
    }
    result(
        CheckStatus::Pass,
        format!("kept across a restart: {}", kept.join("; ")),
    )
}

#[cfg(test)]
#[path = "checks_persistence_tests.rs"]
mod tests;
