//! Cluster configuration: reads the operators' environment variables (and an
//! optional `.env` file), validates every value, masks secrets and computes
//! the fingerprint that every node of one cluster must share.

pub mod amqp_hosts;
pub mod amqp_tls;
mod db_parts;
mod derived;
mod env_file;
pub mod pg_tls;
pub mod rabbitmq;
mod redis_source;
pub mod redis_url;
mod secret;
pub mod tls_files;
pub mod tls_verify;

pub use db_parts::{DB_PART_VARIABLES, DbFromParts, db_url_from_parts};
pub use env_file::{EnvFileError, parse_env_text, read_env_file};
pub use rabbitmq::{RabbitQueueType, RabbitSettings};
pub use redis_source::RedisSource;
use redis_source::default_redis_url;
pub use secret::{AppKey, SecretUrl, mask_url_text, short_hash};

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

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
];

/// The key prefix of everything this project writes in Redis (and the prefix
/// of its RabbitMQ queue names): `CLUSTER_NAME` followed by `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Namespace(String);

impl Namespace {
    /// A namespace from a validated name (see [`Namespace::validate`]).
    pub fn new(name: &str) -> Result<Self, String> {
        Self::validate(name)?;
        Ok(Self(name.to_string()))
    }

    /// Accepted: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or
    /// digit. No `:` (the separator) and no glob characters (SCAN patterns).
    pub fn validate(name: &str) -> Result<(), String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
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
        }
    }
}

impl Config {
    /// Load from the process environment, with `env_file` (if given) read
    /// first: a variable set in the process environment overrides the file.
    pub fn load(env_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut vars = match env_file {
            Some(path) => read_env_file(path)?,
            None => BTreeMap::new(),
        };
        for name in VARIABLES {
            if let Ok(value) = std::env::var(name) {
                vars.insert((*name).to_string(), value);
            }
        }
        Self::from_vars(&vars)
    }

    /// Validate a set of variables. Empty values count as unset.
    /// Every problem found is reported, one line each.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut problems = Vec::new();
        let mut problem = |variable: &str, given: Option<&str>, accepted: &str| {
            problems.push(ConfigProblem {
                variable: variable.to_string(),
                given: given.map(|g| format!("{:?}", mask_url_text(g))),
                reason: None,
                accepted: accepted.to_string(),
            });
        };
        let mut url_problems: Vec<ConfigProblem> = Vec::new();
        let mut parse_url =
            |variable: &str, raw: &str, schemes: &[&str], shape: &str| -> Option<SecretUrl> {
                // Each kind's own parameters (TLS options, the files they
                // name) are checked with the URL.
                let parsed = if schemes == REDIS_SCHEMES {
                    parse_redis_url(raw)
                } else if schemes == DB_SCHEMES {
                    SecretUrl::parse(raw, schemes).and_then(|u| {
                        pg_tls::pg_connect_config(&u)
                            .map(|_| u)
                            .map_err(|e| e.problem.to_string())
                    })
                } else if schemes == AMQP_SCHEMES {
                    SecretUrl::parse(raw, schemes)
                        .and_then(|u| amqp_tls::amqp_target(&u).map(|_| u).map_err(|e| e.problem))
                } else {
                    SecretUrl::parse(raw, schemes)
                };
                match parsed {
                    Ok(u) => Some(u),
                    Err(why) => {
                        url_problems.push(ConfigProblem {
                            variable: variable.to_string(),
                            given: Some(format!("{:?}", mask_url_text(raw))),
                            reason: Some(why),
                            accepted: shape.to_string(),
                        });
                        None
                    }
                }
            };

        let namespace = match get("CLUSTER_NAME") {
            None => Some(Namespace(DEFAULT_CLUSTER_NAME.to_string())),
            Some(name) => match Namespace::new(name) {
                Ok(ns) => Some(ns),
                Err(accepted) => {
                    problem("CLUSTER_NAME", Some(name), &accepted);
                    None
                }
            },
        };

