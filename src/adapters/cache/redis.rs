//! The Redis cache backend: entries are strings at `<ns>:cache:<key>` set
//! with `PX`; delete by prefix walks `SCAN MATCH` (glob-escaped prefix) and
//! `UNLINK`s in batches. Bloom filters are in `redis_bloom`.

use super::CacheError;
use super::bloom::BloomParams;
use super::redis_bloom::{BloomImpl, RedisBlooms};
use super::single_flight::SingleFlight;
use super::store::Store;
use crate::adapters::redis_conn;
use crate::adapters::redis_conn::SharedConn;
use crate::config::{Namespace, SecretUrl};
use std::sync::Arc;

/// `COUNT` hint of each SCAN step of a prefix delete.
const SCAN_COUNT: usize = 500;

/// A cache in Redis, shared by every node of the cluster.
pub struct RedisCache {
    conn: SharedConn,
    namespace: Namespace,
    node_id: String,
    flights: SingleFlight,
    blooms: RedisBlooms,
}

/// Escape the Redis glob characters `* ? [ ] \` so that `s` matches only itself.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisCache {
    /// Connect to the cache Redis; keys go under `namespace`.
    pub async fn connect(
        url: &SecretUrl,
        namespace: Namespace,
        node_id: impl Into<String>,
    ) -> Result<Self, CacheError> {
        let conn = redis_conn::connect(url)
            .await
            .map_err(|e| CacheError::Connect(Arc::new(e)))?;
        Ok(Self::from_connection(conn, namespace, node_id))
    }

    /// A cache over an existing connection.
    pub fn from_connection(
        conn: SharedConn,
        namespace: Namespace,
        node_id: impl Into<String>,
    ) -> Self {
        let node_id = node_id.into();
        tracing::debug!(node = %node_id, namespace = %namespace, "Redis cache ready");
        Self {
            blooms: RedisBlooms::new(conn.clone(), namespace.clone()),
            conn,
            namespace,
            node_id,
            flights: SingleFlight::default(),
        }
    }

    /// Use this Bloom implementation instead of detecting it (e.g. force
    /// `Bitmap` on a server that has RedisBloom, for a uniform format).
    pub fn with_bloom_impl(mut self, imp: BloomImpl) -> Self {
        self.blooms.force(imp);
        self
    }

    /// The Bloom implementation in use: `RedisBloom` when the server has the
    /// `BF.*` commands, `Bitmap` otherwise (detected once, on first use).
    pub async fn bloom_impl(&self) -> Result<BloomImpl, CacheError> {
        self.blooms.implementation().await
    }

    /// The Redis key of a cache key: `<ns>:cache:<key>`.
    pub fn redis_key(&self, key: &str) -> String {
        self.namespace.key(&format!("cache:{key}"))
    }

    /// The Redis keys of a Bloom filter: (data, meta).
    pub fn bloom_keys(&self, name: &str) -> (String, String) {
        self.blooms.keys(name)
    }

    /// Keys being computed by `get_or_compute` in this process right now.
    pub fn computations_in_flight(&self) -> usize {
        self.flights.in_flight()
    }

    async fn unlink_matching(&self, escaped_prefix: &str) -> Result<u64, CacheError> {
        let pattern = self.namespace.pattern(&format!("cache:{escaped_prefix}*"));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut deleted: u64 = 0;
        loop {
            let (next, keys) = redis_conn::scan_page(&mut conn, cursor, &pattern, SCAN_COUNT)
                .await
                .map_err(|e| CacheError::redis("SCAN", &pattern, e))?;
            if !keys.is_empty() {
                // One UNLINK per key (one pipeline): cache keys carry no hash
                // tag, so in a Redis Cluster they are in different slots.
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("UNLINK").arg(key);
                }
                let n: Vec<u64> = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| CacheError::redis("UNLINK", &pattern, e))?;
                deleted += n.iter().sum::<u64>();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        tracing::debug!(node = %self.node_id, pattern, deleted, "cache prefix deleted");
        Ok(deleted)
    }
}

impl Store for RedisCache {
    const BACKEND: &'static str = "redis";

    fn flights(&self) -> &SingleFlight {
        &self.flights
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let rkey = self.redis_key(key);
        redis::cmd("GET")
            .arg(&rkey)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| CacheError::redis("GET", rkey, e))
    }

    async fn write(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), CacheError> {
        let rkey = self.redis_key(key);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&rkey).arg(value);
        if let Some(ms) = ttl_ms {
            cmd.arg("PX").arg(ms);
        }
        cmd.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| CacheError::redis("SET", rkey, e))
    }

    async fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let rkey = self.redis_key(key);
        let n: u64 = redis::cmd("UNLINK")
            .arg(&rkey)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| CacheError::redis("UNLINK", rkey, e))?;
        Ok(n > 0)
    }

    async fn remove_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        self.unlink_matching(&escape_glob(prefix)).await
    }

    async fn remove_all(&self) -> Result<u64, CacheError> {
        self.unlink_matching("").await
    }

    async fn bloom_create(&self, name: &str, params: BloomParams) -> Result<bool, CacheError> {
        self.blooms.reserve(name, params).await
    }

    async fn bloom_insert(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError> {
        self.blooms.add_many(name, items).await
    }

    async fn bloom_check(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError> {
        self.blooms.exists_many(name, items).await
    }

    async fn bloom_remove(&self, name: &str) -> Result<bool, CacheError> {
        self.blooms.delete(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn every_glob_character_is_escaped() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
        assert_eq!(escape_glob("plain:key"), "plain:key");
    }
}
