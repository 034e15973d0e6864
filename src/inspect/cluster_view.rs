//! A Redis Cluster as a snapshot shows it: the cluster's own figures
//! (`CLUSTER INFO`: state, slots assigned/ok/pfail/fail, known nodes, size)
//! and one [`ShardView`] per master (`CLUSTER SLOTS`: its slots and
//! replicas; its `INFO`: the role it reports, memory, keys, replica links
//! and lag). `status`, `check` and the console all derive from it.

use super::servers::parse_info;
use super::topology::{RedisRole, ReplicaState};
use serde::{Deserialize, Serialize};

/// Hash slots of a Redis Cluster.
pub const SLOTS: u32 = crate::adapters::hash_tag::SLOTS as u32;

/// Whether a replica's link to its master is up (the master lists it
/// `online` in `INFO replication`) or not (listed by `CLUSTER SLOTS` only,
/// or in another state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaLink {
    /// Streaming the master's replication feed.
    Up,
    /// Not streaming it (disconnected, or still syncing).
    Down,
}

/// One replica of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReplica {
    /// `host:port`.
    pub address: String,
    /// Up when its master lists it `online`.
    pub link: ReplicaLink,
    /// The state its master reports, when it lists it.
    #[serde(default)]
    pub state: Option<ReplicaState>,
    /// Seconds since its last acknowledgement.
    #[serde(default)]
    pub lag_s: Option<u64>,
    /// Bytes of the replication stream it has not acknowledged.
    #[serde(default)]
    pub behind_bytes: Option<u64>,
}

/// One master and what it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardView {
    /// The master, `host:port`, as `CLUSTER SLOTS` names it.
    pub master: String,
    /// The role the node itself reports (`INFO replication`), `None` when
    /// it could not be read.
    #[serde(default)]
    pub role: Option<RedisRole>,
    /// Slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Slots it serves.
    pub slot_count: u32,
    /// Its replicas (`CLUSTER SLOTS`, and what its `INFO` lists).
    pub replicas: Vec<ClusterReplica>,
    /// Used memory, bytes.
    #[serde(default)]
    pub used_memory: Option<u64>,
    /// maxmemory, bytes (0: none).
    #[serde(default)]
    pub maxmemory: Option<u64>,
    /// Keys it holds (`INFO keyspace`, database 0).
    #[serde(default)]
    pub keys: Option<u64>,
    /// `cluster_state` as this node sees it.
    #[serde(default)]
    pub cluster_state: Option<String>,
    /// Why it could not be read (one line).
    #[serde(default)]
    pub error: Option<String>,
    /// Whether it keeps its data across a restart (read on the masters
    /// when the URL holds the locks or the worker-ID leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<super::persistence::Persistence>,
}

impl ShardView {
    /// Replicas whose link is up.
    pub fn replicas_up(&self) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.link == ReplicaLink::Up)
            .count()
    }

    /// `0-5460` or `0-100,200-300`.
    pub fn slot_ranges(&self) -> String {
        ranges_text(&self.slots)
    }

    /// Whether this node answered and reports master and cluster state ok.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
            && self.role == Some(RedisRole::Master)
            && self.cluster_state.as_deref() == Some("ok")
    }
}

/// A Redis Cluster URL's topology.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// `cluster_state` (`ok`, `fail`) as [`ClusterView::info_from`] says.
    #[serde(default)]
    pub state: Option<String>,
    /// The master whose `CLUSTER INFO` gave the figures below (the first
    /// one, by address, that answered).
    #[serde(default)]
    pub info_from: Option<String>,
    /// `cluster_slots_assigned`.
    #[serde(default)]
    pub slots_assigned: Option<u32>,
    /// `cluster_slots_ok`.
    #[serde(default)]
    pub slots_ok: Option<u32>,
    /// `cluster_slots_pfail`: slots of a master some node cannot reach.
    #[serde(default)]
    pub slots_pfail: Option<u32>,
    /// `cluster_slots_fail`: slots of a master the cluster holds failed.
    #[serde(default)]
    pub slots_fail: Option<u32>,
    /// `cluster_known_nodes`.
    #[serde(default)]
    pub known_nodes: Option<u32>,
    /// `cluster_size`: masters serving at least one slot.
    #[serde(default)]
    pub size: Option<u32>,
    /// Slots `CLUSTER SLOTS` assigns to a master.
    pub slots_covered: u32,
    /// One per master, by address.
    pub shards: Vec<ShardView>,
}

impl ClusterView {
    /// Fill the cluster figures from a `CLUSTER INFO` text read on `from`.
    pub fn set_info(&mut self, from: &str, text: &str) {
        let map = parse_info(text);
        let num = |k: &str| map.get(k).and_then(|v| v.trim().parse::<u32>().ok());
        self.state = map.get("cluster_state").map(|s| s.trim().to_string());
        self.info_from = Some(from.to_string());
        self.slots_assigned = num("cluster_slots_assigned");
        self.slots_ok = num("cluster_slots_ok");
        self.slots_pfail = num("cluster_slots_pfail");
        self.slots_fail = num("cluster_slots_fail");
        self.known_nodes = num("cluster_known_nodes");
        self.size = num("cluster_size");
    }

