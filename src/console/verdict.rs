//! A provisional verdict computed from one snapshot: healthy, degraded or
//! down, with the problems behind it, worst first. Pure and isolated: the
//! real `check` suite will replace [`assess`] without touching the views.

use crate::inspect::{CheckStatus, Snapshot, Source, Verdict};

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

/// Judge one snapshot.
///
/// Down: the node registry cannot be read, or no registered node answers
/// its health check. Degraded: any other problem. Healthy: none.
pub fn assess(snap: &Snapshot) -> Assessment {
    let mut p = Vec::new();
    let mut down = false;
    let fail = |p: &mut Vec<Problem>, area, text: String| {
        p.push(Problem {
            status: CheckStatus::Fail,
            area,
            text,
        })
    };
    let warn = |p: &mut Vec<Problem>, area, text: String| {
        p.push(Problem {
            status: CheckStatus::Warn,
            area,
            text,
        })
    };

    match &snap.nodes {
        Source::Ok(nodes) => {
            let healthy = nodes.iter().filter(|n| n.health.is_healthy()).count();
            if nodes.is_empty() {
                down = true;
                fail(&mut p, "nodes", "no node is registered".into());
            } else if healthy == 0 {
                down = true;
                fail(
                    &mut p,
                    "nodes",
                    format!("none of {} nodes answers its health check", nodes.len()),
                );
            }
            for n in nodes.iter().filter(|n| !n.health.is_healthy()) {
                let status = n
                    .health
                    .http_status
                    .map_or("no answer".to_string(), |s| format!("HTTP {s}"));
                fail(
                    &mut p,
                    "nodes",
                    format!("{} unhealthy: {status} {}", n.node_id, n.health.detail),
                );
            }
            for n in nodes.iter().filter(|n| n.storage_shared == Some(false)) {
                let why = n
                    .storage_reason
                    .as_deref()
                    .unwrap_or("storage markers not seen");
                fail(
                    &mut p,
                    "nodes",
                    format!("{} does not share storage: {why}", n.node_id),
                );
            }
        }
        Source::Unavailable { source, reason } => {
            down = true;
            fail(
                &mut p,
                "nodes",
                format!("node registry unreadable: {reason} ({source})"),
            );
        }
        Source::NotConfigured => {}
    }

    if !snap.drift.fingerprint.is_empty() {
        fail(
            &mut p,
            "config",
            format!(
                "configuration drift on {}",
                snap.drift.fingerprint.join(", ")
            ),
        );
    }
    if !snap.drift.version.is_empty() {
        let majority = snap.drift.majority_version.as_deref().unwrap_or("?");
        warn(
            &mut p,
            "config",
            format!(
                "version differs from {majority} on {}",
                snap.drift.version.join(", ")
            ),
        );
    }

    for (area, name, unavailable) in [
        ("worker IDs", "worker-ID leases", unavailable(&snap.leases)),
        ("locks", "locks", unavailable(&snap.locks)),
        ("streams", "sync-signal streams", unavailable(&snap.streams)),
        ("queues", "queues", unavailable(&snap.queues)),
        (
            "maintenance",
            "maintenance flag",
            unavailable(&snap.maintenance),
        ),
    ] {
        if let Some((source, reason)) = unavailable {
            fail(
                &mut p,
                area,
                format!("{name} unreadable: {reason} ({source})"),
            );
        }
    }
    for s in &snap.servers {
        if let Some(e) = &s.error {
            fail(
                &mut p,
                "servers",
                format!("{} unreachable: {e} ({})", s.kind, s.url),
            );
        }
    }

    if let Some(Some(m)) = snap.maintenance.ok() {
        warn(
            &mut p,
            "maintenance",
            format!("maintenance on, set by {}: {}", m.by, m.reason),
        );
    }
    if let Some(leases) = snap.leases.ok() {
        for l in leases
            .iter()
            .filter(|l| l.holder.is_some() && !l.holder_live)
        {
            let holder = l.holder.as_deref().unwrap_or_default();
            warn(
                &mut p,
                "worker IDs",
                format!("worker ID {} held by dead node {holder}", l.worker_id),
            );
        }
        for l in leases
            .iter()
            .filter_map(|l| l.unreadable.as_ref().map(|u| (l.worker_id, u)))
        {
            warn(
                &mut p,
                "worker IDs",
                format!("worker ID {} unreadable: {}", l.0, l.1),
            );
        }
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
    for s in &snap.servers {
        for w in server_warnings(s) {
            warn(&mut p, "servers", format!("{} {}: {w}", s.kind, s.url));
        }
    }
    if !snap.unreadable.is_empty() {
        warn(
            &mut p,
            "keys",
            format!(
                "{} keys hold something clusterops did not write",
                snap.unreadable.len()
            ),
        );
    }

    p.sort_by_key(|x| std::cmp::Reverse(x.status));
    let verdict = if down {
        Verdict::Down
    } else if p.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Degraded
    };
    Assessment {
        verdict,
        problems: p,
    }
}

fn unavailable<T>(s: &Source<T>) -> Option<(&str, &str)> {
    match s {
        Source::Unavailable { source, reason } => Some((source, reason)),
        _ => None,
    }
}

/// Whether a stream reader is behind: many entries, or some entries and no
/// progress for a while.
pub fn is_lagging(r: &crate::inspect::StreamReader) -> bool {
    r.lag >= LAGGING_READER_ENTRIES
        || (r.lag > 0
            && r.last_handled_age_ms
                .is_some_and(|a| a >= LAGGING_READER_IDLE_MS))
}

/// What an operator should fix on one server, one line each.
pub fn server_warnings(s: &crate::inspect::ServerView) -> Vec<String> {
    let mut out = Vec::new();
    if s.kind != "redis" || s.error.is_some() {
        return out;
    }
    if let Some(policy) = &s.maxmemory_policy
        && policy != "noeviction"
    {
        out.push(format!(
            "maxmemory-policy is {policy}: keys can be evicted, set noeviction"
        ));
    }
    if let Some(v) = &s.version {
        let major: u32 = v
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let bloom = s
            .modules
            .iter()
            .any(|m| m.to_ascii_lowercase().contains("bf") || m.contains("bloom"));
        if major < 8 && !bloom {
            out.push(format!(
                "Redis {v} has no bloom filter module: use Redis 8 or load RedisBloom"
            ));
        }
    }
    out
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
                .any(|p| p.text.contains("configuration drift on node-c"))
        );
        assert!(
            a.problems
                .iter()
                .any(|p| p.text.contains("worker ID 5 held by dead node node-old"))
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
