//! Cluster configuration: reads the operators' environment variables (and an
//! optional `.env` file), validates every value, masks secrets and computes
//! the fingerprint that every node of one cluster must share.

pub mod amqp_hosts;
pub mod amqp_tls;
mod db_parts;
mod derived;
mod env_file;
pub mod modes;
mod parse;
pub mod pg_tls;
pub mod rabbitmq;
mod redis_source;
pub mod redis_url;
mod secret;
pub mod tls_files;
pub mod tls_verify;

pub use db_parts::{DB_PART_VARIABLES, DbFromParts, db_url_from_parts};
pub use env_file::{EnvFileError, parse_env_text, read_env_file};
pub use modes::{ClusterMode, WorkerMode};
pub use rabbitmq::{RabbitQueueType, RabbitSettings};
pub use redis_source::RedisSource;
pub use secret::{AppKey, SecretUrl, mask_url_text, short_hash};

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The default Redis URL of the sync-signal, lock and queue adapters, as in
/// the deployment guide.
pub const DEFAULT_REDIS_URL: &str = "redis://localhost:6379/0";
/// The default namespace (`CLUSTER_NAME`).
pub const DEFAULT_CLUSTER_NAME: &str = "clusterops";

use redis_url::REDIS_SCHEMES;

/// Parse a Redis URL as every `*_REDIS_URL` variable is parsed: one server
/// (`redis://`, `rediss://`) or Sentinel (`redis-sentinel://`,
/// `rediss-sentinel://`), a database that is a number (`/3`), known query
/// parameters, and readable PEM files for the TLS options (see
/// [`redis_url`]). The error says what is wrong, without the password.
pub fn parse_redis_url(raw: &str) -> Result<SecretUrl, String> {
    let target = redis_url::RedisTarget::parse(raw)?;
    target.check_files()?;
    SecretUrl::parse(raw, REDIS_SCHEMES)
}
const AMQP_SCHEMES: &[&str] = &["amqp", "amqps"];
const REDIS_URL_SHAPE: &str = "redis://[user:password@]host[:port][/db], rediss://…, or redis-sentinel://host:port[,host:port…][/db]#master";
const DB_SCHEMES: &[&str] = &["postgres", "postgresql"];
const DB_URL_SHAPE: &str = "postgres://user[:password]@host[:port]/database";
const AMQP_URL_SHAPE: &str = "amqp://user:password@host[:port][,host[:port]…][/vhost] or amqps://…";

/// Every variable this module reads, in the order of the configuration table.
pub const VARIABLES: &[&str] = &[
    "CLUSTER_NAME",
    "CACHE_DEFAULT_STORE",
    "CACHE_REDIS_URL",
    "CACHE_MEMORY_MAX",
    "PUBSUB_ADAPTER_REDIS_URL",
    "QUEUE_ADAPTER",
    "QUEUE_ADAPTER_REDIS_URL",
    "QUEUE_ADAPTER_RABBITMQ_URL",
    "QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE",
    "QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL",
    "LOCK_ADAPTER_DEFAULT",
    "LOCK_ADAPTER_REDIS_URL",
    "REDIS_URL",
    "APP_KEY",
    "APP_AES_SECRET_KEY",
    "DB_URL",
    "DB_DIALECT",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USER",
    "DB_PASSWORD",
    "STORAGE_PATH",
    "CLUSTER_MODE",
    "WORKER_MODE",
];

/// The key prefix of everything this project writes in Redis (and the prefix
/// of its RabbitMQ queue names): `CLUSTER_NAME` followed by `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Namespace(String);

/// Whether `name` is 1 to `max_len` of `A-Z a-z 0-9 _ . -`: the names of
/// namespaces, queues and Bloom filters (safe in keys, queue names and SCAN
/// patterns).
pub(crate) fn is_plain_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Namespace {
    /// A namespace from a validated name (see [`Namespace::validate`]).
    pub fn new(name: &str) -> Result<Self, String> {
        Self::validate(name)?;
        Ok(Self(name.to_string()))
    }

    /// Accepted: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or
    /// digit. No `:` (the separator) and no glob characters (SCAN patterns).
    pub fn validate(name: &str) -> Result<(), String> {
        if is_plain_name(name, 64) && name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err("1 to 64 of A-Z a-z 0-9 _ . - starting with a letter or digit".to_string())
        }
    }

    /// The bare name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `name:suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{}", self.0, suffix)
    }

    /// A SCAN pattern under this namespace: `name:suffix_glob`.
    pub fn pattern(&self, suffix_glob: &str) -> String {
        format!("{}:{}", self.0, suffix_glob)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the cache lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "store", content = "url", rename_all = "lowercase")]
pub enum CacheStore {
    /// In-process, per node.
    Memory,
    /// Shared Redis.
    Redis(SecretUrl),
}

/// Which message-queue backend nodes use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "adapter", content = "url", rename_all = "lowercase")]
pub enum QueueAdapter {
    /// In-process, per node.
    Memory,
    /// Redis Streams with one consumer group.
    Redis(SecretUrl),
    /// RabbitMQ.
    Rabbitmq(SecretUrl),
}

