//! Worker-ID allocation: each node leases one of the 32 snowflake worker
//! IDs in Redis, keeps it renewed, fences itself when it cannot, and never
//! lets a reused ID repeat an old snowflake ID (see `docs/snowflake.md`).
//!
//! - [`RedisWorkerIds`]: the Redis leases (`REDIS_URL`), for a cluster.
//! - [`RandomWorkerId`]: a random ID with no Redis, for a single node.
//! - [`read_leases`] / [`force_free`]: the read-only inspector and the
//!   operator's "free a dead node's lease" action.

mod inspect;
mod lease;
mod local;
mod redis;
mod replicated;
mod reply;
mod scripts;

pub use inspect::{
    LEASE_READ_COMMANDS, LeaseSlot, SlotLastTs, SlotLease, add_lease_reads, force_free,
    parse_leases, read_leases,
};
pub use lease::{LeaseStatus, WorkerLease};
pub use local::RandomWorkerId;
pub use redis::{RedisWorkerIds, RedisWorkerIdsBuilder};

pub use replicated::{MAX_REPLICA_WAIT, QUARANTINE_SKEW_SECS, master_replid, replica_wait};
pub use scripts::{epoch_key, last_ts_key, lease_key, worker_keys_pattern};

#[cfg(test)]
pub(crate) use lease::mono_ns;

use crate::adapters::redis_conn::{self, ConnectError};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How many worker IDs exist (5 bits).
pub const WORKER_IDS: u8 = 32;
/// The highest worker ID.
pub const MAX_WORKER_ID: u8 = WORKER_IDS - 1;
/// Default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// Who holds a lease: the JSON value of `<ns>:worker:{<ns>}:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderInfo {
    /// The node id given to the allocator.
    pub node: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's host name.
    pub host: String,
    /// When the lease was acquired (unix ms, holder's clock).
    pub acquired_at_ms: u64,
    /// Random per acquisition, so two acquisitions never compare equal.
    pub token: String,
}

impl HolderInfo {
    /// A new holder value for `node` in this process.
    pub fn for_this_process(node: &str) -> Self {
        let acquired_at_ms = crate::clock::now_ms();
        Self {
            node: node.to_string(),
            pid: std::process::id(),
            host: crate::clock::hostname().unwrap_or_else(|| "unknown".to_string()),
            acquired_at_ms,
            token: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// Parse a lease value; `None` when it is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }

    /// The exact string stored in Redis.
    pub fn to_value(&self) -> String {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What went wrong with a worker-ID lease.
#[derive(Debug, thiserror::Error)]
pub enum WorkerIdError {
    /// All 32 IDs are leased (or unusable).
    #[error(
        "no free worker ID: {in_use} of {total} in use (holders: {}){}; stop a node, \
         or free a dead node's lease from the console",
        holders_list(.holders),
        unusable_note(.unusable)
    )]
    NoFreeId {
        /// Leases held.
        in_use: usize,
        /// 32.
        total: usize,
        /// Distinct holder node names (`unreadable` for garbage values).
        holders: Vec<String>,
        /// Free IDs that cannot be used: their `last_ts` key is garbage.
        unusable: Vec<String>,
    },
    /// Redis failed (unreachable, timeout, script error).
    #[error("worker-ID {action} failed on Redis: {source}; check that REDIS_URL is reachable")]
    Redis {
        /// What was being done.
        action: &'static str,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// Sentinel or Redis Cluster: no replica confirmed a lease write in
    /// time (or the master changed meanwhile), so the write is not used.
    #[error(
        "worker-ID {action} not confirmed by a Redis replica: {reason}; snowflake IDs need a \
         lease a failover cannot lose: check that the master holding the worker-ID keys (the \
         Sentinel master, or on a Redis Cluster the master of their slot) has a connected, \
         synced replica (INFO replication); retried at each renewal tick"
    )]
    Unconfirmed {
        /// `acquisition`.
        action: &'static str,
        /// What happened.
        reason: String,
    },
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A reply or a key did not have the documented shape.
    #[error("unreadable worker-ID key {key}: {reason}; delete it if no node uses it")]
    Unreadable {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Builder options out of range.
    #[error("invalid worker-ID allocator options: {0}")]
    InvalidOptions(String),
    /// A worker ID outside 0..=31.
    #[error("worker ID {0} is out of range 0..=31")]
    OutOfRange(u32),
}

fn holders_list(holders: &[String]) -> String {
    const SHOWN: usize = 10;
    if holders.is_empty() {
        return "none readable".to_string();
    }
    let mut s = holders
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if holders.len() > SHOWN {
        s.push_str(&format!(", … {} more", holders.len() - SHOWN));
    }
    s
}

fn unusable_note(unusable: &[String]) -> String {
    if unusable.is_empty() {
        String::new()
    } else {
        format!(
            "; {} free but unusable, their last_ts is not a number: {}",
            unusable.len(),
            unusable.join(", ")
        )
    }
}

/// Something that holds a worker ID for this node and keeps it valid.
#[async_trait::async_trait]
pub trait WorkerIdAllocator: Send + Sync {
    /// The shared lease handle; give it to the snowflake generator.
    fn lease(&self) -> Arc<WorkerLease>;
    /// `"redis"` or `"random"`.
    fn backend(&self) -> &'static str;
    /// Stop renewing, persist the last issued second and free the ID.
    /// The lease is fenced even if Redis cannot be reached.
    async fn release(&self) -> Result<(), WorkerIdError>;
}

/// The allocator the configuration asks for: Redis leases when `REDIS_URL`
/// is set, otherwise a random worker ID (with a warning: single node only).
pub async fn from_config(
    config: &Config,
    node_id: impl Into<String>,
) -> Result<Arc<dyn WorkerIdAllocator>, WorkerIdError> {
    let node_id = node_id.into();
    match &config.worker_id_redis {
        Some(url) => {
            let conn = redis_conn::connect(url).await?;
            let ids = RedisWorkerIds::builder(conn, config.namespace.clone(), node_id)
                .start()
                .await?;
            Ok(Arc::new(ids))
        }
        None => Ok(Arc::new(RandomWorkerId::new(node_id))),
    }
}
