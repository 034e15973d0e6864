//! Reading the configuration: the process environment over the `.env`
//! file ([`Config::load`]), each variable checked and turned into
//! [`Config`]'s types ([`Config::from_vars`]), every wrong one reported on
//! its own line.

use super::redis_source::default_redis_url;
use super::redis_url::REDIS_SCHEMES;
use super::*;
use std::collections::BTreeMap;
use std::path::Path;

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
        // does (cluster mode), with the same fallback as the others.
        let clustered = matches!(cache, Some(CacheStore::Redis(_)))
            || matches!(
                queue,
                Some(QueueAdapter::Redis(_) | QueueAdapter::Rabbitmq(_))
            )
            || matches!(lock, Some(LockAdapter::Redis(_)));
        let pubsub = if get("PUBSUB_ADAPTER_REDIS_URL").is_some() || clustered {
            adapter_redis(
                "PUBSUB_ADAPTER_REDIS_URL",
                &mut parse_url,
                &mut redis_sources,
            )
            .map(PubsubAdapter::Redis)
        } else {
            Some(PubsubAdapter::Memory)
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

        let worker_mode = match get("WORKER_MODE") {
            None => Some(WorkerMode::All),
            Some(raw) => {
                let mode = WorkerMode::parse(raw);
                if mode.is_none() {
                    problem("WORKER_MODE", Some(raw), WorkerMode::ACCEPTED);
                }
                mode
            }
        };

        // (After the last use of `problem`: this one has its own reason.)
        let cluster_mode = match get("CLUSTER_MODE") {
            None => Some(ClusterMode::Single),
            Some(raw) => match ClusterMode::parse(raw) {
                Ok(mode) => Some(mode),
                Err(reason) => {
                    problems.push(ConfigProblem {
                        variable: "CLUSTER_MODE".into(),
                        given: Some(format!("{raw:?}")),
                        reason,
                        accepted: ClusterMode::ACCEPTED.into(),
                    });
                    None
                }
            },
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
            Some(pubsub),
            Some(db_url),
            Some(cache_memory_max),
            Some(cluster_mode),
            Some(worker_mode),
        ) = (
            namespace,
            cache,
            queue,
            lock,
            worker_id_redis,
            pubsub,
            db_url,
            cache_memory_max,
            cluster_mode,
            worker_mode,
        )
        else {
            return Err(ConfigError::Invalid(Vec::new()));
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
            cluster_mode,
            worker_mode,
        })
    }
}
