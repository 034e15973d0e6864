//! One scrape as Prometheus metrics: the snapshot a scrape serves, its
//! check results and the exporter's own counters turned into text. A pure
//! function (no I/O, no clock), so the whole exposition is unit-tested from
//! hand-made snapshots; docs/operator-guide.md ("Prometheus") lists every
//! family written here.

use super::text::{Exposition, Kind};
use crate::inspect::{CheckResult, CheckStatus, Snapshot, Source, Verdict, WorkerMode};
use crate::node::state::NodeState;
use std::collections::BTreeMap;
use std::time::Duration;

/// Per-lock series are written for at most this many locks, the longest
/// held first (the totals count every lock).
pub const LOCK_SERIES_MAX: usize = 200;

/// What a snapshot read could not read, as the exporter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReadError {
    /// The node registry.
    Nodes,
    /// The worker-ID leases.
    Leases,
    /// The locks.
    Locks,
    /// The sync-signal streams.
    Streams,
    /// The queues.
    Queues,
    /// The maintenance flag (unreachable or unreadable).
    Maintenance,
    /// A Redis or RabbitMQ server.
    Servers,
    /// The whole read took longer than the exporter's read timeout.
    Timeout,
}

impl ReadError {
    /// Every kind, in the order they are written.
    pub const ALL: [ReadError; 8] = [
        ReadError::Nodes,
        ReadError::Leases,
        ReadError::Locks,
        ReadError::Streams,
        ReadError::Queues,
        ReadError::Maintenance,
        ReadError::Servers,
        ReadError::Timeout,
    ];

    /// The `source` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadError::Nodes => "nodes",
            ReadError::Leases => "leases",
            ReadError::Locks => "locks",
            ReadError::Streams => "streams",
            ReadError::Queues => "queues",
            ReadError::Maintenance => "maintenance",
            ReadError::Servers => "servers",
            ReadError::Timeout => "timeout",
        }
    }
}

/// What `snap` could not read (each kind once).
pub fn read_errors(snap: &Snapshot) -> Vec<ReadError> {
    let mut out: Vec<ReadError> = sources(snap)
        .into_iter()
        .filter(|(_, up)| *up == Some(false))
        .map(|(kind, _)| kind)
        .collect();
    if snap.servers.iter().any(|s| s.error.is_some()) {
        out.push(ReadError::Servers);
    }
    out
}

/// Each source of a snapshot: `Some(true)` read, `Some(false)` not read,
/// `None` not configured (memory/local adapter).
fn sources(snap: &Snapshot) -> [(ReadError, Option<bool>); 6] {
    fn up<T>(s: &Source<T>) -> Option<bool> {
        match s {
            Source::Ok(_) => Some(true),
            Source::Unavailable { .. } => Some(false),
            Source::NotConfigured => None,
        }
    }
    [
        (ReadError::Nodes, up(&snap.nodes)),
        (ReadError::Leases, up(&snap.leases)),
        (ReadError::Locks, up(&snap.locks)),
        (ReadError::Streams, up(&snap.streams)),
        (ReadError::Queues, up(&snap.queues)),
        (ReadError::Maintenance, up(&snap.maintenance)),
    ]
}

/// The exporter's own counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `/metrics` requests answered.
    pub scrapes: u64,
    /// Snapshots read (scrapes that shared a read count once here).
    pub snapshot_reads: u64,
    /// Snapshot reads that could not read a source, per source.
    pub errors: BTreeMap<ReadError, u64>,
}

/// What one scrape serves.
#[derive(Debug, Clone, Copy)]
pub struct Scrape<'a> {
    /// The snapshot; `None` when the read timed out.
    pub snapshot: Option<&'a Snapshot>,
    /// The checks run on it.
    pub checks: &'a [CheckResult],
    /// The verdict of those checks.
    pub verdict: Option<Verdict>,
    /// How long ago the read finished (0 for this scrape's own read).
    pub snapshot_age: Duration,
    /// How long this scrape took up to rendering, waiting for a shared
    /// read included.
    pub scrape_duration: Duration,
    /// The exporter's counters, this scrape included.
    pub counters: &'a Counters,
}

