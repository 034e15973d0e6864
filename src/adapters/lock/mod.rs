//! The distributed lock: the [`LockBackend`] trait, the [`LockGuard`] it
//! hands out (fencing token, watchdog, lost detection), the shared waiting
//! loop, and [`from_config`] picking the local or Redis backend.
//!
//! Semantics (both backends):
//! - A lock is held by one guard at a time; it is not reentrant (a second
//!   acquire of a held name waits, even from the same node).
//! - Every successful acquire gets a fencing token strictly greater than
//!   every earlier token of the same lock name. Pass it to the protected
//!   resource so that it can refuse writes from a holder that lost the lock.
//! - The TTL bounds how long a crashed holder blocks others. While the guard
//!   lives, a watchdog renews the TTL every `ttl / 3`; if a renewal finds the
//!   lock gone or taken, or cannot reach the backend before the TTL may have
//!   passed, the guard is marked lost ([`LockGuard::check`] then fails).
//! - Fair: waiters are served first come, first served. A waiting acquire
//!   queues itself when the lock is taken; a free lock goes to the first
//!   waiter in line (or to anyone when nobody waits), and `try_acquire`
//!   does not take a free lock that others are queued for. Releasing
//!   (explicitly or by dropping the guard) wakes that one waiter at once;
//!   waiters also re-try every 50–200 ms in case a wake-up is missed
//!   (refreshing their place), and a waiter that gives up or is dropped
//!   leaves the queue. With Redis, a waiter whose process died keeps its
//!   place for its keep-alive ([`RedisLock::wait_keepalive`]) at most.

mod guard;
mod inspect;
mod keys;
mod local;
mod redis;
mod scripts;
mod waiters;
mod watchdog;

pub use guard::LockGuard;
pub use inspect::{
    ForceReleaseOutcome, HolderValue, LockHolderInfo, LockInspection, LockReads, UnreadableLock,
    force_release, read_holder, read_holders, read_waiters,
};
pub use keys::{LOCK_FAMILY, fence_key, lock_key, lock_name_of, wait_key, wait_until_key};
pub use local::LocalLock;
pub use redis::RedisLock;

use crate::adapters::redis_conn::ConnectError;
use crate::config::{Config, LockAdapter, Namespace};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Shortest TTL accepted: the watchdog renews every `ttl / 3`.
pub const MIN_TTL: Duration = Duration::from_millis(30);
/// Longest TTL accepted.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lock name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_LEN: usize = 200;

/// What went wrong with a lock operation.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock stayed held by someone else for the whole wait.
    #[error(
        "lock {name:?} is still held by another holder after waiting {waited:?}; retry later, \
         wait longer, or inspect the holder with `read_holder`"
    )]
    Timeout {
        /// The lock name.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The guard no longer holds the lock: its TTL passed (watchdog could not
    /// renew it) or the lock was deleted or taken over behind its back.
    #[error(
        "lock {name:?} (fencing token {token}) was lost: it expired or was released or taken \
         over by someone else; do not perform the protected write, acquire the lock again"
    )]
    Lost {
        /// The lock name.
        name: String,
        /// The token the guard held.
        token: u64,
    },
    /// A lock name the backend refuses.
    #[error(
        "lock name {name:?} is not accepted ({reason}); use 1 to {MAX_NAME_LEN} printable \
         ASCII characters without spaces or * ? [ ] \\ {{ }}"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A node id the backend refuses.
    #[error(
        "node id {node_id:?} is not accepted ({reason}); use 1 to {MAX_NODE_ID_LEN} bytes \
         without control characters"
    )]
    InvalidNodeId {
        /// The node id given.
        node_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TTL outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("lock TTL {ttl:?} is not accepted; use {MIN_TTL:?} to {MAX_TTL:?}")]
    InvalidTtl {
        /// The TTL given.
        ttl: Duration,
    },
    /// The Redis backend could not be reached.
    #[error("{0}; check LOCK_ADAPTER_REDIS_URL and that Redis is running")]
    Connect(#[from] ConnectError),
    /// A Redis command failed.
    #[error("Redis failed while {action}: {source}; check that Redis is reachable and retry")]
    Redis {
        /// What we were doing, e.g. `acquiring lock "jobs"`.
        action: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// A Redis key or reply that does not have the documented shape.
    #[error(
        "Redis key {key} is unreadable as a lock ({reason}); it was not written by clusterops' \
         lock (see docs/redis-keys.md); delete it if it is garbage"
    )]
    Unreadable {
        /// The full key name.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl LockError {
    pub(crate) fn redis(action: impl Into<String>, source: ::redis::RedisError) -> Self {
        LockError::Redis {
            action: action.into(),
            source,
        }
    }
}

