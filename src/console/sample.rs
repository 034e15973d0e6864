//! Synthetic snapshots: an empty cluster, a healthy and a degraded 3-node
//! cluster, one whose Redis is down, one on Redis behind Sentinel, one on
//! a Redis Cluster (those two in sample_topology.rs), and a large one. They are the
//! console's test fixtures and the render benchmark's input; no secrets
//! (every URL is masked the way the inspector masks it).

use crate::inspect::*;

/// When every sample was taken: 2023-11-14 22:13:20 UTC.
pub const TAKEN_AT_MS: u64 = 1_700_000_000_000;
const FP: &str = "3f9a1c27be40d5e8a9b6c4d2e1f07a5b";
const FP_OTHER: &str = "b71e04c9a2d3f5e6a7b8c9d0e1f2a3b4";
const REDIS: &str = "redis://:***@10.0.0.5:6379/0";
const AMQP: &str = "amqp://app:***@10.0.0.6:5672/%2f";
pub(super) const SENTINEL_URL: &str =
    "redis-sentinel://:***@10.0.0.7:26379,10.0.0.8:26379,10.0.0.9:26379/0#mymaster";

fn node(i: usize, id: &str) -> NodeView {
    NodeView {
        id: NodeIdentity {
            node_id: id.to_string(),
            host: format!("app-{}", i + 1),
            http_addr: format!("10.0.0.{}:8080", 11 + i),
            pid: 4100 + i as u32,
            app_version: "1.4.2".into(),
            schema_version: Some("2024.06.1".into()),
            worker_id: Some(i as u16),
            state: NodeState::Running,
            state_reason: "serving".into(),
            started_at_ms: TAKEN_AT_MS - 3 * 3_600_000 - i as u64 * 60_000,
        },
        heartbeat_age_ms: 800 + i as u64 * 350,
        ttl_left_ms: 14_000 - i as i64 * 350,
        config_fingerprint: FP.into(),
        config_drift: vec![],
        storage_shared: Some(true),
        storage_reason: None,
        health: Health::read(Some(200), "ok", 3 + i as u64),
        // +0.4 ms, +0.1 ms, -0.2 ms, … against Redis TIME, ±0.2 ms.
        clock_offset: Some(ClockOffset {
            offset_us: 400 - 300 * (i as i64 % 4),
            rtt_us: 400,
            measured_at_ms: TAKEN_AT_MS - 800 - i as u64 * 350,
        }),
        // The third node is an application node (WORKER_MODE=!).
        worker_mode: if i == 2 {
            crate::config::WorkerMode::HttpOnly
        } else {
            crate::config::WorkerMode::All
        },
        process: None,
    }
}

fn leases(holders: &[(u8, &str, bool)]) -> Vec<LeaseView> {
    (0..32u8)
        .map(|w| match holders.iter().find(|h| h.0 == w) {
            Some((_, holder, live)) => LeaseView {
                worker_id: w,
                holder: Some(holder.to_string()),
                holder_live: *live,
                ttl_left_ms: Some(if *live {
                    25_000 - w as i64 * 500
                } else {
                    9_000
                }),
                acquired_at_ms: Some(TAKEN_AT_MS - 3 * 3_600_000),
                last_ts: Some(52_000_000 + w as u64),
                unreadable: None,
            },
            None => LeaseView {
                worker_id: w,
                holder: None,
                holder_live: false,
                ttl_left_ms: None,
                acquired_at_ms: None,
                last_ts: Some(51_000_000),
                unreadable: None,
            },
        })
        .collect()
}

fn lock(name: &str, holder: &str, live: bool, age_ms: u64, token: u64) -> LockView {
    LockView {
        name: name.into(),
        holder: holder.into(),
        holder_live: live,
        acquired_at_ms: TAKEN_AT_MS - age_ms,
        age_ms,
        ttl_left_ms: 30_000 - (age_ms % 30_000) as i64,
        fencing_token: token,
        waiters: Some(0),
    }
}

fn stream(channel: &str, length: u64, readers: &[(&str, bool, u64, u64)]) -> StreamView {
    let last = 1_699_999_990_000 + length;
    StreamView {
        channel: channel.into(),
        length,
        first_id: Some("1699990000000-0".into()),
        last_id: Some(format!("{last}-0")),
        readers: readers
            .iter()
            .map(|(id, live, lag, idle)| StreamReader {
                node_id: id.to_string(),
                live: *live,
                last_id: format!("{}-0", last - lag),
                lag: *lag,
                last_handled_age_ms: Some(*idle),
                // Behind by about 200 ms per entry.
                oldest_unhandled_age_ms: (*lag > 0).then_some(lag * 200),
            })
            .collect(),
    }
}