        let worker_id_redis = match get("REDIS_URL") {
            None => Some(None),
            Some(raw) => parse_url("REDIS_URL", raw, REDIS_SCHEMES, REDIS_URL_SHAPE).map(Some),
        };

        // An adapter's Redis URL: its own variable, else REDIS_URL, else the
        // default (redis_source.rs); where each came from is kept for `config`.
        type Parse<'p> = dyn FnMut(&str, &str, &[&str], &str) -> Option<SecretUrl> + 'p;
        let mut redis_sources = BTreeMap::new();
        let adapter_redis = |own: &'static str,
                             parse: &mut Parse<'_>,
                             sources: &mut BTreeMap<&'static str, RedisSource>|
         -> Option<SecretUrl> {
            let (source, url) = match (get(own), &worker_id_redis) {
                (Some(raw), _) => (
                    RedisSource::Own,
                    parse(own, raw, REDIS_SCHEMES, REDIS_URL_SHAPE),
                ),
                (None, Some(Some(url))) => (RedisSource::RedisUrl, Some(url.clone())),
                // REDIS_URL is wrong: its own line says so.
                (None, None) => (RedisSource::RedisUrl, None),
                (None, Some(None)) => (RedisSource::Default, default_redis_url()),
            };
            sources.insert(own, source);
            url
        };

        let cache = match get("CACHE_DEFAULT_STORE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("memory") => Some(CacheStore::Memory),
            Some("redis") => adapter_redis("CACHE_REDIS_URL", &mut parse_url, &mut redis_sources)
                .map(CacheStore::Redis),
            Some(_) => {
                problem(
                    "CACHE_DEFAULT_STORE",
                    get("CACHE_DEFAULT_STORE"),
                    "memory or redis",
                );
                None
            }
        };

        let queue = match get("QUEUE_ADAPTER").map(str::to_ascii_lowercase).as_deref() {
            None | Some("memory") => Some(QueueAdapter::Memory),
            Some("redis") => adapter_redis(
                "QUEUE_ADAPTER_REDIS_URL",
                &mut parse_url,
                &mut redis_sources,
            )
            .map(QueueAdapter::Redis),
            Some("rabbitmq") => match get("QUEUE_ADAPTER_RABBITMQ_URL") {
                Some(raw) => parse_url(
                    "QUEUE_ADAPTER_RABBITMQ_URL",
                    raw,
                    AMQP_SCHEMES,
                    AMQP_URL_SHAPE,
                )
                .map(QueueAdapter::Rabbitmq),
                None => {
                    problem(
                        "QUEUE_ADAPTER_RABBITMQ_URL",
                        None,
                        &format!("{AMQP_URL_SHAPE} (required when QUEUE_ADAPTER=rabbitmq)"),
                    );
                    None
                }
            },
            Some(_) => {
                problem(
                    "QUEUE_ADAPTER",
                    get("QUEUE_ADAPTER"),
                    "memory, redis or rabbitmq",
                );
                None
            }
        };

        let lock = match get("LOCK_ADAPTER_DEFAULT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("local") | Some("memory") => Some(LockAdapter::Local),
            Some("redis") => {
                adapter_redis("LOCK_ADAPTER_REDIS_URL", &mut parse_url, &mut redis_sources)
                    .map(LockAdapter::Redis)
            }
            Some(_) => {
                problem(
                    "LOCK_ADAPTER_DEFAULT",
                    get("LOCK_ADAPTER_DEFAULT"),
                    "local or redis",
                );
                None
            }
        };

        // Sync signals use Redis when their URL is set or any other adapter
        // does (cluster mode), decided below.
        let explicit_pubsub = match get("PUBSUB_ADAPTER_REDIS_URL") {
            None => Some(None),
            Some(_) => adapter_redis(
                "PUBSUB_ADAPTER_REDIS_URL",
                &mut parse_url,
                &mut redis_sources,
            )
            .map(Some),
        };

