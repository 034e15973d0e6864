//! Read-only view of the 32 worker-ID leases (one pipelined round trip,
//! split into "add the reads to a pipeline" and "parse the replies" for
//! the inspector), and the operator's compare-and-delete of a dead node's lease.

use super::reply::{as_i64, as_string};
use super::scripts::{self, FORCE_FREE};
use super::{HolderInfo, WORKER_IDS, WorkerIdError};
use crate::config::Namespace;
use redis::Value;
use redis::aio::ConnectionLike;
use serde::Serialize;

/// One worker ID as seen in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseSlot {
    /// 0..=31.
    pub worker_id: u8,
    /// `<ns>:worker:{<ns>}:<id>`.
    pub key: String,
    /// Who holds it.
    pub lease: SlotLease,
    /// Milliseconds until the lease key expires (`None`: no key, or no TTL).
    pub ttl_ms: Option<u64>,
    /// `<ns>:worker:{<ns>}:<id>:last_ts`.
    pub last_ts_key: String,
    /// The reuse floor of the ID.
    pub last_ts: SlotLastTs,
}

/// The lease part of a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SlotLease {
    /// No lease key.
    Free,
    /// A well-formed lease with a TTL.
    Held {
        /// The parsed holder.
        holder: HolderInfo,
        /// The exact value, for [`force_free`].
        raw: String,
    },
    /// The key exists but is not a lease as documented.
    Unreadable {
        /// What is wrong, naming the key.
        reason: String,
        /// The value when it is a string (for [`force_free`]).
        raw: Option<String>,
    },
}

/// The `last_ts` part of a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SlotLastTs {
    /// Never used.
    Unset,
    /// The highest unix second any holder may have issued.
    At {
        /// Unix seconds.
        unix_seconds: u64,
    },
    /// Not a decimal number: the allocator skips this ID.
    Unreadable {
        /// What is wrong, naming the key.
        reason: String,
    },
}

/// Commands [`add_lease_reads`] appends: `GET` and `PTTL` of each lease,
/// `GET` of each `last_ts`.
pub const LEASE_READ_COMMANDS: usize = WORKER_IDS as usize * 3;

/// Append the reads of the 32 slots to `pipe` (run it with
/// `ignore_errors`); [`parse_leases`] reads the replies.
pub fn add_lease_reads(pipe: &mut redis::Pipeline, ns: &Namespace) {
    for id in 0..WORKER_IDS {
        pipe.cmd("GET").arg(scripts::lease_key(ns, id));
        pipe.cmd("PTTL").arg(scripts::lease_key(ns, id));
        pipe.cmd("GET").arg(scripts::last_ts_key(ns, id));
    }
}

/// The 32 slots, in ID order, from the [`LEASE_READ_COMMANDS`] replies of
/// [`add_lease_reads`]. Garbage is reported per slot as unreadable; only a
/// reply count that does not match is an error.
pub fn parse_leases(ns: &Namespace, replies: &[Value]) -> Result<Vec<LeaseSlot>, WorkerIdError> {
    if replies.len() != LEASE_READ_COMMANDS {
        return Err(WorkerIdError::Unreadable {
            key: scripts::worker_keys_pattern(ns),
            reason: format!(
                "expected {LEASE_READ_COMMANDS} replies, got {}",
                replies.len()
            ),
        });
    }
    Ok((0..WORKER_IDS)
        .zip(replies.chunks(3))
        .map(|(id, r)| slot(ns, id, &r[0], &r[1], &r[2]))
        .collect())
}

/// The 32 slots, in ID order, read with one pipelined round trip (GET and
/// PTTL of each lease, GET of each `last_ts`). Garbage is reported per
/// slot as unreadable, never an error for the whole read.
pub async fn read_leases<C: ConnectionLike>(
    conn: &mut C,
    ns: &Namespace,
) -> Result<Vec<LeaseSlot>, WorkerIdError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    add_lease_reads(&mut pipe, ns);
    let replies: Vec<Value> =
        pipe.query_async(conn)
            .await
            .map_err(|source| WorkerIdError::Redis {
                action: "inspection",
                source,
            })?;
    parse_leases(ns, &replies)
}

fn slot(ns: &Namespace, worker_id: u8, get: &Value, pttl: &Value, last: &Value) -> LeaseSlot {
    let key = scripts::lease_key(ns, worker_id);
    let last_ts_key = scripts::last_ts_key(ns, worker_id);
    let ttl = as_i64(pttl);
    let ttl_ms = ttl.and_then(|t| u64::try_from(t).ok());
    let lease = match get {
        Value::Nil => SlotLease::Free,
        Value::ServerError(e) => SlotLease::Unreadable {
            reason: format!("{key}: {} {}", e.code(), e.details().unwrap_or("")),
            raw: None,
        },
        v => match as_string(v) {
            None => SlotLease::Unreadable {
                reason: format!("{key}: not a string value"),
                raw: None,
            },
            Some(raw) => match HolderInfo::parse(&raw) {
                None => SlotLease::Unreadable {
                    reason: format!(
                        "{key}: not a lease holder (JSON with node, pid, host, acquired_at_ms, token)"
                    ),
                    raw: Some(raw),
                },
                Some(_) if ttl_ms.is_none() => SlotLease::Unreadable {
                    reason: format!("{key}: lease has no TTL, it would never expire"),
                    raw: Some(raw),
                },
                Some(holder) => SlotLease::Held { holder, raw },
            },
        },
    };
    let last_ts = match last {
        Value::Nil => SlotLastTs::Unset,
        Value::ServerError(e) => SlotLastTs::Unreadable {
            reason: format!("{last_ts_key}: {} {}", e.code(), e.details().unwrap_or("")),
        },
        v => match as_string(v)
            .filter(|s| s.len() <= 15 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        {
            Some(s) => match s.parse() {
                Ok(unix_seconds) => SlotLastTs::At { unix_seconds },
                Err(_) => SlotLastTs::Unreadable {
                    reason: format!("{last_ts_key}: not a unix second"),
                },
            },
            None => SlotLastTs::Unreadable {
                reason: format!("{last_ts_key}: not a unix second (decimal, at most 15 digits)"),
            },
        },
    };
    LeaseSlot {
        worker_id,
        key,
        lease,
        ttl_ms: if matches!(get, Value::Nil) {
            None
        } else {
            ttl_ms
        },
        last_ts_key,
        last_ts,
    }
}

/// Compare-and-delete the lease of `worker_id` if its value is still
/// `expected_value` (the `raw` value from [`read_leases`]). `last_ts` is
/// kept, so the next holder still waits past what the freed holder may have
/// issued. Returns whether the lease was freed.
pub async fn force_free<C: ConnectionLike>(
    conn: &mut C,
    ns: &Namespace,
    worker_id: u8,
    expected_value: &str,
) -> Result<bool, WorkerIdError> {
    if worker_id >= WORKER_IDS {
        return Err(WorkerIdError::OutOfRange(u32::from(worker_id)));
    }
    let freed: i64 = FORCE_FREE
        .key(scripts::lease_key(ns, worker_id))
        .arg(expected_value)
        .invoke_async(conn)
        .await
        .map_err(|source| WorkerIdError::Redis {
            action: "force-free",
            source,
        })?;
    if freed == 1 {
        tracing::warn!(worker_id, "worker-ID lease force-freed by an operator");
    }
    Ok(freed == 1)
}