fn queue(
    name: &str,
    backend: &str,
    waiting: u64,
    in_flight: u64,
    dead: u64,
    consumers: u64,
) -> QueueView {
    QueueView {
        name: name.into(),
        backend: backend.into(),
        waiting,
        in_flight,
        oldest_in_flight_age_ms: (in_flight > 0).then_some(4_200),
        dead_letters: dead,
        consumers,
        ack_rate: Some(12.5),
        // RabbitMQ does not tell the age of its oldest message.
        oldest_age_ms: (backend == "redis" && waiting + in_flight > 0)
            .then_some(1_000 * (waiting + in_flight)),
        paused: None,
    }
}

pub(super) fn redis_server(version: &str, policy: &str) -> ServerView {
    ServerView {
        kind: "redis".into(),
        url: REDIS.into(),
        used_by: vec![
            "PUBSUB_ADAPTER_REDIS_URL".into(),
            "LOCK_ADAPTER_REDIS_URL".into(),
            "REDIS_URL".into(),
        ],
        version: Some(version.into()),
        role: Some("master".into()),
        used_memory: Some(48 * 1024 * 1024),
        maxmemory: Some(2 * 1024 * 1024 * 1024),
        maxmemory_policy: Some(policy.into()),
        connected_clients: Some(41),
        modules: vec![],
        error: None,
        run_id: None,
        management: None,
        topology: None,
        cluster: None,
        persistence: Some(crate::inspect::persistence::Persistence::new(
            "aof_enabled:1\r\n",
            Ok("3600 1".into()),
        )),
    }
}

fn rabbit_server() -> ServerView {
    ServerView {
        kind: "rabbitmq".into(),
        url: AMQP.into(),
        used_by: vec!["QUEUE_ADAPTER_RABBITMQ_URL".into()],
        version: Some("4.0.5".into()),
        role: None,
        used_memory: None,
        maxmemory: None,
        maxmemory_policy: None,
        connected_clients: Some(6),
        modules: vec![],
        error: None,
        run_id: None,
        management: Some("ok".into()),
        topology: None,
        cluster: None,
        persistence: None,
    }
}

fn base(nodes: Vec<NodeView>) -> Snapshot {
    Snapshot {
        taken_at_ms: TAKEN_AT_MS,
        took_ms: 38,
        cluster: "shop-prod".into(),
        config_fingerprint: FP.into(),
        nodes: Source::Ok(nodes),
        leases: Source::Ok(leases(&[])),
        locks: Source::Ok(vec![]),
        streams: Source::Ok(vec![]),
        queues: Source::Ok(vec![]),
        maintenance: Source::Ok(None),
        servers: vec![redis_server("8.0.2", "noeviction"), rabbit_server()],
        drift: Drift {
            majority_fingerprint: Some(FP.into()),
            majority_version: Some("1.4.2".into()),
            ..Drift::default()
        },
        unreadable: vec![],
        round_trips: 9,
        inspector_clock: None,
    }
}

/// A configured cluster with no node running yet.
pub fn empty() -> Snapshot {
    let mut s = base(vec![]);
    s.drift = Drift::default();
    s.round_trips = 6;
    s
}

/// Three healthy nodes, no drift, short locks, no lag, no dead letters.
pub fn healthy() -> Snapshot {
    let mut s = base(vec![
        node(0, "node-a"),
        node(1, "node-b"),
        node(2, "node-c"),
    ]);
    s.leases = Source::Ok(leases(&[
        (0, "node-a", true),
        (1, "node-b", true),
        (2, "node-c", true),
    ]));
    s.locks = Source::Ok(vec![
        lock("cron:cleanup", "node-a", true, 2_300, 1_204),
        lock("workflow:42", "node-c", true, 850, 1_311),
    ]);
    let readers = [
        ("node-a", true, 0, 1_200),
        ("node-b", true, 0, 900),
        ("node-c", true, 1, 300),
    ];
    s.streams = Source::Ok(vec![
        stream("cache:invalidate", 1_024, &readers),
        stream("app:reload", 12, &readers),
    ]);
    s.queues = Source::Ok(vec![
        queue("workflow", "rabbitmq", 3, 2, 0, 3),
        queue("email", "rabbitmq", 0, 0, 0, 3),
    ]);
    s
}

