//! Events from the Sentinel topologies of two snapshots: a failover (the
//! master the sentinels name moved), a sentinel that stops answering or
//! answers again, a master left without an online replica.

use super::changes::Level;
use crate::inspect::{Snapshot, TopologyView};

/// The topology changes from `prev` to `next`, servers matched by URL.
pub fn events(prev: &Snapshot, next: &Snapshot) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for s in &next.servers {
        let Some(after) = &s.topology else { continue };
        let before = prev
            .servers
            .iter()
            .find(|p| p.url == s.url)
            .and_then(|p| p.topology.as_ref());
        if let Some(before) = before {
            diff(before, after, &mut out);
        }
    }
    out
}

fn diff(before: &TopologyView, after: &TopologyView, out: &mut Vec<(Level, String)>) {
    let name = &after.master_name;
    match (&before.master, &after.master) {
        (Some(a), Some(b)) if a != b => {
            out.push((
                Level::Warn,
                format!("failover: {name} moved from {a} to {b}"),
            ));
        }
        (Some(a), None) => out.push((
            Level::Bad,
            format!("{name}: no sentinel names a master any more (was {a})"),
        )),
        (None, Some(b)) => out.push((Level::Info, format!("{name}: the sentinels name {b}"))),
        _ => {}
    }
    for s in &after.sentinels {
        let Some(old) = before.sentinels.iter().find(|o| o.address == s.address) else {
            continue;
        };
        match (old.answered, s.answered) {
            (true, false) => out.push((
                Level::Warn,
                format!(
                    "sentinel {} ({name}) stopped answering: {}",
                    s.address,
                    s.error.as_deref().unwrap_or("no answer")
                ),
            )),
            (false, true) => out.push((
                Level::Info,
                format!("sentinel {} ({name}) answers again", s.address),
            )),
            _ => {}
        }
    }
    let online = |t: &TopologyView| t.online_replicas().count();
    if before.master_confirmed() && after.master_confirmed() {
        match (online(before), online(after)) {
            (n, 0) if n > 0 => out.push((
                Level::Warn,
                format!("{name}: no replica online any more (was {n})"),
            )),
            (0, n) if n > 0 => out.push((Level::Info, format!("{name}: {n} replica(s) online"))),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::changes::diff;
    use crate::console::sample;

    /// The Sentinel sample with all three sentinels answering.
    fn all_answering() -> Snapshot {
        let mut s = sample::sentinel();
        if let Some(t) = &mut s.servers[0].topology {
            let mut third = t.sentinels[0].clone();
            third.address = "10.0.0.9:26379".into();
            t.sentinels[2] = third;
        }
        s
    }

    #[test]
    fn a_failover_and_a_sentinel_going_silent_become_events() {
        let prev = all_answering();
        let mut next = sample::sentinel();
        next.taken_at_ms += 2_000;
        next.servers[0].topology = Some(sample::sentinel_topology(
            "10.0.0.22:6379",
            "10.0.0.21:6379",
        ));
        let events = diff(&prev, &next);
        let find = |text: &str| events.iter().find(|e| e.text == text);
        let failover = find("failover: mymaster moved from 10.0.0.21:6379 to 10.0.0.22:6379");
        assert_eq!(failover.map(|e| e.level), Some(Level::Warn), "{events:#?}");
        assert_eq!(failover.map(|e| e.at_ms), Some(next.taken_at_ms));
        let silent = find(
            "sentinel 10.0.0.9:26379 (mymaster) stopped answering: connection refused (os error 111)",
        );
        assert_eq!(silent.map(|e| e.level), Some(Level::Warn), "{events:#?}");
        assert_eq!(events.len(), 2, "{events:#?}");

        let back: Vec<String> = diff(&next, &prev).into_iter().map(|e| e.text).collect();
        assert!(
            back.contains(&"failover: mymaster moved from 10.0.0.22:6379 to 10.0.0.21:6379".into())
                && back.contains(&"sentinel 10.0.0.9:26379 (mymaster) answers again".into()),
            "{back:#?}"
        );
    }

    #[test]
    fn an_unchanged_topology_is_no_event_and_losing_the_replica_is_one() {
        assert_eq!(events(&sample::sentinel(), &sample::sentinel()), vec![]);
        let mut next = sample::sentinel();
        if let Some(t) = &mut next.servers[0].topology {
            t.replicas.clear();
        }
        assert_eq!(
            events(&sample::sentinel(), &next),
            vec![(
                Level::Warn,
                "mymaster: no replica online any more (was 1)".to_string()
            )]
        );
    }
}