/// The body of `GET /metrics`.
pub fn render(s: &Scrape<'_>) -> String {
    let mut e = Exposition::new();
    exporter(&mut e, s);
    if let Some(snap) = s.snapshot {
        cluster(&mut e, snap, s);
        nodes(&mut e, snap);
        leases(&mut e, snap);
        locks(&mut e, snap);
        super::render_queues::streams(&mut e, snap);
        super::render_queues::queues(&mut e, snap);
        super::render_queues::servers(&mut e, snap);
    }
    e.finish()
}

fn exporter(e: &mut Exposition, s: &Scrape<'_>) {
    let up = s
        .snapshot
        .is_some_and(|snap| sources(snap)[..5].iter().all(|(_, up)| *up != Some(false)));
    e.family(
        "clusterops_up",
        Kind::Gauge,
        "1 when the last snapshot read every configured source (registry, worker IDs, locks, streams, queues), else 0.",
    )
    .flag(&[], up);
    e.family(
        "clusterops_exporter_scrape_duration_seconds",
        Kind::Gauge,
        "Time this scrape took before rendering, waiting for a shared snapshot read included.",
    )
    .sample(&[], s.scrape_duration.as_secs_f64());
    e.family(
        "clusterops_exporter_scrapes_total",
        Kind::Counter,
        "Requests for /metrics answered.",
    )
    .count(&[], s.counters.scrapes);
    e.family(
        "clusterops_exporter_snapshot_reads_total",
        Kind::Counter,
        "Snapshots read; concurrent scrapes and scrapes within the cache time share one.",
    )
    .count(&[], s.counters.snapshot_reads);
    let mut f = e.family(
        "clusterops_exporter_scrape_errors_total",
        Kind::Counter,
        "Snapshot reads that could not read a source, by source (timeout: the read was abandoned).",
    );
    for kind in ReadError::ALL {
        let n = s.counters.errors.get(&kind).copied().unwrap_or(0);
        f.count(&[("source", kind.as_str())], n);
    }
}

fn cluster(e: &mut Exposition, snap: &Snapshot, s: &Scrape<'_>) {
    e.family(
        "clusterops_cluster_info",
        Kind::Gauge,
        "The cluster (CLUSTER_NAME) and the exporter's configuration fingerprint; always 1.",
    )
    .sample(
        &[
            ("cluster", &snap.cluster),
            ("config_fingerprint", &snap.config_fingerprint),
        ],
        1.0,
    );
    e.family(
        "clusterops_snapshot_duration_seconds",
        Kind::Gauge,
        "Time the served snapshot took to read.",
    )
    .millis(&[], snap.took_ms);
    e.family(
        "clusterops_snapshot_age_seconds",
        Kind::Gauge,
        "Time since the served snapshot was read (scrapes share a read for the cache time).",
    )
    .sample(&[], s.snapshot_age.as_secs_f64());
    e.family(
        "clusterops_snapshot_redis_requests",
        Kind::Gauge,
        "Redis requests the served snapshot took (a pipeline is one).",
    )
    .count(&[], u64::from(snap.round_trips));
    let mut f = e.family(
        "clusterops_source_up",
        Kind::Gauge,
        "1 when the snapshot read this source, 0 when it could not; absent when not shared (memory adapter).",
    );
    for (kind, up) in sources(snap) {
        if let Some(up) = up {
            f.flag(&[("source", kind.as_str())], up);
        }
    }
    let maintenance = match &snap.maintenance {
        Source::Ok(flag) => Some(flag.is_some()),
        // An unreadable flag: every node treats it as set.
        Source::Unavailable { source, .. } if source.ends_with(":maintenance") => Some(true),
        _ => None,
    };
    if let Some(on) = maintenance {
        e.family(
            "clusterops_maintenance",
            Kind::Gauge,
            "1 when the cluster's maintenance flag is set (or unreadable): every node answers 503.",
        )
        .flag(&[], on);
    }
    e.family(
        "clusterops_unreadable_keys",
        Kind::Gauge,
        "Keys under the cluster's namespace that hold something clusterops did not write.",
    )
    .count(&[], snap.unreadable.len() as u64);
    e.family(
        "clusterops_drift_nodes",
        Kind::Gauge,
        "Nodes whose configuration fingerprint (kind=config) or app version (kind=version) differs from the majority.",
    )
    .count(&[("kind", "config")], snap.drift.fingerprint.len() as u64)
    .count(&[("kind", "version")], snap.drift.version.len() as u64);
    let mut f = e.family(
        "clusterops_check_status",
        Kind::Gauge,
        "Result of each `clusterops check`: 0 pass, 1 warn, 2 fail.",
    );
    for c in s.checks {
        let v = match c.status {
            CheckStatus::Pass => 0,
            CheckStatus::Warn => 1,
            CheckStatus::Fail => 2,
        };
        f.count(&[("check", &c.id)], v);
    }
    if let Some(verdict) = s.verdict {
        let mut f = e.family(
            "clusterops_verdict",
            Kind::Gauge,
            "The cluster's verdict as a state set: 1 for the current one (healthy, degraded, down).",
        );
        for (v, name) in [
            (Verdict::Healthy, "healthy"),
            (Verdict::Degraded, "degraded"),
            (Verdict::Down, "down"),
        ] {
            f.flag(&[("verdict", name)], v == verdict);
        }
    }
}

