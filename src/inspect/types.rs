//! The snapshot: one typed, serde-serializable picture of a cluster, read
//! from Redis (and RabbitMQ, and each node's HTTP health check) without
//! changing anything. The CLI prints it; the console draws it.

pub use crate::config::WorkerMode;
pub use crate::node::clock::ClockOffset;
pub use crate::node::identity::NodeIdentity;
pub use crate::node::state::NodeState;
pub use crate::node::supervisor::ProcessSlot;
use serde::{Deserialize, Serialize};

/// The state of one data source in a snapshot: read, unreachable, or not
/// part of this cluster's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "data", rename_all = "snake_case")]
pub enum Source<T> {
    /// Read successfully.
    Ok(T),
    /// Could not be read; the reason names the server (password masked).
    Unavailable {
        /// The server or variable, e.g. `LOCK_ADAPTER_REDIS_URL redis://127.0.0.1:6379/2`.
        source: String,
        /// One line.
        reason: String,
    },
    /// This adapter is memory/local: nothing shared to read.
    NotConfigured,
}

impl<T> Source<T> {
    /// The data, when read.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Source::Ok(t) => Some(t),
            _ => None,
        }
    }
}

/// One cluster, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unix ms when reading started.
    pub taken_at_ms: u64,
    /// How long reading took, ms.
    pub took_ms: u64,
    /// `CLUSTER_NAME`.
    pub cluster: String,
    /// Fingerprint of the configuration the inspector read with.
    pub config_fingerprint: String,
    /// Nodes in the registry, with live health checks.
    pub nodes: Source<Vec<NodeView>>,
    /// The 32 worker-ID slots.
    pub leases: Source<Vec<LeaseView>>,
    /// Held locks.
    pub locks: Source<Vec<LockView>>,
    /// Sync-signal streams.
    pub streams: Source<Vec<StreamView>>,
    /// Message queues.
    pub queues: Source<Vec<QueueView>>,
    /// The maintenance flag.
    pub maintenance: Source<Option<MaintenanceView>>,
    /// Redis and RabbitMQ servers in use.
    pub servers: Vec<ServerView>,
    /// Nodes whose configuration or version differs from the majority.
    pub drift: Drift,
    /// Keys under the namespace that hold something clusterops did not write.
    pub unreadable: Vec<Unreadable>,
    /// Redis round trips the snapshot took (all servers together).
    pub round_trips: u32,
    /// The clock of the host that took the snapshot against the
    /// coordination Redis (`INFO` `server_time_usec`); `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspector_clock: Option<ClockOffset>,
}

#[cfg(test)]
impl NodeView {
    /// A healthy running node `id` on version 2 (schema 2, storage shared,
    /// clock 300 µs off with a 400 µs round trip), for the checks' tests.
    pub(crate) fn healthy(id: &str) -> Self {
        Self {
            id: NodeIdentity {
                node_id: id.into(),
                host: "h".into(),
                http_addr: "127.0.0.1:1".into(),
                pid: 1,
                app_version: "2".into(),
                schema_version: Some("2".into()),
                worker_id: Some(0),
                state: NodeState::Running,
                state_reason: "ready".into(),
                started_at_ms: 0,
            },
            heartbeat_age_ms: 100,
            ttl_left_ms: 5000,
            config_fingerprint: "fp".into(),
            config_drift: vec![],
            storage_shared: Some(true),
            storage_reason: None,
            health: Health::read(Some(200), "ok", 1),
            clock_offset: Some(ClockOffset {
                offset_us: 300,
                rtt_us: 400,
                measured_at_ms: 0,
            }),
            worker_mode: WorkerMode::All,
            process: None,
        }
    }
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot of cluster `c` that read only `servers` (for the checks'
    /// tests).
    pub(crate) fn of_servers(servers: Vec<ServerView>) -> Self {
        Self {
            taken_at_ms: 0,
            took_ms: 0,
            cluster: "c".into(),
            config_fingerprint: String::new(),
            nodes: Source::NotConfigured,
            leases: Source::NotConfigured,
            locks: Source::NotConfigured,
            streams: Source::NotConfigured,
            queues: Source::NotConfigured,
            maintenance: Source::NotConfigured,
            servers,
            drift: Drift::default(),
            unreadable: vec![],
            round_trips: 0,
            inspector_clock: None,
        }
    }
}

/// A key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The key.
    pub key: String,
    /// Why, in one line.
    pub reason: String,
}

