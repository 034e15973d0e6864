//! The server checks of the preflight: Redis and RabbitMQ versions and the
//! eviction policy. A server that could not be read fails its checks
//! (`not checked: …`) instead of passing unseen.

use super::checks_unread as unread;
use super::instances;
use super::servers::{has_bloom, major_minor};
use super::types::{CheckResult, CheckStatus, ServerView, Snapshot};

fn result(id: &str, status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Redis 8+, or a Bloom filter module.
pub fn redis_version(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::servers_fail("redis-version", &unread::servers(snap, "redis")) {
        return r;
    }
    // One line per server instance, not per database using it.
    let old: Vec<String> = instances::group(&snap.servers)
        .iter()
        .filter(|i| {
            let s = i.facts();
            s.kind == "redis" && s.version.is_some() && !has_bloom(s)
        })
        .map(|i| {
            let v = i.facts().version.as_deref().unwrap_or("?");
            format!("{} is Redis {v}", i.name())
        })
        .collect();
    if old.is_empty() {
        result(
            "redis-version",
            CheckStatus::Pass,
            "Redis 8+ or a Bloom filter module everywhere",
        )
    } else {
        result(
            "redis-version",
            CheckStatus::Warn,
            format!(
                "{} without a Bloom filter module (8.0+ recommended; bitmap fallback in use)",
                old.join("; ")
            ),
        )
    }
}

/// RabbitMQ 4.0+.
pub fn rabbitmq_version(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::servers_fail("rabbitmq-version", &unread::servers(snap, "rabbitmq")) {
        return r;
    }
    let old: Vec<String> = snap
        .servers
        .iter()
        .filter(|s| s.kind == "rabbitmq")
        .filter(|s| {
            s.version
                .as_deref()
                .and_then(major_minor)
                .is_some_and(|(m, _)| m < 4)
        })
        .map(|s| {
            format!(
                "{} is RabbitMQ {}",
                s.url,
                s.version.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if old.is_empty() {
        result(
            "rabbitmq-version",
            CheckStatus::Pass,
            "RabbitMQ 4.0+ or not in use",
        )
    } else {
        result(
            "rabbitmq-version",
            CheckStatus::Warn,
            format!("{} (4.0+ recommended)", old.join("; ")),
        )
    }
}

/// Lock and queue data must not be evicted.
pub fn eviction_policy(snap: &Snapshot) -> CheckResult {
    let guarded = |s: &&ServerView| {
        s.used_by.iter().any(|v| {
            v == "LOCK_ADAPTER_REDIS_URL" || v == "QUEUE_ADAPTER_REDIS_URL" || v == "REDIS_URL"
        })
    };
    let not_seen: Vec<&ServerView> = snap
        .servers
        .iter()
        .filter(|s| s.kind == "redis")
        .filter(guarded)
        .filter(|s| s.error.is_some() || s.maxmemory_policy.is_none())
        .collect();
    if let Some(r) = unread::servers_fail("eviction-policy", &not_seen) {
        return r;
    }
    let guarded_servers: Vec<ServerView> = snap
        .servers
        .iter()
        .filter(|s| s.kind == "redis")
        .filter(guarded)
        .cloned()
        .collect();
    // One line per server instance, not per database using it.
    let bad: Vec<String> = instances::group(&guarded_servers)
        .iter()
        .filter_map(|i| {
            let policy = i.facts().maxmemory_policy.as_deref()?;
            (policy != "noeviction").then(|| {
                format!(
                    "{} ({}) has maxmemory-policy {policy}",
                    i.name(),
                    i.used_by().join(", ")
                )
            })
        })
        .collect();
    if bad.is_empty() {
        result(
            "eviction-policy",
            CheckStatus::Pass,
            "lock, queue and worker-ID Redis never evict",
        )
    } else {
        result(
            "eviction-policy",
            CheckStatus::Fail,
            format!(
                "{}: evicted keys lose locks and messages; set noeviction",
                bad.join("; ")
            ),
        )
    }
}