/// Which distributed-lock backend nodes use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "adapter", content = "url", rename_all = "lowercase")]
pub enum LockAdapter {
    /// In-process only: not a cluster lock.
    Local,
    /// Redis, with fencing tokens.
    Redis(SecretUrl),
}

/// Which sync-signal backend nodes use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "adapter", content = "url", rename_all = "lowercase")]
pub enum PubsubAdapter {
    /// In-process broadcast (single node).
    Memory,
    /// Redis Streams.
    Redis(SecretUrl),
}

/// One wrong variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The variable, e.g. `CACHE_DEFAULT_STORE`.
    pub variable: String,
    /// What was given, quoted, password masked; `None` when it was missing.
    pub given: Option<String>,
    /// Why it is wrong, when more can be said than "not accepted".
    pub reason: Option<String>,
    /// What is accepted.
    pub accepted: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.given, &self.reason) {
            (Some(given), Some(reason)) => write!(
                f,
                "{}: {given} is not accepted ({reason}); expected {}",
                self.variable, self.accepted
            ),
            (Some(given), None) => write!(
                f,
                "{}: {given} is not accepted; expected {}",
                self.variable, self.accepted
            ),
            (None, _) => write!(f, "{}: missing; expected {}", self.variable, self.accepted),
        }
    }
}

/// Why a configuration could not be loaded. Each wrong value is one line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// One or more variables have wrong values.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
    /// The `.env` file could not be read.
    #[error("env file {0}")]
    EnvFile(#[from] EnvFileError),
}

impl ConfigError {
    /// The wrong variables (empty for an env-file error).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::EnvFile(_) => &[],
        }
    }
}

/// The validated configuration of one node (or of the console watching it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Prefix of every key and queue name this project writes.
    pub namespace: Namespace,
    /// `CACHE_DEFAULT_STORE` and `CACHE_REDIS_URL`.
    pub cache: CacheStore,
    /// `CACHE_MEMORY_MAX`: at most this many entries in a memory cache
    /// (least recently used dropped first); `None`: unbounded.
    pub cache_memory_max: Option<usize>,
    /// Sync signals: Redis when `PUBSUB_ADAPTER_REDIS_URL` is set or when any
    /// other adapter uses Redis (cluster mode); memory otherwise.
    pub pubsub: PubsubAdapter,
    /// `QUEUE_ADAPTER` and its URL.
    pub queue: QueueAdapter,
    /// The RabbitMQ queue type and management API (`QUEUE_ADAPTER_RABBITMQ_*`).
    pub rabbitmq: RabbitSettings,
    /// `LOCK_ADAPTER_DEFAULT` and `LOCK_ADAPTER_REDIS_URL`.
    pub lock: LockAdapter,
    /// `REDIS_URL`: the worker-ID allocator's Redis; `None` means a random
    /// worker ID (single node only).
    pub worker_id_redis: Option<SecretUrl>,
    /// `APP_KEY`, shown only as a fingerprint.
    pub app_key: Option<AppKey>,
    /// `APP_AES_SECRET_KEY`: the key the application encrypts fields with;
    /// the deployment guide requires it identical on every node. Shown only
    /// as a fingerprint; part of the configuration fingerprint.
    pub aes_secret_key: Option<AppKey>,
    /// `DB_URL`: the app's PostgreSQL database (reference node, backups).
    pub db_url: Option<SecretUrl>,
    /// The database as the guide's parts gave it (`DB_DIALECT`, `DB_HOST`,
    /// …) when `DB_URL` is unset; a PostgreSQL one is also `db_url`.
    pub db_from_parts: Option<DbFromParts>,
    /// `STORAGE_PATH`: the storage folder all nodes must share.
    pub storage_path: Option<std::path::PathBuf>,
    /// Where each Redis adapter's URL came from (its own variable,
    /// `REDIS_URL`, or the default), by the adapter's variable.
    pub redis_sources: BTreeMap<&'static str, RedisSource>,
    /// `CLUSTER_MODE`: how many node processes `clusterops node` runs on
    /// this host. Not in the fingerprint (hosts may differ).
    pub cluster_mode: ClusterMode,
    /// `WORKER_MODE`: what this node works on. Not in the fingerprint
    /// (application and job nodes differ by design).
    pub worker_mode: WorkerMode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: Namespace(DEFAULT_CLUSTER_NAME.to_string()),
            cache: CacheStore::Memory,
            cache_memory_max: None,
            pubsub: PubsubAdapter::Memory,
            queue: QueueAdapter::Memory,
            rabbitmq: RabbitSettings::default(),
            lock: LockAdapter::Local,
            worker_id_redis: None,
            app_key: None,
            aes_secret_key: None,
            db_url: None,
            db_from_parts: None,
            storage_path: None,
            redis_sources: BTreeMap::new(),
            cluster_mode: ClusterMode::Single,
            worker_mode: WorkerMode::All,
        }
    }
}

#[cfg(test)]
mod tests;
