//! The in-process cache backend: an ordered map with per-entry expiry
//! (expired entries are invisible, dropped on access and swept at most once
//! a second on writes), bounded by `CACHE_MEMORY_MAX` entries when set (the
//! least recently used goes first; memory_entries.rs), and in-process Bloom
//! filters.

use super::CacheError;
use super::bloom::{BitBloom, BloomParams};
use super::memory_entries::Entries;
use super::single_flight::SingleFlight;
use super::store::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Interval between sweeps of expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A cache local to this process (single node, or per-node data).
pub struct MemoryCache {
    node_id: String,
    entries: Mutex<Entries>,
    blooms: Mutex<HashMap<String, BitBloom>>,
    flights: SingleFlight,
}

impl MemoryCache {
    /// An empty, unbounded cache. `node_id` names this node in logs.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self::with_max(node_id, None)
    }

    /// An empty cache of at most `max` entries (`CACHE_MEMORY_MAX`): when
    /// full, a new key drops expired entries, then the least recently used.
    pub fn with_max(node_id: impl Into<String>, max: Option<usize>) -> Self {
        Self {
            node_id: node_id.into(),
            entries: Mutex::new(Entries::new(max)),
            blooms: Mutex::new(HashMap::new()),
            flights: SingleFlight::default(),
        }
    }

    /// Entries held, including expired ones not yet swept.
    pub fn len_including_expired(&self) -> usize {
        self.entries.lock().len()
    }

    /// Drop every expired entry now; returns how many were dropped.
    pub fn sweep_expired(&self) -> usize {
        self.entries.lock().retain_live(Instant::now())
    }

    /// Keys being computed by `get_or_compute` right now.
    pub fn computations_in_flight(&self) -> usize {
        self.flights.in_flight()
    }

    fn delete_matching(&self, prefix: &str) -> u64 {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let keys = entries.keys_with_prefix(prefix);
        let mut deleted = 0;
        for k in keys {
            if entries.remove(&k).is_some_and(|e| e.live(now)) {
                deleted += 1;
            }
        }
        deleted
    }
}

impl Store for MemoryCache {
    const BACKEND: &'static str = "memory";

    fn flights(&self) -> &SingleFlight {
        &self.flights
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        Ok(self.entries.lock().get(key, now))
    }

    async fn write(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), CacheError> {
        let now = Instant::now();
        let expires_at = ttl_ms.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        let mut entries = self.entries.lock();
        if now.duration_since(entries.last_sweep) >= SWEEP_EVERY {
            let swept = entries.retain_live(now);
            if swept > 0 {
                tracing::trace!(node = %self.node_id, swept, "memory cache: expired entries swept");
            }
        }
        let evicted = entries.insert(key, value.to_vec(), expires_at, now);
        if evicted > 0 {
            tracing::trace!(node = %self.node_id, evicted, "memory cache full: least recently used dropped");
        }
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let now = Instant::now();
        Ok(self.entries.lock().remove(key).is_some_and(|e| e.live(now)))
    }

    async fn remove_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        Ok(self.delete_matching(prefix))
    }

    async fn remove_all(&self) -> Result<u64, CacheError> {
        Ok(self.delete_matching(""))
    }

    async fn bloom_create(&self, name: &str, params: BloomParams) -> Result<bool, CacheError> {
        let mut blooms = self.blooms.lock();
        if let Some(existing) = blooms.get(name) {
            let same = existing.params.capacity == params.capacity
                && existing.params.error_rate.to_string() == params.error_rate.to_string();
            return if same {
                Ok(false)
            } else {
                Err(CacheError::BloomMismatch {
                    name: name.to_string(),
                    existing: existing.params.describe(),
                    requested: params.describe(),
                })
            };
        }
        blooms.insert(name.to_string(), BitBloom::new(params));
        Ok(true)
    }

    async fn bloom_insert(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError> {
        let mut blooms = self.blooms.lock();
        let bloom = blooms
            .get_mut(name)
            .ok_or_else(|| CacheError::BloomNotReserved {
                name: name.to_string(),
            })?;
        Ok(items.iter().map(|item| bloom.add(item)).collect())
    }

    async fn bloom_check(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError> {
        let blooms = self.blooms.lock();
        let bloom = blooms
            .get(name)
            .ok_or_else(|| CacheError::BloomNotReserved {
                name: name.to_string(),
            })?;
        Ok(items.iter().map(|item| bloom.contains(item)).collect())
    }

    async fn bloom_remove(&self, name: &str) -> Result<bool, CacheError> {
        Ok(self.blooms.lock().remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::cache::Cache;

    #[tokio::test]
    async fn a_bounded_cache_keeps_its_most_recently_used_entries() {
        let cache = MemoryCache::with_max("n1", Some(100));
        for i in 0..100 {
            cache.set(&format!("k{i}"), b"v", None).await.unwrap();
        }
        assert!(
            cache.get("k0").await.unwrap().is_some(),
            "k0 used: now the newest"
        );
        for i in 100..150 {
            cache.set(&format!("k{i}"), b"v", None).await.unwrap();
        }
        assert_eq!(cache.len_including_expired(), 100);
        assert!(cache.get("k0").await.unwrap().is_some());
        assert!(
            cache.get("k1").await.unwrap().is_none(),
            "the least recently used went first"
        );
        assert!(cache.get("k149").await.unwrap().is_some());
        assert_eq!(cache.delete_prefix("k").await.unwrap(), 100);
    }

    #[tokio::test]
    async fn expired_entries_are_swept_on_a_later_write() {
        let cache = MemoryCache::new("n1");
        cache
            .set("a", b"1", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.len_including_expired(), 1);
        cache.entries.lock().last_sweep -= SWEEP_EVERY;
        cache.set("b", b"2", None).await.unwrap();
        assert_eq!(cache.len_including_expired(), 1);
        assert_eq!(cache.sweep_expired(), 0);
    }
}
