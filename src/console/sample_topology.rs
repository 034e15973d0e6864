//! The console's samples on the other Redis topologies (re-exported by
//! `sample`): a cluster whose coordination Redis is behind Sentinel (two
//! of three sentinels answering) and one on a 3-master Redis Cluster.

use super::sample::{SENTINEL_URL, healthy, redis_server};
use crate::inspect::*;

/// The Sentinel sample's topology: `master` named by two of the three
/// sentinels (the third does not answer), `replica` online.
pub fn sentinel_topology(master: &str, replica: &str) -> TopologyView {
    let answering = |address: &str| SentinelView {
        address: address.into(),
        answered: true,
        error: None,
        names_master: Some(master.into()),
        quorum: Some(2),
        other_sentinels: Some(2),
        flags: vec![MasterFlag::Master],
        ckquorum: Some(QuorumCheck {
            ok: true,
            usable: Some(2),
            detail: "OK 2 usable Sentinels. Quorum and failover authorization can be reached"
                .into(),
        }),
    };
    TopologyView {
        master_name: "mymaster".into(),
        master: Some(master.into()),
        read_from: Some(master.into()),
        read_role: Some(RedisRole::Master),
        master_repl_offset: Some(88_412_100),
        replicas: vec![ReplicaView {
            address: replica.into(),
            state: ReplicaState::Online,
            offset: Some(88_412_100),
            lag_s: Some(0),
            behind_bytes: Some(0),
        }],
        sentinels: vec![
            answering("10.0.0.7:26379"),
            answering("10.0.0.8:26379"),
            SentinelView::no_answer(
                "10.0.0.9:26379".into(),
                "connection refused (os error 111)".into(),
            ),
        ],
    }
}

/// The healthy cluster on Redis behind Sentinel: master 10.0.0.21, one
/// replica online, two of three sentinels answering (quorum 2).
pub fn sentinel() -> Snapshot {
    let mut s = healthy();
    let mut r = redis_server("8.0.2", "noeviction");
    r.url = SENTINEL_URL.into();
    r.topology = Some(sentinel_topology("10.0.0.21:6379", "10.0.0.22:6379"));
    s.servers[0] = r;
    s
}

/// A Redis Cluster of three masters, the third without a replica: one shard
/// per master (`10.0.0.3N:6379`, replicas `10.0.0.4N:6379`).
pub fn cluster_view() -> ClusterView {
    let shard = |i: u16, slots: (u16, u16), replica: bool, keys: u64| ShardView {
        master: format!("10.0.0.3{i}:6379"),
        role: Some(RedisRole::Master),
        slots: vec![slots],
        slot_count: u32::from(slots.1 - slots.0) + 1,
        replicas: replica
            .then(|| ClusterReplica {
                address: format!("10.0.0.4{i}:6379"),
                link: ReplicaLink::Up,
                state: Some(ReplicaState::Online),
                lag_s: Some(0),
                behind_bytes: Some(0),
            })
            .into_iter()
            .collect(),
        used_memory: Some((14 + u64::from(i)) * 1024 * 1024),
        maxmemory: Some(0),
        keys: Some(keys),
        cluster_state: Some("ok".into()),
        error: None,
        persistence: None,
    };
    ClusterView {
        state: Some("ok".into()),
        info_from: Some("10.0.0.31:6379".into()),
        slots_assigned: Some(16384),
        slots_ok: Some(16384),
        slots_pfail: Some(0),
        slots_fail: Some(0),
        known_nodes: Some(5),
        size: Some(3),
        slots_covered: 16384,
        shards: vec![
            shard(1, (0, 5460), true, 1_204),
            shard(2, (5461, 10922), true, 1_187),
            shard(3, (10923, 16383), false, 1_231),
        ],
    }
}

/// The healthy cluster on a Redis Cluster ([`cluster_view`]): every slot
/// ok, one master without a replica.
pub fn redis_cluster() -> Snapshot {
    let mut s = healthy();
    let mut r = redis_server("8.0.2", "noeviction");
    r.url = "redis://:***@10.0.0.31:6379/0".into();
    r.used_memory = Some(48 * 1024 * 1024);
    r.maxmemory = Some(0);
    r.connected_clients = Some(123);
    r.cluster = Some(cluster_view());
    s.servers[0] = r;
    s
}
