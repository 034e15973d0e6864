//! What every part of a running node shares: identity, state, status facts
//! and counters. Adapter handles live in [`super::app::AppHandles`].

use super::clock::ClockOffset;
use super::metrics::Metrics;
use super::state::{NodeState, StateCell};
use super::version::AppVersion;
use crate::adapters::worker_id::WorkerLease;
use crate::clock::now_ms;
use crate::config::{Config, WorkerMode};
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Identity, state and facts of one node.
#[derive(Debug)]
pub struct NodeShared {
    /// Unique node id.
    pub node_id: String,
    /// Host name.
    pub host: String,
    /// The address the HTTP server listens on.
    pub http_addr: String,
    /// The binary's app version.
    pub app_version: AppVersion,
    /// The validated configuration.
    pub config: Config,
    /// Unix ms at start.
    pub started_at_ms: u64,
    /// Monotonic start, for uptime.
    pub started: Instant,
    /// Lifecycle state.
    pub state: StateCell,
    /// Counters.
    pub metrics: Metrics,
    /// Schema version found in the database.
    pub schema_version: RwLock<Option<String>>,
    /// The worker-ID lease, once taken.
    pub lease: RwLock<Option<Arc<WorkerLease>>>,
    /// Shared-storage check: (shared?, reason).
    pub storage: RwLock<(Option<bool>, Option<String>)>,
    /// The maintenance flag as last seen: (by, reason, since).
    pub maintenance: RwLock<Option<super::maintenance::MaintenanceFlag>>,
    /// Warnings found at start (e.g. memory adapters), shown in status.
    pub warnings: RwLock<Vec<String>>,
    /// Whether this node has been asked to stop.
    pub draining: std::sync::atomic::AtomicBool,
    /// Requests being served right now.
    pub in_flight: AtomicU64,
    /// Set while the coordination Redis cannot be reached (heartbeat loop).
    pub redis_trouble: RwLock<Option<RedisTrouble>>,
    /// The clock against the coordination Redis, as last measured by the
    /// heartbeat loop (`None`: not yet, the last `TIME` failed, or no Redis).
    pub clock: RwLock<Option<ClockOffset>>,
    /// Under `CLUSTER_MODE`: which process of its host this node is.
    pub process: Option<super::supervisor::ProcessSlot>,
    /// The queues this node consumes, with whether their consumers are
    /// paused now (the queue's pause flag as they last read it).
    pub queue_pauses: RwLock<Vec<(String, crate::adapters::queue::PauseState)>>,
}

/// The coordination Redis could not be reached: since when, and the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTrouble {
    /// Unix ms of the first failure in a row.
    pub since_ms: u64,
    /// The last error, one line.
    pub reason: String,
}

/// `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Unique node id.
    pub node_id: String,
    /// Host name.
    pub host: String,
    /// HTTP address.
    pub http_addr: String,
    /// OS pid.
    pub pid: u32,
    /// App version.
    pub app_version: String,
    /// Schema version in the database.
    pub schema_version: Option<String>,
    /// Worker ID held.
    pub worker_id: Option<u16>,
    /// Lifecycle state.
    pub state: NodeState,
    /// Why.
    pub state_reason: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Unix ms at start.
    pub started_at_ms: u64,
    /// Configuration fingerprint.
    pub config_fingerprint: String,
    /// Per-setting fingerprints.
    pub config_parts: BTreeMap<String, String>,
    /// Adapters in use (no secrets).
    pub adapters: BTreeMap<String, String>,
    /// Shared storage seen?
    pub storage_shared: Option<bool>,
    /// Which markers are missing.
    pub storage_reason: Option<String>,
    /// Maintenance flag, if set.
    pub maintenance: Option<super::maintenance::MaintenanceFlag>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Why the node is degraded now (it serves, but without something the
    /// cluster relies on: its Redis, its worker ID); empty when it is not.
    pub degraded: Vec<String>,
    /// The clock against the coordination Redis's `TIME` (null: no Redis,
    /// or not measured yet; see `clock`).
    pub clock_offset: Option<ClockOffset>,
    /// The same in words: `120 µs ahead of Redis TIME (±80 µs)`, `not
    /// measured yet`, or `n/a: no Redis configured, no shared clock`.
    pub clock: String,
    /// `WORKER_MODE` as written (`""` everything, `"!"` HTTP only, `"-"`
    /// nothing, or the topics).
    pub worker_mode: WorkerMode,
    /// Under `CLUSTER_MODE`: which process of its host (null otherwise).
    pub process: Option<super::supervisor::ProcessSlot>,
    /// Queues whose consumers on this node are paused now
    /// (`clusterops queue pause`).
    pub paused_queues: Vec<String>,
}