/// One node unhealthy, one with configuration drift, one whose clock is
/// 3 s ahead, a stale lease, a long-held lock, dead letters, a lagging
/// reader, and Redis 7 evicting keys.
pub fn degraded() -> Snapshot {
    let mut a = node(0, "node-a");
    if let Some(c) = &mut a.clock_offset {
        c.offset_us = -3_021_400;
    }
    let mut b = node(1, "node-b");
    b.health = Health::read(Some(503), "database unreachable", 2_004);
    b.id.state = NodeState::Unknown("degraded".into());
    b.id.state_reason = "database unreachable".into();
    let mut c = node(2, "node-c");
    c.config_fingerprint = FP_OTHER.into();
    c.config_drift = vec!["CACHE_REDIS_URL".into(), "APP_KEY".into()];
    let mut s = base(vec![a, b, c]);
    s.drift.fingerprint = vec!["node-c".into()];
    s.leases = Source::Ok(leases(&[
        (0, "node-a", true),
        (1, "node-b", true),
        (2, "node-c", true),
        (5, "node-old", false),
    ]));
    s.locks = Source::Ok(vec![
        lock("migrations", "node-a", true, 14 * 60_000 + 5_000, 977),
        lock("cron:cleanup", "node-b", true, 2_300, 1_204),
        lock("report:daily", "node-old", false, 95_000, 1_188),
    ]);
    let readers = [
        ("node-a", true, 0, 1_200),
        ("node-b", true, 342, 95_000),
        ("node-c", true, 0, 300),
    ];
    s.streams = Source::Ok(vec![
        stream("cache:invalidate", 2_048, &readers),
        stream("app:reload", 12, &readers[..1]),
    ]);
    s.queues = Source::Ok(vec![
        queue("workflow", "rabbitmq", 118, 9, 0, 2),
        queue("email", "rabbitmq", 40, 0, 17, 2),
    ]);
    s.servers[0] = redis_server("7.0.15", "allkeys-lru");
    s
}

/// The coordination Redis does not answer: every source is unavailable.
pub fn redis_down() -> Snapshot {
    fn down<T>(var: &str) -> Source<T> {
        Source::Unavailable {
            source: format!("{var} {REDIS}"),
            reason: "connection refused (os error 111)".into(),
        }
    }
    let mut s = base(vec![]);
    s.nodes = down("REDIS_URL");
    s.leases = down("REDIS_URL");
    s.locks = down("LOCK_ADAPTER_REDIS_URL");
    s.streams = down("PUBSUB_ADAPTER_REDIS_URL");
    s.queues = Source::Unavailable {
        source: format!("QUEUE_ADAPTER_RABBITMQ_URL {AMQP}"),
        reason: "connection refused (os error 111)".into(),
    };
    s.maintenance = down("REDIS_URL");
    s.drift = Drift::default();
    let mut r = redis_server("", "");
    (
        r.version,
        r.role,
        r.used_memory,
        r.maxmemory,
        r.maxmemory_policy,
        r.connected_clients,
    ) = (None, None, None, None, None, None);
    r.error = Some("connection refused (os error 111)".into());
    s.servers = vec![r];
    s.took_ms = 2_003;
    s.round_trips = 0;
    s
}

/// 32 nodes, all 32 worker IDs held, 1,000 locks, 10 streams read by every
/// node, 10 queues: the render benchmark's input.
pub fn large() -> Snapshot {
    large_with_locks(1000)
}

/// [`large`] with `locks` held locks instead of 1,000 (`clusterops bench
/// render --locks`).
pub fn large_with_locks(locks: u64) -> Snapshot {
    let ids: Vec<String> = (0..32).map(|i| format!("node-{i:02}")).collect();
    let mut s = base(ids.iter().enumerate().map(|(i, id)| node(i, id)).collect());
    let holders: Vec<(u8, &str, bool)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u8, id.as_str(), true))
        .collect();
    s.leases = Source::Ok(leases(&holders));
    s.locks = Source::Ok(
        (0..locks)
            .map(|i| {
                lock(
                    &format!("record:{i:04}"),
                    &ids[i as usize % 32],
                    true,
                    (i * 997) % 120_000,
                    10_000 + i,
                )
            })
            .collect(),
    );
    let readers: Vec<(&str, bool, u64, u64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), true, (i as u64 * 7) % 150, 500))
        .collect();
    s.streams = Source::Ok(
        (0..10)
            .map(|c| stream(&format!("channel:{c}"), 10_000 + c, &readers))
            .collect(),
    );
    s.queues = Source::Ok(
        (0..10)
            .map(|q| queue(&format!("queue-{q}"), "redis", q * 100, q, q % 3, 4))
            .collect(),
    );
    s
}

pub use super::sample_topology::{cluster_view, redis_cluster, sentinel, sentinel_topology};

/// Every named sample, for tests that cover them all.
pub fn all() -> Vec<(&'static str, Snapshot)> {
    vec![
        ("empty", empty()),
        ("healthy", healthy()),
        ("degraded", degraded()),
        ("redis-down", redis_down()),
        ("sentinel", sentinel()),
        ("cluster", redis_cluster()),
    ]
}