        let cache_memory_max = match get("CACHE_MEMORY_MAX") {
            None => Some(None),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=100_000_000).contains(&n) => Some(Some(n)),
                _ => {
                    problem(
                        "CACHE_MEMORY_MAX",
                        Some(raw),
                        "a number of entries from 1 to 100000000 (unset: unbounded)",
                    );
                    None
                }
            },
        };
        let app_key = get("APP_KEY").map(AppKey::new);
        let aes_secret_key = get("APP_AES_SECRET_KEY").map(AppKey::new);

        // DB_URL, else the guide's parts (DB_DIALECT, DB_HOST, …): a
        // PostgreSQL one is the node's database; MySQL/MariaDB ones serve the
        // runbook's backups only (the reference node stores in PostgreSQL).
        let (db_url, db_from_parts) = match get("DB_URL") {
            Some(raw) => (
                parse_url("DB_URL", raw, DB_SCHEMES, DB_URL_SHAPE).map(Some),
                None,
            ),
            None => match db_url_from_parts(get) {
                Ok(None) => (Some(None), None),
                Ok(Some(parts)) if parts.dialect == "postgres" => {
                    let url = parse_url("DB_HOST", parts.url.expose(), DB_SCHEMES, DB_URL_SHAPE);
                    (url.map(Some), Some(parts))
                }
                Ok(Some(parts)) => (Some(None), Some(parts)),
                Err(wrong) => {
                    for p in wrong {
                        problem(p.variable, p.given.as_deref(), &p.accepted);
                    }
                    (None, None)
                }
            },
        };
        let (rabbitmq, rabbit_problems) = rabbitmq::parse(get);
        url_problems.extend(rabbit_problems);

        // A relative STORAGE_PATH is resolved against the working directory
        // (and shown resolved by `config`); `check` compares the folders the
        // nodes actually see (`shared-storage`).
        let storage_path = match get("STORAGE_PATH").map(std::path::PathBuf::from) {
            Some(path) if !path.is_absolute() => match std::env::current_dir() {
                Ok(dir) => Some(dir.join(path)),
                Err(e) => {
                    problem(
                        "STORAGE_PATH",
                        get("STORAGE_PATH"),
                        &format!(
                            "an absolute path (the working directory to resolve it against cannot be read: {e})"
                        ),
                    );
                    None
                }
            },
            other => other,
        };

        problems.extend(url_problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        // Every Option below is Some when no problem was recorded.
        let (
            Some(namespace),
            Some(cache),
            Some(queue),
            Some(lock),
            Some(worker_id_redis),
            Some(explicit_pubsub),
            Some(db_url),
            Some(cache_memory_max),
        ) = (
            namespace,
            cache,
            queue,
            lock,
            worker_id_redis,
            explicit_pubsub,
            db_url,
            cache_memory_max,
        )
        else {
            return Err(ConfigError::Invalid(Vec::new()));
        };
        let clustered = !matches!(cache, CacheStore::Memory)
            || !matches!(queue, QueueAdapter::Memory)
            || !matches!(lock, LockAdapter::Local);
        let pubsub = match explicit_pubsub {
            Some(url) => PubsubAdapter::Redis(url),
            None if clustered => {
                let (source, url) = match &worker_id_redis {
                    Some(url) => (RedisSource::RedisUrl, Some(url.clone())),
                    None => (RedisSource::Default, default_redis_url()),
                };
                redis_sources.insert("PUBSUB_ADAPTER_REDIS_URL", source);
                url.map_or(PubsubAdapter::Memory, PubsubAdapter::Redis)
            }
            None => PubsubAdapter::Memory,
        };
        Ok(Self {
            namespace,
            cache,
            cache_memory_max,
            pubsub,
            queue,
            rabbitmq,
            lock,
            worker_id_redis,
            app_key,
            aes_secret_key,
            db_url,
            db_from_parts,
            storage_path,
            redis_sources,
        })
    }
}

#[cfg(test)]
mod tests;