impl NodeShared {
    /// A node in state `starting`.
    pub fn new(
        node_id: String,
        host: String,
        http_addr: String,
        app_version: AppVersion,
        config: Config,
    ) -> Self {
        Self {
            node_id,
            host,
            http_addr,
            app_version,
            config,
            started_at_ms: now_ms(),
            started: Instant::now(),
            state: StateCell::default(),
            metrics: Metrics::default(),
            schema_version: RwLock::new(None),
            lease: RwLock::new(None),
            storage: RwLock::new((None, None)),
            maintenance: RwLock::new(None),
            warnings: RwLock::new(Vec::new()),
            draining: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            redis_trouble: RwLock::new(None),
            clock: RwLock::new(None),
            process: None,
            queue_pauses: RwLock::new(Vec::new()),
        }
    }

    /// The heartbeat loop could not reach the coordination Redis. Returns
    /// true when this starts a new outage (the first failure in a row).
    pub fn redis_failed(&self, reason: &dyn fmt::Display) -> bool {
        let reason = reason.to_string().lines().next().unwrap_or("").to_string();
        let mut slot = self.redis_trouble.write();
        match slot.as_mut() {
            Some(t) => {
                t.reason = reason;
                false
            }
            None => {
                *slot = Some(RedisTrouble {
                    since_ms: now_ms(),
                    reason,
                });
                true
            }
        }
    }

    /// The heartbeat loop reached the coordination Redis. Returns the
    /// outage that this ends, if one was going on.
    pub fn redis_ok(&self) -> Option<RedisTrouble> {
        if self.redis_trouble.read().is_none() {
            return None;
        }
        self.redis_trouble.write().take()
    }

    /// Why the node is degraded now, one line each (empty: it is not).
    pub fn degraded(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = self.redis_trouble.read().as_ref() {
            let var = self
                .config
                .coordination_redis()
                .map_or("REDIS_URL", |(name, _)| name);
            out.push(format!(
                "{var} unreachable for {} s ({}): no heartbeat, maintenance flag not read",
                now_ms().saturating_sub(t.since_ms) / 1000,
                t.reason
            ));
        }
        let (state, _) = self.state.get();
        if matches!(state, NodeState::Running | NodeState::Maintenance)
            && self.lease.read().is_some()
            && self.worker_id().is_none()
        {
            out.push(
                "no worker ID (lease not renewed): snowflake IDs paused until one is re-acquired"
                    .to_string(),
            );
        }
        out
    }

    /// The worker ID, if one is held and valid now.
    pub fn worker_id(&self) -> Option<u16> {
        let lease = self.lease.read();
        let lease = lease.as_ref()?;
        if lease.is_valid() {
            lease.worker_id().map(u16::from)
        } else {
            None
        }
    }

    /// Worker-ID lease renewals so far.
    pub fn worker_id_renewals(&self) -> u64 {
        self.lease.read().as_ref().map_or(0, |l| l.renewals())
    }