/// A distributed (or, for [`LocalLock`], in-process) lock service.
///
/// Hold it as `Arc<dyn LockBackend>`; see [`LockBackendExt::run_exclusive`]
/// for the acquire-run-release shortcut.
#[async_trait::async_trait]
pub trait LockBackend: Send + Sync {
    /// `"local"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// The node id this instance acquires as.
    fn node_id(&self) -> &str;

    /// One attempt: the guard if the lock was free and nobody is queued for
    /// it, `None` if it is held (or free but waiters are queued: fair, it
    /// does not jump the queue).
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<LockGuard>, LockError>;

    /// Acquire, waiting up to `wait` for the current holder to release it
    /// (or for its TTL to pass). `wait` zero means one attempt. Redis errors
    /// are retried until the wait runs out; it then fails with the last
    /// error, or with [`LockError::Timeout`] when the lock was simply held.
    async fn acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LockGuard, LockError>;
}

/// Shortcuts available on every [`LockBackend`], including `dyn LockBackend`.
pub trait LockBackendExt: LockBackend {
    /// Acquire `name` (waiting up to `wait`), run `work`, release, and return
    /// `work`'s output. The lock is released even if `work` panics (the guard
    /// is dropped during unwinding). A failed release is logged, not returned:
    /// when the protected work needs fencing, use [`LockBackend::acquire`]
    /// and [`LockGuard::check`] / [`LockGuard::fencing_token`] instead.
    fn run_exclusive<F>(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
        work: F,
    ) -> impl Future<Output = Result<F::Output, LockError>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        async move {
            let guard = self.acquire(name, ttl, wait).await?;
            let output = work.await;
            if let Err(e) = guard.release().await {
                tracing::warn!(lock = name, error = %e, "run_exclusive: release failed");
            }
            Ok(output)
        }
    }
}

impl<T: LockBackend + ?Sized> LockBackendExt for T {}

/// The lock backend the configuration asks for, acquiring as `node_id`.
pub async fn from_config(
    config: &Config,
    node_id: impl Into<String>,
) -> Result<Arc<dyn LockBackend>, LockError> {
    from_adapter(&config.lock, config.namespace.clone(), node_id).await
}

/// The lock backend for one [`LockAdapter`] setting.
pub async fn from_adapter(
    adapter: &LockAdapter,
    namespace: Namespace,
    node_id: impl Into<String>,
) -> Result<Arc<dyn LockBackend>, LockError> {
    Ok(match adapter {
        LockAdapter::Local => Arc::new(LocalLock::new(node_id)?),
        LockAdapter::Redis(url) => Arc::new(RedisLock::connect(url, namespace, node_id).await?),
    })
}

/// Check a lock name: 1 to [`MAX_NAME_LEN`] printable ASCII characters, no
/// space, no SCAN glob characters, no `{` or `}` (the name is the hash tag
/// of its keys, `<ns>:lock:{<name>}`: a brace in it would change the tag).
pub fn validate_name(name: &str) -> Result<(), LockError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("too long")
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        Some("not printable ASCII or contains a space")
    } else if name.contains(['*', '?', '[', ']', '\\']) {
        Some("contains a glob character")
    } else if name.contains(['{', '}']) {
        Some("contains { or }, which would change its keys' Redis Cluster hash tag")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LockError::InvalidName {
            name: name.chars().take(MAX_NAME_LEN).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn validate_node_id(node_id: String) -> Result<String, LockError> {
    let reason = if node_id.is_empty() {
        Some("empty")
    } else if node_id.len() > MAX_NODE_ID_LEN {
        Some("too long")
    } else if node_id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LockError::InvalidNodeId { node_id, reason }),
        None => Ok(node_id),
    }
}

pub(crate) fn validate_ttl(ttl: Duration) -> Result<(), LockError> {
    if (MIN_TTL..=MAX_TTL).contains(&ttl) {
        Ok(())
    } else {
        Err(LockError::InvalidTtl { ttl })
    }
}

/// A TTL in whole milliseconds (validated, so it fits).
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// A random 64-bit guard id as 16 lowercase hex digits.
pub(crate) fn new_guard_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
