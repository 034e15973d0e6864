//! The cache adapter: byte values with optional TTLs, delete by prefix,
//! single-flight get-or-compute and Bloom filters, over an in-process map
//! or a shared Redis, behind one object-safe trait [`Cache`].
//!
//! Both backends get their [`Cache`] from one implementation (store.rs)
//! that checks every argument once; each backend implements the rest.
//!
//! Typed (serde JSON) helpers live in the [`CacheJsonExt`] extension trait,
//! implemented for every `Cache` (including `dyn Cache`).
//!
//! Single flight is per process: concurrent `get_or_compute` callers for one
//! key in one process compute once. Callers on different nodes may each
//! compute (and the last write wins); cross-node single flight is not
//! promised.

mod bloom;
mod json;
mod memory;
mod memory_entries;
mod redis;
mod redis_bloom;
mod redis_bloom_read;
mod single_flight;
mod store;

pub use bloom::{BloomParams, MAX_BLOOM_BITS};
pub use json::CacheJsonExt;
pub use memory::MemoryCache;
pub use redis::RedisCache;
pub use redis_bloom::{BloomImpl, bloom_key, bloom_meta_key};

use crate::adapters::redis_conn::ConnectError;
use crate::config::{CacheStore, Config};
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The error a compute function returns (any error type, boxed).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The value producer of [`Cache::get_or_compute`]; build one with [`compute`].
pub type Compute = Box<dyn FnOnce() -> BoxFuture<'static, Result<Vec<u8>, BoxError>> + Send>;

/// Box an async closure into a [`Compute`].
///
/// ```ignore
/// cache.get_or_compute("user:1", ttl, compute(|| async { Ok(b"v".to_vec()) })).await?;
/// ```
pub fn compute<F, Fut, E>(f: F) -> Compute
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<u8>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::new(move || Box::pin(async move { f().await.map_err(Into::into) }))
}

/// Longest accepted key or prefix, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest accepted Bloom filter name, in bytes.
pub const MAX_BLOOM_NAME_LEN: usize = 128;

/// What went wrong in a cache call. Cloneable so that every waiter of one
/// single flight gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// A key or prefix that is not accepted.
    #[error("cache key {key:?} is not accepted: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TTL that is not accepted.
    #[error("a cache TTL must be at least 1 ms (got {0:?}); pass None for no expiry")]
    InvalidTtl(Duration),
    /// Connecting to Redis failed.
    #[error("{0}; check CACHE_REDIS_URL and that Redis is running")]
    Connect(Arc<ConnectError>),
    /// A Redis command failed.
    #[error("Redis {op} on {key} failed: {source}; check that Redis is reachable")]
    Redis {
        /// The command or step, e.g. `GET`.
        op: &'static str,
        /// The full Redis key (or pattern).
        key: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// The compute function of `get_or_compute` failed; nothing was cached.
    #[error("computing the value of cache key {key:?} failed (nothing cached): {source}")]
    Compute {
        /// The cache key.
        key: String,
        /// The compute function's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A value could not be encoded or decoded as JSON.
    #[error(
        "cache key {key:?}: JSON {action} failed: {source}; delete the key if its format changed"
    )]
    Json {
        /// The cache key.
        key: String,
        /// `encoding` or `decoding`.
        action: &'static str,
        /// The serde error.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// Bloom parameters that are not accepted.
    #[error("Bloom filter {name:?}: {reason}")]
    InvalidBloom {
        /// The filter name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `add`/`exists` on a filter that was never reserved.
    #[error("Bloom filter {name:?} is not reserved; call bloom_reserve first")]
    BloomNotReserved {
        /// The filter name.
        name: String,
    },
    /// `reserve` of an existing filter with other parameters.
    #[error(
        "Bloom filter {name:?} already exists with {existing}, not {requested}; delete it first or use the existing parameters"
    )]
    BloomMismatch {
        /// The filter name.
        name: String,
        /// The stored parameters, as text.
        existing: String,
        /// The requested ones, as text.
        requested: String,
    },
    /// A Redis key that does not hold what this adapter wrote.
    #[error(
        "Redis key {key} is unreadable: {reason}; delete it (it will be re-created by bloom_reserve)"
    )]
    Corrupt {
        /// The full Redis key.
        key: String,
        /// What was found.
        reason: String,
    },
}

impl CacheError {
    pub(crate) fn redis(
        op: &'static str,
        key: impl Into<String>,
        source: ::redis::RedisError,
    ) -> Self {
        Self::Redis {
            op,
            key: key.into(),
            source,
        }
    }
}

/// A cache shared by the code of one node (memory) or by all nodes (Redis).
///
/// Keys are 1 to [`MAX_KEY_LEN`] bytes without ASCII control characters;
/// any other character, including glob characters, is literal.
#[async_trait::async_trait]
pub trait Cache: Send + Sync {
    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;

    /// The value, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Store a value; `ttl: None` means no expiry (and clears an earlier TTL).
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;

    /// Delete one key; `true` when it existed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Delete every key starting with `prefix` (literally: glob characters
    /// match only themselves). Returns how many were deleted. Not atomic:
    /// keys written during the call may survive.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError>;

