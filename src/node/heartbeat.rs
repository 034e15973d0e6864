//! The node's background loop: a registry heartbeat every interval (with
//! the clock's offset from Redis `TIME` measured just before it), a poll
//! of the maintenance flag (so every node goes 503 within one heartbeat),
//! and the shared-storage check against the other live nodes' markers.

use super::clock;
use super::maintenance::{self, MaintenanceRead};
use super::metrics::inc;
use super::registry::{Registry, RegistryEntry};
use super::shared::NodeShared;
use super::state::NodeState;
use super::storage;
use crate::adapters::redis_conn::SharedConn;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Timing of the loop.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatTiming {
    /// Registry heartbeat interval; the record's TTL is three of these.
    pub interval: Duration,
    /// Maintenance-flag poll interval.
    pub maintenance_poll: Duration,
}

impl Default for HeartbeatTiming {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            maintenance_poll: Duration::from_millis(500),
        }
    }
}

/// Apply a maintenance read to the node's state.
pub fn apply_maintenance(node: &NodeShared, read: MaintenanceRead) {
    let (state, _) = node.state.get();
    match read {
        MaintenanceRead::Clear => {
            *node.maintenance.write() = None;
            if state == NodeState::Maintenance {
                node.state.set(NodeState::Running, "ready");
            }
        }
        MaintenanceRead::Set(flag) => {
            let reason = format!("maintenance set by {}: {}", flag.by, flag.reason);
            *node.maintenance.write() = Some(flag);
            if matches!(state, NodeState::Running | NodeState::Maintenance) {
                node.state.set(NodeState::Maintenance, reason);
            }
        }
        MaintenanceRead::Unreadable { key, reason } => {
            if matches!(state, NodeState::Running | NodeState::Maintenance) {
                node.state.set(
                    NodeState::Maintenance,
                    format!("maintenance key {key} is unreadable ({reason}); treated as set"),
                );
            }
        }
    }
}

/// For a node without a coordination Redis (in-process, the demo): apply
/// the maintenance flag held in `flag` now (before the node serves) and on
/// every change, until `stop` changes.
pub fn follow_maintenance(
    node: &Arc<NodeShared>,
    mut flag: watch::Receiver<MaintenanceRead>,
    mut stop: watch::Receiver<bool>,
) {
    apply_maintenance(node, flag.borrow_and_update().clone());
    let node = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = flag.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let read = flag.borrow_and_update().clone();
                    apply_maintenance(&node, read);
                }
                _ = stop.changed() => return,
            }
        }
    });
}

/// Offsets above this are logged as a warning (once, until the clock is
/// back within it); `check` warns from the same value (`clock-skew`).
pub const CLOCK_WARN: Duration = Duration::from_secs(1);

/// Measure the clock against the coordination Redis's `TIME` and keep it
/// for the next registry record. A failed `TIME` clears it: an old offset
/// would be reported as current. Logs a warning when the offset goes above
/// [`CLOCK_WARN`], and when it is back within it.
pub async fn measure_clock(node: &NodeShared, conn: &mut SharedConn) {
    let before = *node.clock.read();
    let was_off = before.is_some_and(|c| c.magnitude() > CLOCK_WARN);
    match clock::measure(conn).await {
        Ok(c) => {
            let off = c.magnitude() > CLOCK_WARN;
            if off && !was_off {
                tracing::warn!(
                    node = %node.node_id,
                    offset_us = c.offset_us,
                    "this node's clock is {}: snowflake IDs wait or refuse when it steps back, \
                     check its time sync (chrony/NTP)",
                    c.describe()
                );
            } else if was_off && !off {
                tracing::info!(node = %node.node_id, "clock back within {CLOCK_WARN:?} of Redis TIME: {}", c.describe());
            }
            *node.clock.write() = Some(c);
        }
        Err(e) => {
            tracing::debug!(node = %node.node_id, "cannot read Redis TIME: {e}");
            *node.clock.write() = None;
        }
    }
}

/// A command to the coordination Redis failed: the node is degraded.
fn redis_lost(node: &NodeShared, err: &dyn std::fmt::Display) {
    if node.redis_failed(err) {
        tracing::warn!(node = %node.node_id, "coordination Redis unreachable: degraded until it answers ({err})");
    }
}

/// A command to the coordination Redis succeeded: no longer degraded by it.
fn redis_reached(node: &NodeShared) {
    if let Some(trouble) = node.redis_ok() {
        tracing::info!(
            node = %node.node_id,
            outage_ms = crate::clock::now_ms().saturating_sub(trouble.since_ms),
            "coordination Redis reachable again"
        );
    }
}

/// Run until `stop` turns true. Redis errors are counted and logged (at
/// most once per 30 s), never fatal: the loop retries on the next tick.
pub async fn run(
    node: Arc<NodeShared>,
    mut conn: SharedConn,
    registry: Registry,
    timing: HeartbeatTiming,
    mut stop: watch::Receiver<bool>,
) {
    let ns = node.config.namespace.clone();
    let mut beat = tokio::time::interval(timing.interval);
    let mut poll = tokio::time::interval(timing.maintenance_poll);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warn: Option<Instant> = None;
    let mut warn = |what: &str, err: &dyn std::fmt::Display| {
        if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            tracing::warn!(node = %node.node_id, "{what}: {err}");
            last_warn = Some(Instant::now());
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() { break; }
            }
            _ = poll.tick() => {
                match maintenance::read(&mut conn, &ns).await {
                    Ok(read) => {
                        redis_reached(&node);
                        apply_maintenance(&node, read);
                    }
                    Err(e) => {
                        redis_lost(&node, &e);
                        warn("cannot read the maintenance flag", &e);
                    }
                }
            }
            _ = beat.tick() => {
                if let Some(root) = node.config.storage_path.as_deref() {
                    match registry.read_all(&mut conn).await {
                        Ok(entries) => {
                            let others: Vec<String> = entries.iter().filter_map(|e| match e {
                                RegistryEntry::Live { record, .. } if record.node_id != node.node_id => Some(record.node_id.clone()),
                                _ => None,
                            }).collect();
                            let verdict = if others.is_empty() {
                                (None, None)
                            } else {
                                match storage::check_shared(root, others.iter().map(String::as_str)) {
                                    Ok(()) => (Some(true), None),
                                    Err(missing) => (Some(false), Some(format!(
                                        "storage is not shared: {} cannot see the marker of {}",
                                        root.display(), missing.join(", ")))),
                                }
                            };
                            *node.storage.write() = verdict;
                        }
                        Err(e) => warn("cannot read the registry", &e),
                    }
                }
                measure_clock(&node, &mut conn).await;
                let record = node.registry_record();
                match registry.heartbeat_at(&mut conn, &record, node.redis_now_ms()).await {
                    Ok(()) => {
                        redis_reached(&node);
                        inc(&node.metrics.heartbeats);
                    }
                    Err(e) => {
                        redis_lost(&node, &e);
                        inc(&node.metrics.heartbeat_failures);
                        warn("heartbeat failed", &e);
                    }
                }
            }
        }
    }
}
