//! Turning what the adapters' read-only functions return into the
//! snapshot's view types, marking holders that are not live nodes and
//! collecting unreadable keys.

use super::types::*;
use crate::adapters::lock::LockInspection;
use crate::adapters::pubsub::StreamInfo;
use crate::adapters::queue::QueueStats;
use crate::adapters::worker_id::{LeaseSlot, SlotLastTs, SlotLease};
use crate::node::registry::NodeRecord;
use std::collections::HashSet;

/// A registry record and its health check as a [`NodeView`].
pub fn node_view(
    r: NodeRecord,
    ttl_left_ms: i64,
    health: Health,
    now_ms: u64,
    config_drift: Vec<String>,
) -> NodeView {
    NodeView {
        heartbeat_age_ms: now_ms.saturating_sub(r.heartbeat_at_ms),
        id: r.id,
        ttl_left_ms,
        config_fingerprint: r.config_fingerprint,
        config_drift,
        storage_shared: r.storage_shared,
        storage_reason: r.storage_reason,
        health,
        clock_offset: r.clock_offset,
        worker_mode: r.worker_mode,
        process: r.process,
    }
}

/// The 32 worker-ID slots.
pub fn lease_views(
    slots: Vec<LeaseSlot>,
    live: &HashSet<String>,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<LeaseView> {
    slots
        .into_iter()
        .map(|s| {
            let last_ts = match &s.last_ts {
                SlotLastTs::At { unix_seconds } => Some(*unix_seconds),
                SlotLastTs::Unset => None,
                SlotLastTs::Unreadable { reason } => {
                    unreadable.push(Unreadable {
                        key: s.last_ts_key.clone(),
                        reason: without_key(reason, &s.last_ts_key),
                    });
                    None
                }
            };
            let ttl_left_ms = s.ttl_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
            match s.lease {
                SlotLease::Free => LeaseView {
                    worker_id: s.worker_id,
                    holder: None,
                    holder_live: false,
                    ttl_left_ms: None,
                    acquired_at_ms: None,
                    last_ts,
                    unreadable: None,
                },
                SlotLease::Held { holder, .. } => LeaseView {
                    worker_id: s.worker_id,
                    holder_live: live.contains(&holder.node),
                    holder: Some(holder.node),
                    ttl_left_ms,
                    acquired_at_ms: Some(holder.acquired_at_ms),
                    last_ts,
                    unreadable: None,
                },
                SlotLease::Unreadable { reason, .. } => {
                    unreadable.push(Unreadable {
                        key: s.key.clone(),
                        reason: without_key(&reason, &s.key),
                    });
                    LeaseView {
                        worker_id: s.worker_id,
                        holder: None,
                        holder_live: false,
                        ttl_left_ms,
                        acquired_at_ms: None,
                        last_ts,
                        unreadable: Some(reason),
                    }
                }
            }
        })
        .collect()
}

/// Held locks.
pub fn lock_views(
    found: LockInspection,
    live: &HashSet<String>,
    now_ms: u64,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<LockView> {
    unreadable.extend(found.unreadable.into_iter().map(|u| Unreadable {
        key: u.key,
        reason: u.reason,
    }));
    found
        .holders
        .into_iter()
        .map(|h| LockView {
            holder_live: live.contains(&h.holder_node),
            age_ms: now_ms.saturating_sub(h.acquired_at_ms),
            ttl_left_ms: i64::try_from(h.ttl_left.as_millis()).unwrap_or(i64::MAX),
            name: h.name,
            holder: h.holder_node,
            acquired_at_ms: h.acquired_at_ms,
            fencing_token: h.fencing_token,
            waiters: h.waiters.and_then(|w| u32::try_from(w).ok()),
        })
        .collect()
}

/// Sync-signal streams and their readers.
pub fn stream_views(
    found: Vec<StreamInfo>,
    live: &HashSet<String>,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<StreamView> {
    found
        .into_iter()
        .map(|s| {
            unreadable.extend(s.unreadable.into_iter().map(|u| Unreadable {
                reason: match &u.field {
                    Some(f) => format!("field {f}: {}", u.reason),
                    None => u.reason,
                },
                key: u.key,
            }));
            StreamView {
                channel: s.channel,
                length: s.length,
                first_id: s.first_id,
                last_id: s.last_id,
                readers: s
                    .per_node
                    .into_iter()
                    .map(|n| StreamReader {
                        live: live.contains(&n.node),
                        node_id: n.node,
                        last_id: n.last_id,
                        lag: n.lag,
                        last_handled_age_ms: Some(n.last_handled_age_ms),
                        oldest_unhandled_age_ms: n.oldest_unhandled_age_ms,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Queues; a queue whose keys could not be read becomes an unreadable entry.
pub fn queue_views(backend: &str, stats: Vec<QueueStats>) -> (Vec<QueueView>, Vec<Unreadable>) {
    let mut views = Vec::new();
    let mut bad = Vec::new();
    for s in stats {
        if let Some(reason) = s.unreadable {
            bad.push(Unreadable { key: s.key, reason });
            continue;
        }
        views.push(QueueView {
            name: s.queue,
            backend: backend.to_string(),
            waiting: s.waiting,
            in_flight: s.in_flight.unwrap_or(0) + s.retrying.unwrap_or(0),
            oldest_in_flight_age_ms: s.oldest_pending_age_ms,
            dead_letters: s.dead,
            consumers: s.consumers,
            ack_rate: None,
            oldest_age_ms: s.oldest_age_ms,
            paused: s.paused,
        });
    }
    (views, bad)
}

/// The lease readers start their reasons with the key (other callers print
/// them alone); an [`Unreadable`] names the key already.
fn without_key(reason: &str, key: &str) -> String {
    reason
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(reason)
        .to_string()
}

#[cfg(test)]
mod without_key_tests {
    #[test]
    fn a_reason_that_starts_with_its_key_loses_the_key_once() {
        assert_eq!(
            super::without_key("c:worker:{c}:7: not a lease holder", "c:worker:{c}:7"),
            "not a lease holder"
        );
        assert_eq!(
            super::without_key("other: text", "c:worker:{c}:7"),
            "other: text"
        );
    }
}
