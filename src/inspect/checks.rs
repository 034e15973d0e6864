//! The preflight of the deployment guide as pure functions over a
//! [`Snapshot`] and the configuration: each check gives pass, warn or fail
//! with a one-line reason; the verdict and exit code follow from them.

use super::checks_unread as unread;
use super::types::{CheckResult, CheckStatus, NodeState, Snapshot, Source, Verdict};
use crate::config::Config;
use std::collections::BTreeMap;

pub use super::checks_servers::{eviction_policy, rabbitmq_version, redis_version};

/// Worker IDs available to a cluster (0..31).
pub const WORKER_ID_SLOTS: usize = 32;

fn result(id: &str, status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Run every check. The order is stable (the console lists them as given).
pub fn run(config: &Config, snap: &Snapshot) -> Vec<CheckResult> {
    vec![
        sources_reachable(snap),
        nodes_healthy(snap),
        same_fingerprint(snap),
        same_version(snap),
        shared_adapters(config, snap),
        separate_redis_databases(config, snap),
        super::checks_topology::tls_verification(config),
        super::checks_topology::sentinel_quorum(snap),
        super::checks_topology::redis_replicas(snap),
        super::checks_cluster::cluster_state(snap),
        super::checks_cluster::cluster_replicas(snap),
        redis_version(snap),
        rabbitmq_version(snap),
        super::checks_topology::rabbitmq_management(config, snap),
        eviction_policy(snap),
        super::checks_persistence::redis_persistence(snap),
        worker_id_capacity(snap),
        super::checks_processes::process_capacity(snap),
        stale_worker_ids(snap),
        super::checks_clock::clock_skew(snap),
        shared_storage(snap),
        unreadable_keys(snap),
    ]
}

fn node_count(snap: &Snapshot) -> usize {
    snap.nodes.ok().map_or(0, Vec::len)
}

/// Every configured source could be read.
pub fn sources_reachable(snap: &Snapshot) -> CheckResult {
    let mut down = Vec::new();
    let mut note = |name: &str, src: Option<(&str, &str)>| {
        if let Some((s, r)) = src {
            down.push(format!("{name} ({s}: {r})"));
        }
    };
    fn un<T>(s: &Source<T>) -> Option<(&str, &str)> {
        match s {
            Source::Unavailable { source, reason } => Some((source.as_str(), reason.as_str())),
            _ => None,
        }
    }
    note("registry", un(&snap.nodes));
    note("worker IDs", un(&snap.leases));
    note("locks", un(&snap.locks));
    note("sync signals", un(&snap.streams));
    note("queues", un(&snap.queues));
    if down.is_empty() {
        result(
            "sources-reachable",
            CheckStatus::Pass,
            "every configured Redis and RabbitMQ answered",
        )
    } else {
        result(
            "sources-reachable",
            CheckStatus::Fail,
            format!("unreachable: {}", down.join("; ")),
        )
    }
}

/// Every node is running and answers 200 on its health check.
pub fn nodes_healthy(snap: &Snapshot) -> CheckResult {
    let Some(nodes) = snap.nodes.ok() else {
        return result(
            "nodes-healthy",
            CheckStatus::Fail,
            "the node registry could not be read",
        );
    };
    if nodes.is_empty() {
        return result("nodes-healthy", CheckStatus::Warn, "no node is registered");
    }
    let bad: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.id.state == NodeState::Error
                || !n.health.is_healthy()
                    && n.id.state != NodeState::Maintenance
                    && !is_idle_by_mode(n)
        })
        .map(|n| {
            let health = match n.health.http_status {
                Some(code) => format!("HTTP {code}"),
                None => n.health.detail.clone(),
            };
            format!(
                "{} ({}, {}: {})",
                n.id.node_id, n.id.state, health, n.id.state_reason
            )
        })
        .collect();
    let degraded: Vec<String> = nodes
        .iter()
        .filter(|n| n.health.is_degraded())
        .map(|n| format!("{} ({})", n.id.node_id, n.health.detail))
        .collect();
    if bad.is_empty() && !degraded.is_empty() {
        result(
            "nodes-healthy",
            CheckStatus::Warn,
            format!("degraded: {}", degraded.join("; ")),
        )
    } else if bad.is_empty() {
        result(
            "nodes-healthy",
            CheckStatus::Pass,
            format!("{} node(s) healthy", nodes.len()),
        )
    } else {
        result(
            "nodes-healthy",
            CheckStatus::Fail,
            format!("unhealthy: {}", bad.join("; ")),
        )
    }
}

