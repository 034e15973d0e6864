//! The verdict of one snapshot: healthy, degraded or down, with the
//! problems behind it, worst first: the inspector's checks
//! ([`crate::inspect::checks`]) plus what only the console watches.

use crate::config::Config;
pub use crate::inspect::server_warnings::server_warnings;
use crate::inspect::{
    CheckResult, CheckStatus, Snapshot, Source, Verdict, checks, checks_cluster, checks_topology,
};

/// A lock held longer than this is highlighted as long-held.
pub const LONG_HELD_LOCK_MS: u64 = 60_000;
/// A stream reader this many entries behind is lagging.
pub const LAGGING_READER_ENTRIES: u64 = 100;
/// A reader with unhandled entries that has not handled one for this long is lagging.
pub const LAGGING_READER_IDLE_MS: u64 = 60_000;

/// One thing an operator should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Fail` (unsafe or broken) or `Warn` (works, but look).
    pub status: CheckStatus,
    /// What part of the cluster: `nodes`, `worker IDs`, `locks`, `streams`,
    /// `queues`, `servers`, `config`, `maintenance`, `keys`.
    pub area: &'static str,
    /// One line.
    pub text: String,
}

/// The verdict and the problems behind it, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Healthy, degraded or down.
    pub verdict: Verdict,
    /// Failures first, then warnings; in the order found within each.
    pub problems: Vec<Problem>,
}

/// Judge one snapshot with the snapshot-only checks (no configuration at
/// hand: snapshot mode). See [`assess_with`].
pub fn assess(snap: &Snapshot) -> Assessment {
    assess_with(None, snap)
}

/// The checks that need only the snapshot (all of [`checks::run`] but the
/// ones that read the configuration).
pub fn snapshot_checks(snap: &Snapshot) -> Vec<CheckResult> {
    vec![
        checks::sources_reachable(snap),
        checks::nodes_healthy(snap),
        checks::same_fingerprint(snap),
        checks::same_version(snap),
        checks::redis_version(snap),
        checks::rabbitmq_version(snap),
        checks::eviction_policy(snap),
        checks_topology::sentinel_quorum(snap),
        checks_topology::redis_replicas(snap),
        checks_cluster::cluster_state(snap),
        checks_cluster::cluster_replicas(snap),
        checks::worker_id_capacity(snap),
        crate::inspect::checks_processes::process_capacity(snap),
        checks::stale_worker_ids(snap),
        crate::inspect::checks_clock::clock_skew(snap),
        checks::shared_storage(snap),
        checks::unreadable_keys(snap),
    ]
}

/// Judge one snapshot: the failing and warning results of the inspector's
/// checks ([`checks::run`] with `config`, the snapshot-only ones without),
/// plus what the console watches beyond them (maintenance on, locks held
/// by dead nodes or for long, lagging readers, dead letters, queues
/// without consumers, an unreadable maintenance flag). The verdict is
/// [`checks::verdict`]'s, degraded at least when the console found more.
pub fn assess_with(config: Option<&Config>, snap: &Snapshot) -> Assessment {
    let results = match config {
        Some(c) => checks::run(c, snap),
        None => snapshot_checks(snap),
    };
    let mut p: Vec<Problem> = results
        .iter()
        .filter(|r| r.status != CheckStatus::Pass)
        .map(|r| Problem {
            status: r.status,
            area: check_area(&r.id),
            text: r.reason.clone(),
        })
        .collect();
    let extras = console_extras(snap);
    let verdict = match checks::verdict(snap, &results) {
        Verdict::Healthy if !extras.is_empty() => Verdict::Degraded,
        v => v,
    };
    p.extend(extras);
    if verdict == Verdict::Down && !p.iter().any(|x| x.status == CheckStatus::Fail) {
        p.push(Problem {
            status: CheckStatus::Fail,
            area: "nodes",
            text: "no node serves: nothing answers its health check".into(),
        });
    }
    p.sort_by_key(|x| std::cmp::Reverse(x.status));
    Assessment {
        verdict,
        problems: p,
    }
}

/// The console's short area name for a check id.
pub fn check_area(id: &str) -> &'static str {
    match id {
        "sources-reachable" => "sources",
        "nodes-healthy" | "shared-storage" | "clock-skew" => "nodes",
        "same-fingerprint" | "same-version" | "shared-adapters" | "separate-redis-databases" => {
            "config"
        }
        "redis-version"
        | "rabbitmq-version"
        | "rabbitmq-management"
        | "eviction-policy"
        | "redis-persistence"
        | "sentinel-quorum"
        | "redis-replicas"
        | "redis-cluster-state"
        | "redis-cluster-replicas" => "servers",
        "worker-id-capacity" | "process-capacity" | "stale-worker-ids" => "worker IDs",
        "unreadable-keys" => "keys",
        _ => "checks",
    }
}

