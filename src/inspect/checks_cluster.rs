//! Checks of a Redis Cluster: its state is ok and every one of the 16384
//! slots is served by a master that answers (`redis-cluster-state`), and
//! every master has a replica to fail over to (`redis-cluster-replicas`).
//! Both pass with "no Redis Cluster URL" when no server is a cluster.

use super::cluster_view::{ClusterView, SLOTS, ranges_text};
use super::topology::RedisRole;
use super::types::{CheckResult, CheckStatus, Snapshot};

fn result(id: &str, status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Each Redis Cluster of the snapshot: its URL (masked), its view, and why
/// its server could not be read.
fn clusters(snap: &Snapshot) -> impl Iterator<Item = (&str, &ClusterView, Option<&str>)> {
    snap.servers.iter().filter_map(|s| {
        s.cluster
            .as_ref()
            .map(|c| (s.url.as_str(), c, s.error.as_deref()))
    })
}

/// What is wrong with one cluster's state and slots, one item each.
fn state_problems(c: &ClusterView, error: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if c.shards.is_empty() {
        out.push(format!(
            "the shard map could not be read ({})",
            error.unwrap_or("no master")
        ));
        return out;
    }
    match c.state.as_deref() {
        Some("ok") => {}
        Some(state) => out.push(format!(
            "cluster_state is {state} (says {})",
            c.info_from.as_deref().unwrap_or("?")
        )),
        None => out.push("no master answered CLUSTER INFO".to_string()),
    }
    for s in &c.shards {
        let slots = format!("slots {} ({})", s.slot_ranges(), s.slot_count);
        if let Some(e) = &s.error {
            out.push(format!("master {} does not answer, {slots}: {e}", s.master));
        } else if s.role != Some(RedisRole::Master) {
            let role = s.role.map_or("unknown", RedisRole::as_str);
            out.push(format!("{} reports role {role}, {slots}", s.master));
        } else if let Some(state) = s
            .cluster_state
            .as_deref()
            .filter(|st| *st != "ok" && Some(*st) != c.state.as_deref())
        {
            out.push(format!("{} says cluster_state {state}", s.master));
        }
    }
    let unassigned = c.unassigned();
    if !unassigned.is_empty() {
        let n = SLOTS - c.slots_covered.min(SLOTS);
        out.push(format!(
            "{n} slots served by no master: {}",
            ranges_text(&unassigned)
        ));
    }
    if let Some(ok) = c.slots_ok.filter(|ok| *ok < SLOTS) {
        out.push(format!(
            "{ok}/{SLOTS} slots ok ({} pfail, {} fail)",
            c.slots_pfail.unwrap_or(0),
            c.slots_fail.unwrap_or(0)
        ));
    }
    out
}

/// Every Redis Cluster says `cluster_state:ok`, its masters answer as
/// masters, and all 16384 slots are assigned and ok: otherwise the keys of
/// the slots named cannot be read or written (and, by default, the whole
/// cluster refuses commands).
pub fn cluster_state(snap: &Snapshot) -> CheckResult {
    const ID: &str = "redis-cluster-state";
    let mut failed = Vec::new();
    let mut fine = Vec::new();
    for (url, c, error) in clusters(snap) {
        let problems = state_problems(c, error);
        if problems.is_empty() {
            fine.push(format!(
                "{url}: cluster_state ok, {SLOTS}/{SLOTS} slots ok on {} masters",
                c.shards.len()
            ));
        } else {
            failed.push(format!("{url}: {}", problems.join("; ")));
        }
    }
    if !failed.is_empty() {
        result(
            ID,
            CheckStatus::Fail,
            format!(
                "{}: bring the masters named back, or promote a replica of each \
                 (CLUSTER FAILOVER on it); give slots served by no master to one \
                 (redis-cli --cluster fix HOST:PORT); redis-cli --cluster check \
                 HOST:PORT shows what each node sees",
                failed.join("; ")
            ),
        )
    } else if fine.is_empty() {
        result(ID, CheckStatus::Pass, "no Redis Cluster URL")
    } else {
        result(ID, CheckStatus::Pass, fine.join("; "))
    }
}

/// Every master of a Redis Cluster has a replica whose link is up: without
/// one, losing that master loses its slots' keys, and the cluster stops.
pub fn cluster_replicas(snap: &Snapshot) -> CheckResult {
    const ID: &str = "redis-cluster-replicas";
    let mut warned = Vec::new();
    let mut fine = Vec::new();
    for (url, c, _) in clusters(snap) {
        let lonely: Vec<String> = c
            .unreplicated()
            .map(|s| {
                let down: Vec<&str> = s.replicas.iter().map(|r| r.address.as_str()).collect();
                let what = if down.is_empty() {
                    "no replica".to_string()
                } else {
                    format!("no replica up ({} down)", down.join(", "))
                };
                format!("master {} (slots {}) has {what}", s.master, s.slot_ranges())
            })
            .collect();
        if lonely.is_empty() {
            if !c.shards.is_empty() {
                fine.push(format!(
                    "{url}: each of {} masters has a replica up",
                    c.shards.len()
                ));
            }
        } else {
            warned.push(format!("{url}: {}", lonely.join("; ")));
        }
    }
    if !warned.is_empty() {
        result(
            ID,
            CheckStatus::Warn,
            format!(
                "{}: losing such a master loses the keys of its slots and stops the \
                 cluster; give each one a replica (redis-cli --cluster add-node NEW:PORT \
                 MASTER:PORT --cluster-slave), or bring its replica back",
                warned.join("; ")
            ),
        )
    } else if fine.is_empty() {
        result(ID, CheckStatus::Pass, "no Redis Cluster URL")
    } else {
        result(ID, CheckStatus::Pass, fine.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::cluster_view::{ClusterReplica, ReplicaLink, ShardView};
    use crate::inspect::servers::unreachable_view;

    fn shard(i: u16, slots: (u16, u16), replica: bool) -> ShardView {
        ShardView {
            master: format!("10.0.0.3{i}:6379"),
            role: Some(RedisRole::Master),
            slots: vec![slots],
            slot_count: u32::from(slots.1 - slots.0) + 1,
            replicas: replica
                .then(|| ClusterReplica {
                    address: format!("10.0.0.4{i}:6379"),
                    link: ReplicaLink::Up,
                    state: None,
                    lag_s: Some(0),
                    behind_bytes: None,
                })
                .into_iter()
                .collect(),
            used_memory: Some(1 << 20),
            maxmemory: Some(0),
            keys: Some(10),
            cluster_state: Some("ok".into()),
            error: None,
            persistence: None,
        }
    }

    /// Three masters, all slots ok; the third without a replica.
    fn snap(cluster: bool) -> Snapshot {
        let mut server = unreachable_view(
            "redis",
            "redis://10.0.0.31:6379/0".into(),
            vec![],
            "-".into(),
        );
        server.error = None;
        if cluster {
            let mut c = ClusterView {
                shards: vec![
                    shard(1, (0, 5460), true),
                    shard(2, (5461, 10922), true),
                    shard(3, (10923, 16383), false),
                ],
                slots_covered: SLOTS,
                ..ClusterView::default()
            };
            c.set_info(
                "10.0.0.31:6379",
                "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
                 cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:5\r\ncluster_size:3\r\n",
            );
            server.cluster = Some(c);
        }
        Snapshot::of_servers(vec![server])
    }

    #[test]
    fn a_healthy_cluster_passes_and_a_master_without_replica_warns() {
        let s = snap(true);
        let st = cluster_state(&s);
        st.assert_reason_contains(CheckStatus::Pass, "16384/16384 slots ok on 3 masters");
        let r = cluster_replicas(&s);
        r.assert_reason_contains(
            CheckStatus::Warn,
            "master 10.0.0.33:6379 (slots 10923-16383) has no replica",
        );
    }

    #[test]
    fn a_silent_master_and_uncovered_slots_fail_naming_them() {
        let mut s = snap(true);
        let Some(c) = s.servers[0].cluster.as_mut() else {
            panic!("the sample is a cluster");
        };
        c.shards[2].error = Some("connection refused".into());
        c.shards[1].slots = vec![(5461, 10000)];
        c.shards[1].slot_count = 4540;
        c.slots_covered = 5461 + 4540 + 5461;
        c.state = Some("fail".into());
        c.slots_ok = Some(10001);
        c.slots_fail = Some(5461);
        let st = cluster_state(&s);
        assert_eq!(st.status, CheckStatus::Fail);
        for part in [
            "cluster_state is fail",
            "master 10.0.0.33:6379 does not answer, slots 10923-16383 (5461): connection refused",
            "922 slots served by no master: 10001-10922",
            "10001/16384 slots ok (0 pfail, 5461 fail)",
            "redis-cli --cluster fix",
        ] {
            assert!(st.reason.contains(part), "{part}: {}", st.reason);
        }
    }

    #[test]
    fn adapters_sharing_a_clusters_only_database_are_not_warned_about() {
        let config = crate::config::Config::all_redis("redis://10.0.0.31:6379/0", "c").unwrap();
        let r = crate::inspect::checks::separate_redis_databases(&config, &snap(true));
        r.assert_reason_starts(CheckStatus::Pass, "5 adapter URL(s) on a Redis Cluster");
        let r = crate::inspect::checks::separate_redis_databases(&config, &snap(false));
        assert_eq!(r.status, CheckStatus::Warn, "{}", r.reason);
    }

    #[test]
    fn no_cluster_passes_both() {
        let s = snap(false);
        for c in [cluster_state(&s), cluster_replicas(&s)] {
            assert_eq!(
                (c.status, c.reason.as_str()),
                (CheckStatus::Pass, "no Redis Cluster URL")
            );
        }
    }
}
