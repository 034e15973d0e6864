//! The one [`Cache`] implementation both backends share: every key, prefix,
//! TTL, Bloom filter name and Bloom parameter is checked here, once, and
//! `get_or_compute`'s misses go through the backend's single flight; what
//! differs per backend is its [`Store`].

use super::bloom::BloomParams;
use super::single_flight::SingleFlight;
use super::{Cache, CacheError, Compute, validate_bloom_name, validate_key, validate_ttl};
use std::future::Future;
use std::time::Duration;

/// What a cache backend implements; the arguments it gets are checked.
pub(crate) trait Store: Send + Sync {
    /// [`Cache::backend`]: `"memory"` or `"redis"`.
    const BACKEND: &'static str;

    /// This backend's computations in flight ([`Cache::get_or_compute`]).
    fn flights(&self) -> &SingleFlight;

    /// [`Cache::get`].
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, CacheError>> + Send;

    /// [`Cache::set`], with the TTL in whole milliseconds.
    fn write(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// [`Cache::delete`].
    fn remove(&self, key: &str) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// [`Cache::delete_prefix`].
    fn remove_prefix(&self, prefix: &str) -> impl Future<Output = Result<u64, CacheError>> + Send;

    /// [`Cache::clear`].
    fn remove_all(&self) -> impl Future<Output = Result<u64, CacheError>> + Send;

    /// [`Cache::bloom_reserve`], with the filter's size worked out.
    fn bloom_create(
        &self,
        name: &str,
        params: BloomParams,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// [`Cache::bloom_add_many`].
    fn bloom_insert(
        &self,
        name: &str,
        items: &[&[u8]],
    ) -> impl Future<Output = Result<Vec<bool>, CacheError>> + Send;

    /// [`Cache::bloom_exists_many`].
    fn bloom_check(
        &self,
        name: &str,
        items: &[&[u8]],
    ) -> impl Future<Output = Result<Vec<bool>, CacheError>> + Send;

    /// [`Cache::bloom_delete`].
    fn bloom_remove(&self, name: &str) -> impl Future<Output = Result<bool, CacheError>> + Send;
}

#[async_trait::async_trait]
impl<S: Store + 'static> Cache for S {
    fn backend(&self) -> &'static str {
        S::BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        validate_key(key, "key")?;
        self.read(key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        validate_key(key, "key")?;
        let ttl_ms = validate_ttl(ttl)?;
        self.write(key, value, ttl_ms).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        validate_key(key, "key")?;
        self.remove(key).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        validate_key(prefix, "prefix")?;
        self.remove_prefix(prefix).await
    }

    async fn clear(&self) -> Result<u64, CacheError> {
        self.remove_all().await
    }

    async fn get_or_compute(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: Compute,
    ) -> Result<Vec<u8>, CacheError> {
        validate_key(key, "key")?;
        let ttl_ms = validate_ttl(ttl)?;
        if let Some(v) = self.read(key).await? {
            return Ok(v);
        }
        self.flights().run(self, key, ttl_ms, compute).await
    }

    async fn bloom_reserve(
        &self,
        name: &str,
        error_rate: f64,
        capacity: u64,
    ) -> Result<bool, CacheError> {
        validate_bloom_name(name)?;
        let params = BloomParams::new(name, error_rate, capacity)?;
        self.bloom_create(name, params).await
    }

    async fn bloom_add_many(&self, name: &str, items: &[&[u8]]) -> Result<Vec<bool>, CacheError> {
        validate_bloom_name(name)?;
        self.bloom_insert(name, items).await
    }

    async fn bloom_exists_many(
        &self,
        name: &str,
        items: &[&[u8]],
    ) -> Result<Vec<bool>, CacheError> {
        validate_bloom_name(name)?;
        self.bloom_check(name, items).await
    }

    async fn bloom_delete(&self, name: &str) -> Result<bool, CacheError> {
        validate_bloom_name(name)?;
        self.bloom_remove(name).await
    }
}