/// A running node with `WORKER_MODE=-` answers its health check 503 on
/// purpose (it serves no app requests): not a failure.
fn is_idle_by_mode(n: &super::types::NodeView) -> bool {
    n.worker_mode == crate::config::WorkerMode::Idle
        && n.id.state == NodeState::Running
        && n.health.http_status == Some(503)
}

/// Every node has the same configuration fingerprint.
pub fn same_fingerprint(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::registry("same-fingerprint", snap) {
        return r;
    }
    if snap.drift.fingerprint.is_empty() {
        return result(
            "same-fingerprint",
            CheckStatus::Pass,
            "every node has the same configuration fingerprint",
        );
    }
    let detail: Vec<String> = snap
        .nodes
        .ok()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| snap.drift.fingerprint.contains(&n.id.node_id))
                .map(|n| format!("{} differs in {}", n.id.node_id, n.config_drift.join(", ")))
                .collect()
        })
        .unwrap_or_default();
    result(
        "same-fingerprint",
        CheckStatus::Fail,
        format!("configuration drift: {}", detail.join("; ")),
    )
}

/// Every node runs the same app version.
pub fn same_version(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::registry("same-version", snap) {
        return r;
    }
    if snap.drift.version.is_empty() {
        return result(
            "same-version",
            CheckStatus::Pass,
            "every node runs the same app version",
        );
    }
    result(
        "same-version",
        CheckStatus::Fail,
        format!(
            "majority runs {}; other versions on {}",
            snap.drift.majority_version.as_deref().unwrap_or("?"),
            snap.drift.version.join(", ")
        ),
    )
}

/// More than one node needs shared cache, lock and queue.
pub fn shared_adapters(config: &Config, snap: &Snapshot) -> CheckResult {
    let local: Vec<&str> = config
        .local_adapters()
        .into_iter()
        .filter(|v| {
            matches!(
                *v,
                "CACHE_DEFAULT_STORE" | "QUEUE_ADAPTER" | "LOCK_ADAPTER_DEFAULT"
            )
        })
        .collect();
    let n = node_count(snap);
    match (local.is_empty(), n > 1) {
        (true, _) => result(
            "shared-adapters",
            CheckStatus::Pass,
            "cache, lock and queue are shared",
        ),
        (false, true) => result(
            "shared-adapters",
            CheckStatus::Fail,
            format!(
                "{n} nodes while {} still memory/local: each node has its own",
                local.join(", ")
            ),
        ),
        (false, false) => result(
            "shared-adapters",
            CheckStatus::Warn,
            format!(
                "{} still memory/local: no second node can join",
                local.join(", ")
            ),
        ),
    }
}

/// One Redis database per adapter, as the deployment guide advises. A
/// Redis Cluster has database 0 only: adapters sharing one are not counted
/// (their keys are kept apart by their prefixes).
pub fn separate_redis_databases(config: &Config, snap: &Snapshot) -> CheckResult {
    let clusters: Vec<&str> = snap
        .servers
        .iter()
        .filter(|s| s.cluster.is_some())
        .map(|s| s.url.as_str())
        .collect();
    let mut by_db: BTreeMap<(String, i64), Vec<&str>> = BTreeMap::new();
    let mut on_cluster = 0;
    for (var, url) in config.redis_urls() {
        if clusters.contains(&url.to_string().as_str()) {
            on_cluster += 1;
            continue;
        }
        by_db
            .entry((url.host_port(), url.redis_db().unwrap_or(0)))
            .or_default()
            .push(var);
    }
    let shared: Vec<String> = by_db
        .iter()
        .filter(|(_, vars)| vars.len() > 1)
        .map(|((hp, db), vars)| format!("{} share {hp}/{db}", vars.join(" and ")))
        .collect();
    if shared.is_empty() && on_cluster > 0 {
        result(
            "separate-redis-databases",
            CheckStatus::Pass,
            format!(
                "{on_cluster} adapter URL(s) on a Redis Cluster share its only database (0), \
                 their keys kept apart by prefix; any other adapter has its own database"
            ),
        )
    } else if shared.is_empty() {
        result(
            "separate-redis-databases",
            CheckStatus::Pass,
            "each adapter has its own Redis database",
        )
    } else {
        result(
            "separate-redis-databases",
            CheckStatus::Warn,
            format!(
                "{}: one database per adapter avoids key clashes",
                shared.join("; ")
            ),
        )
    }
}