/// What the console flags beyond the checks.
fn console_extras(snap: &Snapshot) -> Vec<Problem> {
    let mut p = Vec::new();
    let warn = |p: &mut Vec<Problem>, area, text: String| {
        p.push(Problem {
            status: CheckStatus::Warn,
            area,
            text,
        })
    };
    if let Source::Unavailable { source, reason } = &snap.maintenance {
        p.push(Problem {
            status: CheckStatus::Fail,
            area: "maintenance",
            text: format!("maintenance flag unreadable: {reason} ({source})"),
        });
    }
    if let Some(Some(m)) = snap.maintenance.ok() {
        warn(
            &mut p,
            "maintenance",
            format!("maintenance on, set by {}: {}", m.by, m.reason),
        );
    }
    if let Some(locks) = snap.locks.ok() {
        for l in locks.iter().filter(|l| !l.holder_live) {
            warn(
                &mut p,
                "locks",
                format!("lock {} held by dead node {}", l.name, l.holder),
            );
        }
        let long: Vec<_> = locks
            .iter()
            .filter(|l| l.holder_live && l.age_ms >= LONG_HELD_LOCK_MS)
            .collect();
        if let Some(longest) = long.iter().max_by_key(|l| l.age_ms) {
            let more = if long.len() > 1 {
                format!(" (+{} more)", long.len() - 1)
            } else {
                String::new()
            };
            let age = super::format::age(longest.age_ms);
            warn(
                &mut p,
                "locks",
                format!(
                    "lock {} held {age} by {}{more}",
                    longest.name, longest.holder
                ),
            );
        }
    }
    if let Some(streams) = snap.streams.ok() {
        for s in streams {
            for r in s.readers.iter().filter(|r| r.live && is_lagging(r)) {
                warn(
                    &mut p,
                    "streams",
                    format!("{} lags {} entries on {}", r.node_id, r.lag, s.channel),
                );
            }
        }
    }
    if let Some(queues) = snap.queues.ok() {
        for q in queues {
            if q.dead_letters > 0 {
                warn(
                    &mut p,
                    "queues",
                    format!("{} has {} dead letters", q.name, q.dead_letters),
                );
            }
            if q.consumers == 0 && q.waiting > 0 {
                warn(
                    &mut p,
                    "queues",
                    format!("{} has {} waiting and no consumer", q.name, q.waiting),
                );
            }
        }
    }
    p
}

/// Whether a stream reader is behind: many entries, or some entries and no
/// progress for a while.
pub fn is_lagging(r: &crate::inspect::StreamReader) -> bool {
    r.lag >= LAGGING_READER_ENTRIES
        || (r.lag > 0
            && r.last_handled_age_ms
                .is_some_and(|a| a >= LAGGING_READER_IDLE_MS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn a_healthy_cluster_has_no_problem() {
        let a = assess(&sample::healthy());
        assert_eq!(a.problems, vec![]);
        assert_eq!(a.verdict, Verdict::Healthy);
    }

    #[test]
    fn a_degraded_cluster_lists_failures_before_warnings() {
        let a = assess(&sample::degraded());
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(a.problems[0].status, CheckStatus::Fail);
        assert!(
            a.problems
                .iter()
                .any(|p| p.text.contains("configuration drift: node-c"))
        );
        assert!(
            a.problems
                .iter()
                .any(|p| p.text.contains("5 held by node-old"))
        );
        assert!(a.problems.iter().any(|p| p.text.contains("dead letters")));
        assert!(a.problems.iter().any(|p| p.text.contains("lags")));
        let first_warn = a
            .problems
            .iter()
            .position(|p| p.status == CheckStatus::Warn)
            .unwrap();
        assert!(
            a.problems[first_warn..]
                .iter()
                .all(|p| p.status == CheckStatus::Warn)
        );
    }

    #[test]
    fn an_unreachable_redis_or_an_empty_registry_is_down() {
        assert_eq!(assess(&sample::redis_down()).verdict, Verdict::Down);
        assert_eq!(assess(&sample::empty()).verdict, Verdict::Down);
    }
}