/// One node: its registry record and what its health check said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Who the node is and the state it reported in its last heartbeat
    /// (flattened: the JSON stays flat).
    #[serde(flatten)]
    pub id: NodeIdentity,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Milliseconds before its record expires.
    pub ttl_left_ms: i64,
    /// Configuration fingerprint.
    pub config_fingerprint: String,
    /// Settings whose fingerprint differs from the majority (names only).
    pub config_drift: Vec<String>,
    /// Whether the node sees the other nodes' storage markers.
    pub storage_shared: Option<bool>,
    /// Why not.
    pub storage_reason: Option<String>,
    /// The live health check.
    pub health: Health,
    /// The node's clock against Redis `TIME`, from its last heartbeat
    /// (`None`: not measured, or a version that does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset: Option<ClockOffset>,
    /// `WORKER_MODE` the node runs with (an older version's record has
    /// none: it does everything).
    #[serde(default)]
    pub worker_mode: WorkerMode,
    /// Under `CLUSTER_MODE`: which process of its host it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSlot>,
}

pub use super::types_health::{Health, HealthAnswer};

/// One worker-ID slot (0..31).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The worker ID.
    pub worker_id: u8,
    /// Holder node id, `None` when free.
    pub holder: Option<String>,
    /// Whether the holder is a live node in the registry.
    pub holder_live: bool,
    /// Milliseconds before the lease expires without renewal.
    pub ttl_left_ms: Option<i64>,
    /// Unix ms when the holder acquired it.
    pub acquired_at_ms: Option<u64>,
    /// Last issued timestamp kept for this ID (seconds since the snowflake epoch).
    pub last_ts: Option<u64>,
    /// The slot's key holds something unreadable.
    pub unreadable: Option<String>,
}

/// One held lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockView {
    /// Lock name.
    pub name: String,
    /// Holder node id.
    pub holder: String,
    /// Whether the holder is a live node.
    pub holder_live: bool,
    /// Unix ms when acquired.
    pub acquired_at_ms: u64,
    /// Milliseconds held.
    pub age_ms: u64,
    /// Milliseconds before it expires without renewal.
    pub ttl_left_ms: i64,
    /// Its fencing token.
    pub fencing_token: u64,
    /// Waiters, when known.
    pub waiters: Option<u32>,
}

/// One sync-signal channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamView {
    /// Channel name.
    pub channel: String,
    /// Entries in the stream.
    pub length: u64,
    /// First entry ID.
    pub first_id: Option<String>,
    /// Last entry ID.
    pub last_id: Option<String>,
    /// Each subscribed node's position.
    pub readers: Vec<StreamReader>,
}

/// One node's position in one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReader {
    /// Node id.
    pub node_id: String,
    /// Whether the node is live.
    pub live: bool,
    /// Last entry ID it handled.
    pub last_id: String,
    /// Entries published after it (not yet handled).
    pub lag: u64,
    /// Milliseconds since it last recorded handling.
    pub last_handled_age_ms: Option<u64>,
    /// Age of the oldest entry it has not handled (the first after its
    /// cursor; a stream ID carries its time in ms): its lag as time.
    /// `None` when caught up or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unhandled_age_ms: Option<u64>,
}