    /// Delete every cache entry (not the Bloom filters). Returns the count.
    async fn clear(&self) -> Result<u64, CacheError>;

    /// The cached value, or compute, store (with `ttl`) and return it.
    /// Concurrent callers in this process for the same key compute once and
    /// all get the result, or all get the error; a failed compute is not
    /// cached. Not single-flight across nodes.
    async fn get_or_compute(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: Compute,
    ) -> Result<Vec<u8>, CacheError>;

    /// Create the filter `name` sized for `capacity` items at `error_rate`
    /// false positives. Idempotent with the same parameters (every node may
    /// reserve at start-up); an error if it exists with other parameters.
    /// Returns `true` when it was created by this call.
    async fn bloom_reserve(
        &self,
        name: &str,
        error_rate: f64,
        capacity: u64,
    ) -> Result<bool, CacheError>;

    /// Add items atomically; for each, `true` when it was surely not in the
    /// filter before.
    async fn bloom_add_many(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError>;

    /// For each item: `false` means surely never added, `true` means
    /// probably added (false positives at about the reserved error rate
    /// while under capacity).
    async fn bloom_exists_many(&self, name: &str, items: &[&[u8]])
    -> Result<Vec<bool>, CacheError>;

    /// Delete the filter; `true` when it existed.
    async fn bloom_delete(&self, name: &str) -> Result<bool, CacheError>;

    /// Add one item; `true` when it was surely not in the filter before.
    async fn bloom_add(&self, name: &str, item: &[u8]) -> Result<bool, CacheError> {
        let out = self.bloom_add_many(name, &[item]).await?;
        Ok(out.first().copied().unwrap_or(false))
    }

    /// Whether one item was probably added (`false` is certain).
    async fn bloom_exists(&self, name: &str, item: &[u8]) -> Result<bool, CacheError> {
        let out = self.bloom_exists_many(name, &[item]).await?;
        Ok(out.first().copied().unwrap_or(false))
    }
}

/// The cache chosen by `config.cache`: memory or Redis (keys under
/// `config.namespace`). `node_id` names this node in logs.
pub async fn from_config(
    config: &Config,
    node_id: impl Into<String>,
) -> Result<Arc<dyn Cache>, CacheError> {
    let node_id = node_id.into();
    match &config.cache {
        CacheStore::Memory => Ok(Arc::new(MemoryCache::with_max(
            node_id,
            config.cache_memory_max,
        ))),
        CacheStore::Redis(url) => {
            let cache = RedisCache::connect(url, config.namespace.clone(), node_id).await?;
            Ok(Arc::new(cache))
        }
    }
}

/// Check a key (or a prefix, with `what` = "prefix").
pub(crate) fn validate_key(key: &str, what: &str) -> Result<(), CacheError> {
    let reason = if key.is_empty() {
        Some(format!(
            "an empty {what} is not allowed (use clear() to empty the cache)"
        ))
    } else if key.len() > MAX_KEY_LEN {
        Some(format!("longer than {MAX_KEY_LEN} bytes"))
    } else if key.chars().any(|c| c.is_ascii_control()) {
        Some("contains an ASCII control character".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CacheError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Check a TTL: `None` or at least 1 ms.
pub(crate) fn validate_ttl(ttl: Option<Duration>) -> Result<Option<u64>, CacheError> {
    match ttl {
        None => Ok(None),
        Some(d) if d < Duration::from_millis(1) => Err(CacheError::InvalidTtl(d)),
        Some(d) => Ok(Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
    }
}

/// Bloom names: 1 to [`MAX_BLOOM_NAME_LEN`] of `A-Z a-z 0-9 _ . -`.
pub(crate) fn validate_bloom_name(name: &str) -> Result<(), CacheError> {
    if crate::config::is_plain_name(name, MAX_BLOOM_NAME_LEN) {
        Ok(())
    } else {
        Err(CacheError::InvalidBloom {
            name: name.chars().take(80).collect(),
            reason: format!("a name is 1 to {MAX_BLOOM_NAME_LEN} of A-Z a-z 0-9 _ . -"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_glob_characters_are_accepted_and_control_characters_are_not() {
        assert!(validate_key("a*b?[c]\\", "key").is_ok());
        assert!(validate_key("", "key").is_err());
        assert!(validate_key("a\nb", "key").is_err());
        assert!(validate_key(&"x".repeat(MAX_KEY_LEN + 1), "key").is_err());
    }

    #[test]
    fn a_zero_ttl_is_refused_and_sub_millisecond_is_refused() {
        assert!(validate_ttl(Some(Duration::ZERO)).is_err());
        assert!(validate_ttl(Some(Duration::from_micros(10))).is_err());
        assert_eq!(
            validate_ttl(Some(Duration::from_millis(5))).unwrap(),
            Some(5)
        );
        assert_eq!(validate_ttl(None).unwrap(), None);
    }

    #[test]
    fn bloom_names_cannot_contain_a_colon() {
        assert!(validate_bloom_name("users.seen-1").is_ok());
        assert!(validate_bloom_name("a:meta").is_err());
        assert!(validate_bloom_name("").is_err());
    }
}