/// The states a node reports, in the order their series are written; a
/// state from another version is `unknown`.
/// The `state` label: a known state's word, `unknown` for a state of
/// another version (labels stay a closed set).
fn state_label(reported: &NodeState) -> &str {
    match reported {
        NodeState::Unknown(_) => "unknown",
        known => known.as_str(),
    }
}

/// `WORKER_MODE` as a label: `all`, `http` (`!`), `none` (`-`), `topics`,
/// or `unknown` (another version's value).
fn worker_mode_label(mode: &WorkerMode) -> &'static str {
    match mode {
        WorkerMode::Unknown(_) => "unknown",
        other => other.short(),
    }
}

fn nodes(e: &mut Exposition, snap: &Snapshot) {
    let Source::Ok(nodes) = &snap.nodes else {
        return;
    };
    e.family(
        "clusterops_nodes",
        Kind::Gauge,
        "Nodes in the registry (a record lives three heartbeats).",
    )
    .count(&[], nodes.len() as u64);
    let mut f = e.family(
        "clusterops_node_up",
        Kind::Gauge,
        "1 when the node's health check answered 200, else 0.",
    );
    for n in nodes {
        f.flag(&[("node", &n.id.node_id)], n.health.is_healthy());
    }
    let mut f = e.family(
        "clusterops_node_degraded",
        Kind::Gauge,
        "1 when the node answers 200 but says it is degraded (no Redis or no worker ID).",
    );
    for n in nodes {
        f.flag(&[("node", &n.id.node_id)], n.health.is_degraded());
    }
    let mut f = e.family(
        "clusterops_node_state",
        Kind::Gauge,
        "The state each node reported in its last heartbeat, as a state set: 1 for the current one.",
    );
    for n in nodes {
        let current = state_label(&n.id.state);
        for state in NodeState::KNOWN
            .iter()
            .map(|s| s.as_str())
            .chain(["unknown"])
        {
            f.flag(
                &[("node", &n.id.node_id), ("state", state)],
                state == current,
            );
        }
    }
    let mut f = e.family(
        "clusterops_node_info",
        Kind::Gauge,
        "Each node's host, address, app version, schema version and WORKER_MODE; always 1.",
    );
    for n in nodes {
        let topics = match &n.worker_mode {
            WorkerMode::Topics(t) => t.join(","),
            _ => String::new(),
        };
        f.sample(
            &[
                ("node", &n.id.node_id),
                ("host", &n.id.host),
                ("address", &n.id.http_addr),
                ("version", &n.id.app_version),
                (
                    "schema_version",
                    n.id.schema_version.as_deref().unwrap_or(""),
                ),
                ("worker_mode", worker_mode_label(&n.worker_mode)),
                ("worker_topics", &topics),
            ],
            1.0,
        );
    }
    let mut f = e.family(
        "clusterops_node_health_latency_seconds",
        Kind::Gauge,
        "Round trip of the node's health check (GET /api/__health_check).",
    );
    for n in nodes {
        f.millis(&[("node", &n.id.node_id)], n.health.latency_ms);
    }
    let mut f = e.family(
        "clusterops_node_heartbeat_age_seconds",
        Kind::Gauge,
        "Time since the node's last registry heartbeat.",
    );
    for n in nodes {
        f.millis(&[("node", &n.id.node_id)], n.heartbeat_age_ms);
    }
    let mut f = e.family(
        "clusterops_node_clock_offset_seconds",
        Kind::Gauge,
        "Redis TIME minus the node's clock at its last heartbeat (positive: the node is behind); absent when not reported.",
    );
    for n in nodes {
        if let Some(c) = n.clock_offset {
            f.sample(&[("node", &n.id.node_id)], c.offset_us as f64 / 1e6);
        }
    }
}

