//! Typed helpers over the byte-level [`Cache`]: values encoded as serde
//! JSON. An extension trait (generic methods would make `Cache` unusable as
//! `dyn Cache`), implemented for every cache including `dyn Cache`.

use super::{BoxError, Cache, CacheError, compute};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, CacheError> {
    serde_json::from_slice(bytes).map_err(|e| CacheError::Json {
        key: key.to_string(),
        action: "decoding",
        source: Arc::new(e),
    })
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, CacheError> {
    serde_json::to_vec(value).map_err(|e| CacheError::Json {
        key: key.to_string(),
        action: "encoding",
        source: Arc::new(e),
    })
}

/// JSON get/set/get-or-compute on any [`Cache`].
#[async_trait::async_trait]
pub trait CacheJsonExt: Cache {
    /// The value decoded from JSON, or `None` when absent or expired.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        match self.get(key).await? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Store a value encoded as JSON.
    async fn set_json<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let bytes = encode(key, value)?;
        self.set(key, &bytes, ttl).await
    }

    /// [`Cache::get_or_compute`] with a typed value stored as JSON.
    async fn get_or_compute_json<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let owned_key = key.to_string();
        let bytes = self
            .get_or_compute(
                key,
                ttl,
                compute(move || async move {
                    let value = f().await.map_err(|e| -> BoxError { e.into() })?;
                    let bytes = encode(&owned_key, &value)?;
                    Ok::<_, BoxError>(bytes)
                }),
            )
            .await?;
        decode(key, &bytes)
    }
}

impl<C: Cache + ?Sized> CacheJsonExt for C {}