    /// The status report.
    pub fn status(&self) -> StatusReport {
        let (state, state_reason) = self.state.get();
        let (storage_shared, storage_reason) = self.storage.read().clone();
        let mut adapters = BTreeMap::new();
        let c = &self.config;
        adapters.insert(
            "cache".into(),
            match &c.cache {
                crate::config::CacheStore::Memory => "memory".into(),
                crate::config::CacheStore::Redis(u) => format!("redis {u}"),
            },
        );
        adapters.insert(
            "sync_signals".into(),
            match &c.pubsub {
                crate::config::PubsubAdapter::Memory => "memory".into(),
                crate::config::PubsubAdapter::Redis(u) => format!("redis {u}"),
            },
        );
        adapters.insert(
            "queue".into(),
            match &c.queue {
                crate::config::QueueAdapter::Memory => "memory".into(),
                crate::config::QueueAdapter::Redis(u) => format!("redis {u}"),
                crate::config::QueueAdapter::Rabbitmq(u) => format!("rabbitmq {u}"),
            },
        );
        adapters.insert(
            "lock".into(),
            match &c.lock {
                crate::config::LockAdapter::Local => "local".into(),
                crate::config::LockAdapter::Redis(u) => format!("redis {u}"),
            },
        );
        adapters.insert(
            "worker_id".into(),
            match &c.worker_id_redis {
                None => "random".into(),
                Some(u) => format!("redis {u}"),
            },
        );
        StatusReport {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            http_addr: self.http_addr.clone(),
            pid: std::process::id(),
            app_version: self.app_version.to_string(),
            schema_version: self.schema_version.read().clone(),
            worker_id: self.worker_id(),
            state,
            state_reason,
            uptime_s: self.started.elapsed().as_secs(),
            started_at_ms: self.started_at_ms,
            config_fingerprint: c.fingerprint(),
            config_parts: c
                .fingerprint_parts()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            adapters,
            storage_shared,
            storage_reason,
            maintenance: self.maintenance.read().clone(),
            warnings: self.warnings.read().clone(),
            degraded: self.degraded(),
            clock_offset: *self.clock.read(),
            clock: self.clock_line(),
            worker_mode: c.worker_mode.clone(),
            process: self.process.clone(),
            paused_queues: self
                .queue_pauses
                .read()
                .iter()
                .filter(|(_, p)| p.is_paused())
                .map(|(q, _)| q.clone())
                .collect(),
        }
    }

    /// [`StatusReport::clock`].
    fn clock_line(&self) -> String {
        match (*self.clock.read(), self.config.coordination_redis()) {
            (_, None) => "n/a: no Redis configured, no shared clock".to_string(),
            (Some(c), Some(_)) => c.describe(),
            (None, Some((var, _))) => format!("not measured yet (Redis TIME of {var})"),
        }
    }

    /// Now on the coordination Redis's clock, as far as this node knows:
    /// its own clock plus the last measured offset (its own clock alone
    /// when none is known).
    pub fn redis_now_ms(&self) -> u64 {
        let offset_ms = self.clock.read().map_or(0, |c| c.offset_us / 1000);
        now_ms().saturating_add_signed(offset_ms)
    }

    /// The registry record for a heartbeat now.
    pub fn registry_record(&self) -> super::registry::NodeRecord {
        let s = self.status();
        super::registry::NodeRecord {
            node_id: s.node_id,
            host: s.host,
            http_addr: s.http_addr,
            pid: s.pid,
            app_version: s.app_version,
            schema_version: s.schema_version,
            worker_id: s.worker_id,
            state: s.state.as_str().to_string(),
            state_reason: s.state_reason,
            started_at_ms: s.started_at_ms,
            heartbeat_at_ms: now_ms(),
            config_fingerprint: s.config_fingerprint,
            config_parts: s.config_parts,
            storage_shared: s.storage_shared,
            storage_reason: s.storage_reason,
            clock_offset: s.clock_offset,
            worker_mode: s.worker_mode,
            process: s.process,
        }
    }
}
