//! What changed between two snapshots, as one-line events for the Events
//! view (node joined/left, lease moved, lock holder changed or stolen, …),
//! and the bounded log that keeps them with the operators' action outcomes.

use crate::inspect::{Snapshot, Source};
use std::collections::{BTreeMap, VecDeque};

/// How an event is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Ordinary change.
    Info,
    /// Worth a look.
    Warn,
    /// Something broke.
    Bad,
    /// An operator's action succeeded.
    Done,
    /// An operator's action failed.
    Failed,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unix ms: the newer snapshot's time, or when the action finished.
    pub at_ms: u64,
    /// How to show it.
    pub level: Level,
    /// One line.
    pub text: String,
}

/// The last [`EventLog::CAPACITY`] events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: VecDeque<Event>,
}

impl EventLog {
    /// Events kept.
    pub const CAPACITY: usize = 500;

    /// Add one event.
    pub fn push(&mut self, e: Event) {
        self.events.push_front(e);
        self.events.truncate(Self::CAPACITY);
    }

    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Number kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// None kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The changes from `prev` to `next`.
pub fn diff(prev: &Snapshot, next: &Snapshot) -> Vec<Event> {
    let at_ms = next.taken_at_ms;
    let mut out = Vec::new();
    let mut ev = |level, text: String| out.push(Event { at_ms, level, text });

    for (what, a, b) in [
        ("node registry", status(&prev.nodes), status(&next.nodes)),
        (
            "worker-ID leases",
            status(&prev.leases),
            status(&next.leases),
        ),
        ("locks", status(&prev.locks), status(&next.locks)),
        ("streams", status(&prev.streams), status(&next.streams)),
        ("queues", status(&prev.queues), status(&next.queues)),
        (
            "maintenance flag",
            status(&prev.maintenance),
            status(&next.maintenance),
        ),
    ] {
        match (a, b) {
            (Some(_), None) => ev(Level::Info, format!("{what} readable again")),
            (None, Some(reason)) => ev(Level::Bad, format!("{what} unreadable: {reason}")),
            _ => {}
        }
    }

    if let (Some(a), Some(b)) = (prev.nodes.ok(), next.nodes.ok()) {
        let before: BTreeMap<_, _> = a.iter().map(|n| (n.id.node_id.as_str(), n)).collect();
        let after: BTreeMap<_, _> = b.iter().map(|n| (n.id.node_id.as_str(), n)).collect();
        for (id, n) in &after {
            let Some(old) = before.get(id) else {
                ev(
                    Level::Info,
                    format!(
                        "node joined: {id} ({}, {})",
                        n.id.http_addr, n.id.app_version
                    ),
                );
                continue;
            };
            if old.health.is_healthy() && !n.health.is_healthy() {
                ev(
                    Level::Bad,
                    format!("node {id} unhealthy: {}", n.health.detail),
                );
            } else if !old.health.is_healthy() && n.health.is_healthy() {
                ev(Level::Info, format!("node {id} healthy again"));
            }
            if old.id.state != n.id.state {
                ev(
                    Level::Info,
                    format!(
                        "node {id} state {} → {} ({})",
                        old.id.state, n.id.state, n.id.state_reason
                    ),
                );
            }
            if old.id.app_version != n.id.app_version {
                ev(
                    Level::Info,
                    format!(
                        "node {id} version {} → {}",
                        old.id.app_version, n.id.app_version
                    ),
                );
            }
            if old.config_fingerprint != n.config_fingerprint {
                ev(
                    Level::Warn,
                    format!("node {id} configuration fingerprint changed"),
                );
            }
        }
        for id in before.keys().filter(|id| !after.contains_key(*id)) {
            ev(Level::Warn, format!("node left: {id}"));
        }
    }

    if let (Some(a), Some(b)) = (prev.leases.ok(), next.leases.ok()) {
        for l in b {
            let old = a
                .iter()
                .find(|o| o.worker_id == l.worker_id)
                .and_then(|o| o.holder.as_deref());
            match (old, l.holder.as_deref()) {
                (None, Some(h)) => ev(
                    Level::Info,
                    format!("worker ID {} taken by {h}", l.worker_id),
                ),
                (Some(h), None) => ev(
                    Level::Info,
                    format!("worker ID {} freed (was {h})", l.worker_id),
                ),
                (Some(x), Some(y)) if x != y => ev(
                    Level::Warn,
                    format!("worker ID {} moved {x} → {y}", l.worker_id),
                ),
                _ => {}
            }
        }
    }

    if let (Some(a), Some(b)) = (prev.locks.ok(), next.locks.ok()) {
        let before: BTreeMap<_, _> = a.iter().map(|l| (l.name.as_str(), l)).collect();
        let elapsed = next.taken_at_ms.saturating_sub(prev.taken_at_ms) as i64;
        for l in b {
            let Some(old) = before.get(l.name.as_str()) else {
                continue;
            };
            if old.holder == l.holder {
                continue;
            }
            let tokens = format!("token {} → {}", old.fencing_token, l.fencing_token);
            if old.ttl_left_ms > elapsed {
                let left = super::format::ttl(old.ttl_left_ms - elapsed);
                let text = format!(
                    "lock {} stolen: {} → {} while {left} of its TTL was left ({tokens})",
                    l.name, old.holder, l.holder
                );
                ev(Level::Bad, text);
            } else {
                ev(
                    Level::Info,
                    format!(
                        "lock {} holder {} → {} ({tokens})",
                        l.name, old.holder, l.holder
                    ),
                );
            }
        }
    }

    if let (Some(a), Some(b)) = (prev.maintenance.ok(), next.maintenance.ok()) {
        match (a, b) {
            (None, Some(m)) => ev(
                Level::Warn,
                format!("maintenance set by {}: {}", m.by, m.reason),
            ),
            (Some(_), None) => ev(Level::Info, "maintenance cleared".into()),
            _ => {}
        }
    }

    if let (Some(a), Some(b)) = (prev.queues.ok(), next.queues.ok()) {
        for q in b {
            let old = a
                .iter()
                .find(|o| o.name == q.name)
                .map_or(0, |o| o.dead_letters);
            if q.dead_letters > old {
                ev(
                    Level::Warn,
                    format!("queue {}: dead letters {old} → {}", q.name, q.dead_letters),
                );
            }
        }
    }

    for (level, text) in super::changes_topology::events(prev, next) {
        ev(level, text);
    }
    for (level, text) in super::changes_cluster::events(prev, next) {
        ev(level, text);
    }
    out
}

/// `Some(reason)` when the source could not be read.
fn status<T>(s: &Source<T>) -> Option<&str> {
    match s {
        Source::Unavailable { reason, .. } => Some(reason),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn the_changes_between_two_snapshots_become_events() {
        let prev = sample::healthy();
        let mut next = sample::degraded();
        next.taken_at_ms += 2_000;
        if let Source::Ok(nodes) = &mut next.nodes {
            nodes.retain(|n| n.id.node_id != "node-a");
            nodes.push(sample::large().nodes.ok().unwrap()[7].clone());
        }
        if let Source::Ok(locks) = &mut next.locks {
            locks[1].holder = "node-b".into();
            locks[1].fencing_token = 1_400;
        }
        let texts: Vec<String> = diff(&prev, &next).into_iter().map(|e| e.text).collect();
        let has = |s: &str| texts.iter().any(|t| t.contains(s));
        assert!(has("node joined: node-07"), "{texts:#?}");
        assert!(has("node left: node-a"), "{texts:#?}");
        assert!(
            has("node node-b unhealthy: database unreachable"),
            "{texts:#?}"
        );
        assert!(has("worker ID 5 taken by node-old"), "{texts:#?}");
        assert!(
            has("lock cron:cleanup stolen: node-a → node-b"),
            "{texts:#?}"
        );
        assert!(has("queue email: dead letters 0 → 17"), "{texts:#?}");
    }

    #[test]
    fn a_source_going_down_and_coming_back_is_an_event() {
        let up = sample::healthy();
        let down = sample::redis_down();
        let went: Vec<_> = diff(&up, &down).into_iter().map(|e| e.text).collect();
        assert!(
            went.iter()
                .any(|t| t.starts_with("node registry unreadable: connection refused")),
            "{went:#?}"
        );
        let back: Vec<_> = diff(&down, &up).into_iter().map(|e| e.text).collect();
        assert!(
            back.contains(&"locks readable again".to_string()),
            "{back:#?}"
        );
    }

    #[test]
    fn the_log_keeps_the_newest_events() {
        let mut log = EventLog::default();
        for i in 0..(EventLog::CAPACITY as u64 + 10) {
            log.push(Event {
                at_ms: i,
                level: Level::Info,
                text: i.to_string(),
            });
        }
        assert_eq!(log.len(), EventLog::CAPACITY);
        assert_eq!(
            log.iter().next().unwrap().at_ms,
            EventLog::CAPACITY as u64 + 9
        );
    }
}
