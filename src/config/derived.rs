//! What follows from a validated configuration: whether it is clustered,
//! which Redis holds what, and the fingerprint every node must share.

use super::{
    CacheStore, Config, ConfigError, LockAdapter, PubsubAdapter, QueueAdapter, SecretUrl,
    short_hash,
};
use std::collections::BTreeMap;

impl Config {
    /// Configuration for tests and tools: every adapter on Redis at `url`,
    /// under `namespace`.
    pub fn all_redis(url: &str, namespace: &str) -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = [
            ("CLUSTER_NAME", namespace),
            ("CACHE_DEFAULT_STORE", "redis"),
            ("CACHE_REDIS_URL", url),
            ("PUBSUB_ADAPTER_REDIS_URL", url),
            ("QUEUE_ADAPTER", "redis"),
            ("QUEUE_ADAPTER_REDIS_URL", url),
            ("LOCK_ADAPTER_DEFAULT", "redis"),
            ("LOCK_ADAPTER_REDIS_URL", url),
            ("REDIS_URL", url),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self::from_vars(&vars)
    }

    /// True when any adapter is shared (Redis or RabbitMQ): the node can run
    /// beside others.
    pub fn is_clustered(&self) -> bool {
        !matches!(self.cache, CacheStore::Memory)
            || !matches!(self.queue, QueueAdapter::Memory)
            || !matches!(self.lock, LockAdapter::Local)
    }

    /// The adapters still on memory/local (what stops a node from being
    /// clustered), by variable name.
    pub fn local_adapters(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if matches!(self.cache, CacheStore::Memory) {
            out.push("CACHE_DEFAULT_STORE");
        }
        if matches!(self.queue, QueueAdapter::Memory) {
            out.push("QUEUE_ADAPTER");
        }
        if matches!(self.lock, LockAdapter::Local) {
            out.push("LOCK_ADAPTER_DEFAULT");
        }
        if matches!(self.pubsub, PubsubAdapter::Memory) {
            out.push("PUBSUB_ADAPTER_REDIS_URL");
        }
        if self.worker_id_redis.is_none() {
            out.push("REDIS_URL");
        }
        out
    }

    /// The Redis that holds cluster coordination (node registry, maintenance
    /// flag, runbook journal): `REDIS_URL`, else the lock's, else the sync
    /// signals', else the queue's, else the cache's. `None` on a memory-only
    /// configuration.
    pub fn coordination_redis(&self) -> Option<(&'static str, &SecretUrl)> {
        let order = [
            "REDIS_URL",
            "LOCK_ADAPTER_REDIS_URL",
            "PUBSUB_ADAPTER_REDIS_URL",
            "QUEUE_ADAPTER_REDIS_URL",
            "CACHE_REDIS_URL",
        ];
        let urls = self.redis_urls();
        order
            .iter()
            .find_map(|name| urls.iter().find(|(n, _)| n == name).map(|(n, u)| (*n, *u)))
    }

    /// Every Redis URL in use, by the variable that names it.
    pub fn redis_urls(&self) -> Vec<(&'static str, &SecretUrl)> {
        let mut out = Vec::new();
        if let CacheStore::Redis(u) = &self.cache {
            out.push(("CACHE_REDIS_URL", u));
        }
        if let PubsubAdapter::Redis(u) = &self.pubsub {
            out.push(("PUBSUB_ADAPTER_REDIS_URL", u));
        }
        if let QueueAdapter::Redis(u) = &self.queue {
            out.push(("QUEUE_ADAPTER_REDIS_URL", u));
        }
        if let LockAdapter::Redis(u) = &self.lock {
            out.push(("LOCK_ADAPTER_REDIS_URL", u));
        }
        if let Some(u) = &self.worker_id_redis {
            out.push(("REDIS_URL", u));
        }
        out
    }

    /// Per setting, a short hash of its value (secrets included, but only
    /// hashed). Two nodes that disagree on a setting differ in that entry, so
    /// the console can name the setting without showing either value.
    pub fn fingerprint_parts(&self) -> BTreeMap<&'static str, String> {
        fn url_of(u: Option<&SecretUrl>) -> &str {
            u.map(SecretUrl::expose).unwrap_or("")
        }
        let cache = match &self.cache {
            CacheStore::Memory => "memory".to_string(),
            CacheStore::Redis(u) => format!("redis {}", u.expose()),
        };
        let pubsub = match &self.pubsub {
            PubsubAdapter::Memory => "memory".to_string(),
            PubsubAdapter::Redis(u) => format!("redis {}", u.expose()),
        };
        let queue = match &self.queue {
            QueueAdapter::Memory => "memory".to_string(),
            QueueAdapter::Redis(u) => format!("redis {}", u.expose()),
            // Quorum (the default) keeps the value of earlier versions.
            QueueAdapter::Rabbitmq(u) => match self.rabbitmq.queue_type {
                Some(crate::config::RabbitQueueType::Classic) => {
                    format!("rabbitmq {} classic", u.expose())
                }
                _ => format!("rabbitmq {}", u.expose()),
            },
        };
        let lock = match &self.lock {
            LockAdapter::Local => "local".to_string(),
            LockAdapter::Redis(u) => format!("redis {}", u.expose()),
        };
        let entries: [(&'static str, String); 8] = [
            ("CLUSTER_NAME", self.namespace.name().to_string()),
            ("CACHE", cache),
            ("PUBSUB", pubsub),
            ("QUEUE", queue),
            ("LOCK", lock),
            (
                "REDIS_URL",
                url_of(self.worker_id_redis.as_ref()).to_string(),
            ),
            ("DB_URL", url_of(self.db_url.as_ref()).to_string()),
            (
                "APP_KEY",
                self.app_key
                    .as_ref()
                    .map(|k| k.expose().to_string())
                    .unwrap_or_default(),
            ),
        ];
        // Only when set, so fingerprints of configurations without it stay
        // as they were.
        let aes = self
            .aes_secret_key
            .as_ref()
            .map(|k| ("APP_AES_SECRET_KEY", k.expose().to_string()));
        let entries = entries.into_iter().chain(aes);
        entries
            .map(|(name, value)| (name, short_hash(format!("{name}={value}").as_bytes())))
            .collect()
    }

    /// One short hash over every setting that must be identical on all nodes
    /// of a cluster. Reveals nothing about the values.
    pub fn fingerprint(&self) -> String {
        let joined: String = self
            .fingerprint_parts()
            .iter()
            .map(|(k, v)| format!("{k}={v};"))
            .collect();
        short_hash(joined.as_bytes())
    }
}