/// At most 32 nodes, and a free worker ID for the next one.
pub fn worker_id_capacity(snap: &Snapshot) -> CheckResult {
    let n = node_count(snap);
    if n > WORKER_ID_SLOTS {
        return result(
            "worker-id-capacity",
            CheckStatus::Fail,
            format!("{n} nodes: at most {WORKER_ID_SLOTS} can hold a worker ID"),
        );
    }
    if let Some(r) = unread::leases("worker-id-capacity", snap) {
        return r;
    }
    match snap.leases.ok() {
        None => result(
            "worker-id-capacity",
            CheckStatus::Pass,
            "worker IDs are not leased in Redis (REDIS_URL unset)",
        ),
        Some(slots) => {
            let free = slots
                .iter()
                .filter(|s| s.holder.is_none() && s.unreadable.is_none())
                .count();
            if free == 0 {
                result(
                    "worker-id-capacity",
                    CheckStatus::Fail,
                    format!("no free worker ID: {WORKER_ID_SLOTS} of {WORKER_ID_SLOTS} in use"),
                )
            } else {
                result(
                    "worker-id-capacity",
                    CheckStatus::Pass,
                    format!("{free} of {WORKER_ID_SLOTS} worker IDs free"),
                )
            }
        }
    }
}

/// Worker-ID holders that are not live nodes.
pub fn stale_worker_ids(snap: &Snapshot) -> CheckResult {
    // Liveness comes from the registry: without it every holder would look
    // stale.
    if let Some(r) = unread::leases("stale-worker-ids", snap)
        .or_else(|| unread::registry("stale-worker-ids", snap))
    {
        return r;
    }
    let stale: Vec<String> = snap
        .leases
        .ok()
        .map(|slots| {
            slots
                .iter()
                .filter(|s| s.holder.is_some() && !s.holder_live)
                .map(|s| {
                    format!(
                        "{} held by {}",
                        s.worker_id,
                        s.holder.as_deref().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if stale.is_empty() {
        result(
            "stale-worker-ids",
            CheckStatus::Pass,
            "every worker-ID holder is a live node",
        )
    } else {
        result(
            "stale-worker-ids",
            CheckStatus::Warn,
            format!(
                "held by nodes not in the registry: {} (they expire with their TTL)",
                stale.join(", ")
            ),
        )
    }
}

/// Every node sees the others' storage markers.
pub fn shared_storage(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::registry("shared-storage", snap) {
        return r;
    }
    let bad: Vec<String> = snap
        .nodes
        .ok()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n.storage_shared == Some(false))
                .map(|n| {
                    n.storage_reason
                        .clone()
                        .unwrap_or_else(|| format!("{}: storage is not shared", n.id.node_id))
                })
                .collect()
        })
        .unwrap_or_default();
    if bad.is_empty() {
        result(
            "shared-storage",
            CheckStatus::Pass,
            "no node reports unshared storage",
        )
    } else {
        result("shared-storage", CheckStatus::Fail, bad.join("; "))
    }
}

/// Keys under the namespace that hold something clusterops did not write.
pub fn unreadable_keys(snap: &Snapshot) -> CheckResult {
    if snap.unreadable.is_empty() {
        return result(
            "unreadable-keys",
            CheckStatus::Pass,
            "every key under the namespace is readable",
        );
    }
    let keys: Vec<&str> = snap
        .unreadable
        .iter()
        .take(5)
        .map(|u| u.key.as_str())
        .collect();
    result(
        "unreadable-keys",
        CheckStatus::Warn,
        format!(
            "{} unreadable key(s): {}",
            snap.unreadable.len(),
            keys.join(", ")
        ),
    )
}

/// 0 when everything passes, 1 with warnings, 2 with any failure.
pub fn exit_code(results: &[CheckResult]) -> i32 {
    match results.iter().map(|r| r.status).max() {
        Some(CheckStatus::Fail) => 2,
        Some(CheckStatus::Warn) => 1,
        _ => 0,
    }
}

/// Healthy when everything passes; down when no node serves or the
/// registry cannot be read; degraded otherwise.
pub fn verdict(snap: &Snapshot, results: &[CheckResult]) -> Verdict {
    let serving = snap
        .nodes
        .ok()
        .map(|nodes| nodes.iter().any(|n| n.health.is_healthy()));
    match serving {
        None | Some(false) => Verdict::Down,
        Some(true) if exit_code(results) == 0 => Verdict::Healthy,
        Some(true) => Verdict::Degraded,
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