fn leases(e: &mut Exposition, snap: &Snapshot) {
    let Source::Ok(slots) = &snap.leases else {
        return;
    };
    let held = slots.iter().filter(|s| s.holder.is_some()).count();
    let free = slots
        .iter()
        .filter(|s| s.holder.is_none() && s.unreadable.is_none())
        .count();
    let stale = slots
        .iter()
        .filter(|s| s.holder.is_some() && !s.holder_live)
        .count();
    e.family(
        "clusterops_worker_ids_capacity",
        Kind::Gauge,
        "Worker IDs a cluster has (0..31).",
    )
    .count(&[], slots.len() as u64);
    e.family(
        "clusterops_worker_ids_held",
        Kind::Gauge,
        "Worker IDs leased by a holder.",
    )
    .count(&[], held as u64);
    e.family(
        "clusterops_worker_ids_free",
        Kind::Gauge,
        "Worker IDs free to lease.",
    )
    .count(&[], free as u64);
    e.family(
        "clusterops_worker_ids_stale",
        Kind::Gauge,
        "Worker IDs leased by a holder that is not a live node (freed when the lease expires).",
    )
    .count(&[], stale as u64);
    let mut by_holder: BTreeMap<&str, u64> = BTreeMap::new();
    for s in slots {
        if let Some(h) = &s.holder {
            *by_holder.entry(h).or_default() += 1;
        }
    }
    let mut f = e.family(
        "clusterops_worker_ids_by_holder",
        Kind::Gauge,
        "Worker IDs each holder leases.",
    );
    for (holder, n) in by_holder {
        f.count(&[("holder", holder)], n);
    }
}

fn locks(e: &mut Exposition, snap: &Snapshot) {
    let Source::Ok(locks) = &snap.locks else {
        return;
    };
    e.family(
        "clusterops_locks_held",
        Kind::Gauge,
        "Distributed locks held.",
    )
    .count(&[], locks.len() as u64);
    e.family(
        "clusterops_locks_unregistered_holder",
        Kind::Gauge,
        "Locks whose holder is not a live node in the registry (another process, or a dead node until the TTL).",
    )
    .count(&[], locks.iter().filter(|l| !l.holder_live).count() as u64);
    e.family(
        "clusterops_locks_waiters",
        Kind::Gauge,
        "Waiters in the FIFO queues of all held locks.",
    )
    .count(
        &[],
        locks.iter().filter_map(|l| l.waiters).map(u64::from).sum(),
    );
    let mut longest: Vec<_> = locks.iter().collect();
    longest.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then(a.name.cmp(&b.name)));
    longest.truncate(LOCK_SERIES_MAX);
    let mut f = e.family(
        "clusterops_lock_hold_age_seconds",
        Kind::Gauge,
        "Time each lock has been held (the longest-held 200 locks).",
    );
    for l in &longest {
        f.millis(&[("lock", &l.name), ("holder", &l.holder)], l.age_ms);
    }
    let mut f = e.family(
        "clusterops_lock_waiters",
        Kind::Gauge,
        "Waiters in each lock's FIFO queue (the longest-held 200 locks).",
    );
    for l in &longest {
        if let Some(w) = l.waiters {
            f.count(&[("lock", &l.name)], u64::from(w));
        }
    }
}
