//! Where an adapter's Redis URL comes from. The deployment guide's
//! direction is one `REDIS_URL` as the fallback of every adapter: an
//! adapter's own variable (`CACHE_REDIS_URL`, `PUBSUB_ADAPTER_REDIS_URL`,
//! `QUEUE_ADAPTER_REDIS_URL`, `LOCK_ADAPTER_REDIS_URL`) wins when set and
//! not empty, else `REDIS_URL`, else [`super::DEFAULT_REDIS_URL`].

use super::SecretUrl;
use super::redis_url::REDIS_SCHEMES;
use serde::Serialize;

/// Which variable gave an adapter its Redis URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisSource {
    /// The adapter's own variable.
    Own,
    /// `REDIS_URL`, the fallback.
    RedisUrl,
    /// Neither was set: `redis://localhost:6379/0`.
    Default,
}

impl RedisSource {
    /// How `clusterops config` says it: empty for the adapter's own
    /// variable, else ` (from REDIS_URL)` or ` (default)`.
    pub fn note(self) -> &'static str {
        match self {
            RedisSource::Own => "",
            RedisSource::RedisUrl => " (from REDIS_URL)",
            RedisSource::Default => " (default)",
        }
    }
}

/// The default Redis URL, parsed.
pub(crate) fn default_redis_url() -> Option<SecretUrl> {
    SecretUrl::parse(super::DEFAULT_REDIS_URL, REDIS_SCHEMES).ok()
}