/// One message queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// `redis` or `rabbitmq`.
    pub backend: String,
    /// Messages waiting (not yet delivered).
    pub waiting: u64,
    /// Delivered, not yet acknowledged.
    pub in_flight: u64,
    /// Age of the oldest in-flight message, ms.
    pub oldest_in_flight_age_ms: Option<u64>,
    /// Dead letters.
    pub dead_letters: u64,
    /// Consumers attached.
    pub consumers: u64,
    /// Acknowledged messages per second, when known (RabbitMQ management
    /// API, or the difference between two snapshots).
    pub ack_rate: Option<f64>,
    /// Age of the oldest unhandled message (waiting or in flight), ms:
    /// the backlog as time. `None` when empty or unknown (RabbitMQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_ms: Option<u64>,
    /// The pause flag (`clusterops queue pause`), when set: every node's
    /// consumers of this queue take nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::adapters::queue::PauseFlag>,
}

/// The maintenance flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceView {
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Unix ms when set.
    pub since_ms: u64,
}

/// One Redis or RabbitMQ server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// `redis` or `rabbitmq`.
    pub kind: String,
    /// URL with the password masked.
    pub url: String,
    /// Variables that point at it.
    pub used_by: Vec<String>,
    /// Server version.
    pub version: Option<String>,
    /// Redis: `master` or `slave` (a Redis Cluster: `master` when every
    /// master read reports it, else the first other role reported).
    pub role: Option<String>,
    /// Redis: used memory, bytes.
    pub used_memory: Option<u64>,
    /// Redis: maxmemory, bytes (0: none).
    pub maxmemory: Option<u64>,
    /// Redis: maxmemory-policy.
    pub maxmemory_policy: Option<String>,
    /// Connected clients.
    pub connected_clients: Option<u64>,
    /// Redis modules loaded.
    pub modules: Vec<String>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Redis: the server process's `run_id` (`INFO server`), its true
    /// identity: two URLs (two databases, `localhost` and `127.0.0.1`)
    /// with the same `run_id` are one server ([`super::instances`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// RabbitMQ: `ok` when the management API answered, else why not (the
    /// unacknowledged counts and rates need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<String>,
    /// Redis behind a Sentinel URL: the master the sentinels name, its
    /// replicas and each sentinel's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<super::topology::TopologyView>,
    /// Redis Cluster: the cluster's state and one entry per master (its
    /// slots, replicas, memory and keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster_view::ClusterView>,
    /// Redis holding the locks or the worker-ID leases: whether it keeps
    /// its data across a restart (on a Redis Cluster, the master that
    /// keeps least; each master's own is in its shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<super::persistence::Persistence>,
}

/// Nodes that disagree with the majority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The majority's configuration fingerprint.
    pub majority_fingerprint: Option<String>,
    /// The majority's app version.
    pub majority_version: Option<String>,
    /// Node ids with another fingerprint.
    pub fingerprint: Vec<String>,
    /// Node ids with another app version.
    pub version: Vec<String>,
}

/// Outcome of one preflight check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Works, but an operator should look.
    Warn,
    /// Unsafe or broken.
    Fail,
}

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable id, e.g. `same-fingerprint`.
    pub id: String,
    /// Pass, warn or fail.
    pub status: CheckStatus,
    /// One line.
    pub reason: String,
}

#[cfg(test)]
impl CheckResult {
    /// Test helper: the status is `status` and the reason starts with `prefix`.
    pub(crate) fn assert_reason_starts(&self, status: CheckStatus, prefix: &str) {
        assert_eq!(self.status, status, "{}", self.reason);
        assert!(self.reason.starts_with(prefix), "{}", self.reason);
    }

    /// Test helper: the status is `status` and the reason contains `part`.
    pub(crate) fn assert_reason_contains(&self, status: CheckStatus, part: &str) {
        assert_eq!(self.status, status, "{}", self.reason);
        assert!(self.reason.contains(part), "{}", self.reason);
    }
}

/// The cluster at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passes.
    Healthy,
    /// Warnings, or some failures while nodes still serve.
    Degraded,
    /// No node serves, or the coordination Redis is unreachable.
    Down,
}