    /// Slot ranges no master serves (`CLUSTER SLOTS`).
    pub fn unassigned(&self) -> Vec<(u16, u16)> {
        let mut taken: Vec<(u16, u16)> = self.shards.iter().flat_map(|s| s.slots.clone()).collect();
        taken.sort_unstable();
        let mut out = Vec::new();
        let mut next: u32 = 0;
        for (a, b) in taken {
            if u32::from(a) > next {
                out.push((next as u16, a - 1));
            }
            next = next.max(u32::from(b) + 1);
        }
        if next < SLOTS {
            out.push((next as u16, (SLOTS - 1) as u16));
        }
        out
    }

    /// Slots counted ok: `cluster_slots_ok` when known, else 0.
    pub fn ok_slots(&self) -> u32 {
        self.slots_ok.unwrap_or(0)
    }

    /// Keys over every master that answered.
    pub fn keys(&self) -> u64 {
        self.shards.iter().filter_map(|s| s.keys).sum()
    }

    /// Masters without a replica whose link is up.
    pub fn unreplicated(&self) -> impl Iterator<Item = &ShardView> {
        self.shards.iter().filter(|s| s.replicas_up() == 0)
    }

    /// Whether the state is ok, every slot is ok and every master answered
    /// as master.
    pub fn is_ok(&self) -> bool {
        self.state.as_deref() == Some("ok")
            && self.ok_slots() == SLOTS
            && self.slots_covered == SLOTS
            && self.shards.iter().all(ShardView::is_ok)
    }

    /// One line: `cluster ok: 16384/16384 slots ok, 3 masters, 6 known
    /// nodes, 3 with a replica up`.
    pub fn summary(&self) -> String {
        let state = self.state.as_deref().unwrap_or("unknown");
        let ok = self
            .slots_ok
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        let nodes = self
            .known_nodes
            .map_or_else(String::new, |n| format!(", {n} known nodes"));
        let masters = self.shards.len();
        let replicated = masters - self.unreplicated().count();
        format!(
            "cluster {state}: {ok}/{SLOTS} slots ok, {masters} master{}{nodes}, \
             {replicated} with a replica up",
            if masters == 1 { "" } else { "s" }
        )
    }
}

/// `0-5460,10923` for slot ranges.
pub fn ranges_text(ranges: &[(u16, u16)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    parts.join(",")
}

/// The `db0:keys=N,…` figure of an `INFO keyspace` text (0 when the
/// section is there but database 0 is empty, `None` without it).
pub fn keys_of(info: &str) -> Option<u64> {
    let mut keyspace = false;
    for line in info.lines().map(|l| l.trim_end_matches('\r')) {
        if line == "# Keyspace" {
            keyspace = true;
        }
        if let Some(rest) = line.strip_prefix("db0:") {
            return rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|n| n.parse().ok());
        }
    }
    keyspace.then_some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(master: &str, slots: Vec<(u16, u16)>, replicas: usize) -> ShardView {
        ShardView {
            master: master.into(),
            role: Some(RedisRole::Master),
            slot_count: slots
                .iter()
                .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
                .sum(),
            slots,
            replicas: (0..replicas)
                .map(|i| ClusterReplica {
                    address: format!("r{i}"),
                    link: ReplicaLink::Up,
                    state: Some(ReplicaState::Online),
                    lag_s: Some(0),
                    behind_bytes: Some(0),
                })
                .collect(),
            used_memory: Some(1),
            maxmemory: Some(0),
            keys: Some(2),
            cluster_state: Some("ok".into()),
            error: None,
            persistence: None,
        }
    }

    #[test]
    fn cluster_info_and_the_uncovered_slots() {
        let mut v = ClusterView {
            shards: vec![
                shard("a:1", vec![(0, 5460)], 1),
                shard("b:1", vec![(5461, 10000), (10100, 10922)], 0),
            ],
            ..ClusterView::default()
        };
        v.slots_covered = v.shards.iter().map(|s| s.slot_count).sum();
        v.set_info(
            "a:1",
            "cluster_state:fail\r\ncluster_slots_assigned:10823\r\ncluster_slots_ok:10823\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\ncluster_size:2\r\n",
        );
        assert_eq!(v.state.as_deref(), Some("fail"));
        assert_eq!((v.slots_assigned, v.size), (Some(10823), Some(2)));
        assert_eq!(v.unassigned(), vec![(10001, 10099), (10923, 16383)]);
        assert_eq!(ranges_text(&v.unassigned()), "10001-10099,10923-16383");
        assert!(!v.is_ok());
        assert_eq!(v.unreplicated().count(), 1);
        assert_eq!(v.keys(), 4);
        assert_eq!(
            v.summary(),
            "cluster fail: 10823/16384 slots ok, 2 masters, 3 known nodes, 1 with a replica up"
        );
    }

    #[test]
    fn keys_come_from_the_keyspace_section() {
        assert_eq!(
            keys_of("# Keyspace\r\ndb0:keys=34,expires=2,avg_ttl=0\r\n"),
            Some(34)
        );
        assert_eq!(keys_of("# Keyspace\r\n"), Some(0));
        assert_eq!(keys_of("# Server\r\nredis_version:7\r\n"), None);
    }
}
