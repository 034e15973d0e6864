//! Events from the Redis Clusters of two snapshots: the cluster state
//! changing, a shard failing over (its slots served by another master), a
//! master that stops answering or answers again, a master left without a
//! replica up.

use super::changes::Level;
use crate::inspect::{ClusterView, ShardView, Snapshot};

/// The cluster changes from `prev` to `next`, servers matched by URL.
pub fn events(prev: &Snapshot, next: &Snapshot) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for s in &next.servers {
        let Some(after) = &s.cluster else { continue };
        let before = prev
            .servers
            .iter()
            .find(|p| p.url == s.url)
            .and_then(|p| p.cluster.as_ref());
        if let Some(before) = before {
            diff(before, after, &mut out);
        }
    }
    out
}

/// The shard of `before` that served the first slot of `shard`.
fn previous<'b>(before: &'b ClusterView, shard: &ShardView) -> Option<&'b ShardView> {
    let (first, _) = *shard.slots.first()?;
    before
        .shards
        .iter()
        .find(|s| s.slots.iter().any(|&(a, b)| a <= first && first <= b))
}

fn diff(before: &ClusterView, after: &ClusterView, out: &mut Vec<(Level, String)>) {
    match (before.state.as_deref(), after.state.as_deref()) {
        (Some("ok"), Some(b)) if b != "ok" => {
            out.push((Level::Bad, format!("redis cluster state {b} (was ok)")));
        }
        (Some(a), Some("ok")) if a != "ok" => {
            out.push((
                Level::Info,
                format!("redis cluster state ok again (was {a})"),
            ));
        }
        _ => {}
    }
    for s in &after.shards {
        let Some(old) = previous(before, s) else {
            continue;
        };
        let slots = s.slot_ranges();
        if old.master != s.master {
            out.push((
                Level::Warn,
                format!(
                    "failover: redis cluster slots {slots} moved from {} to {}",
                    old.master, s.master
                ),
            ));
            continue;
        }
        match (&old.error, &s.error) {
            (None, Some(e)) => out.push((
                Level::Bad,
                format!("redis cluster master {} stopped answering: {e}", s.master),
            )),
            (Some(_), None) => out.push((
                Level::Info,
                format!("redis cluster master {} answers again", s.master),
            )),
            _ => {}
        }
        if s.error.is_none() && old.error.is_none() {
            match (old.replicas_up(), s.replicas_up()) {
                (n, 0) if n > 0 => out.push((
                    Level::Warn,
                    format!(
                        "redis cluster master {}: no replica up any more (was {n})",
                        s.master
                    ),
                )),
                (0, n) if n > 0 => out.push((
                    Level::Info,
                    format!("redis cluster master {}: {n} replica(s) up", s.master),
                )),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn a_failover_a_silent_master_and_the_state_become_events() {
        let prev = sample::redis_cluster();
        assert_eq!(events(&prev, &prev), vec![]);
        let mut next = sample::redis_cluster();
        let Some(c) = next.servers[0].cluster.as_mut() else {
            panic!("the sample is a cluster");
        };
        c.state = Some("fail".into());
        c.shards[0].master = "10.0.0.41:6379".into();
        c.shards[0].replicas.clear();
        c.shards[2].error = Some("Connection refused (os error 111)".into());
        c.shards[1].replicas.clear();
        let texts: Vec<(Level, String)> = events(&prev, &next);
        assert_eq!(
            texts,
            vec![
                (Level::Bad, "redis cluster state fail (was ok)".to_string()),
                (
                    Level::Warn,
                    "failover: redis cluster slots 0-5460 moved from 10.0.0.31:6379 to \
                     10.0.0.41:6379"
                        .to_string()
                ),
                (
                    Level::Warn,
                    "redis cluster master 10.0.0.32:6379: no replica up any more (was 1)"
                        .to_string()
                ),
                (
                    Level::Bad,
                    "redis cluster master 10.0.0.33:6379 stopped answering: Connection \
                     refused (os error 111)"
                        .to_string()
                ),
            ]
        );
        let back: Vec<String> = events(&next, &prev).into_iter().map(|e| e.1).collect();
        assert!(
            back.contains(&"redis cluster state ok again (was fail)".to_string())
                && back.contains(&"redis cluster master 10.0.0.33:6379 answers again".to_string()),
            "{back:#?}"
        );
    }
}
