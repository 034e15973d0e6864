use super::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn one_problem(pairs: &[(&str, &str)]) -> String {
    let err = Config::from_vars(&vars(pairs)).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    let line = err.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

#[test]
fn empty_environment_is_all_memory_and_local() {
    let c = Config::from_vars(&BTreeMap::new()).unwrap();
    assert_eq!(c, Config::default());
    assert!(!c.is_clustered());
    assert_eq!(c.namespace.name(), "clusterops");
}

#[test]
fn cluster_mode_fills_the_documented_defaults() {
    let c = Config::from_vars(&vars(&[
        ("CACHE_DEFAULT_STORE", "redis"),
        ("CACHE_REDIS_URL", "redis://localhost:6379/1"),
        ("QUEUE_ADAPTER", "redis"),
        ("LOCK_ADAPTER_DEFAULT", "redis"),
    ]))
    .unwrap();
    assert!(c.is_clustered());
    assert_eq!(
        c.queue,
        QueueAdapter::Redis(SecretUrl::parse(DEFAULT_REDIS_URL, &["redis"]).unwrap())
    );
    assert_eq!(
        c.lock,
        LockAdapter::Redis(SecretUrl::parse(DEFAULT_REDIS_URL, &["redis"]).unwrap())
    );
    assert!(matches!(c.pubsub, PubsubAdapter::Redis(_)));
    assert_eq!(c.worker_id_redis, None);
    assert_eq!(c.local_adapters(), vec!["REDIS_URL"]);
}

#[test]
fn unknown_cache_store_names_the_variable_and_the_choices() {
    let line = one_problem(&[("CACHE_DEFAULT_STORE", "memcached")]);
    assert!(line.starts_with("CACHE_DEFAULT_STORE:"), "{line}");
    assert!(
        line.contains("memcached") && line.contains("memory or redis"),
        "{line}"
    );
}

#[test]
fn every_redis_adapter_falls_back_to_redis_url_then_the_default() {
    // The deployment guide's template: every URL empty, REDIS_URL filled.
    let guide = [
        ("CACHE_DEFAULT_STORE", "redis"),
        ("CACHE_REDIS_URL", ""),
        ("PUBSUB_ADAPTER_REDIS_URL", ""),
        ("LOCK_ADAPTER_DEFAULT", "redis"),
        ("LOCK_ADAPTER_REDIS_URL", " "),
        ("QUEUE_ADAPTER", "redis"),
        ("QUEUE_ADAPTER_REDIS_URL", ""),
        ("REDIS_URL", "redis://:pw@10.0.0.5:6379/4"),
    ];
    let c = Config::from_vars(&vars(&guide)).unwrap();
    let shared = SecretUrl::parse("redis://:pw@10.0.0.5:6379/4", &["redis"]).unwrap();
    assert_eq!(c.cache, CacheStore::Redis(shared.clone()));
    assert_eq!(c.pubsub, PubsubAdapter::Redis(shared.clone()));
    assert_eq!(c.queue, QueueAdapter::Redis(shared.clone()));
    assert_eq!(c.lock, LockAdapter::Redis(shared.clone()));
    assert!(
        c.redis_sources
            .values()
            .all(|s| *s == RedisSource::RedisUrl),
        "{:?}",
        c.redis_sources
    );
    assert_eq!(c.redis_sources.len(), 4);

    // An adapter's own variable wins.
    let mut own = guide.to_vec();
    own[1] = ("CACHE_REDIS_URL", "redis://10.0.0.5:6379/1");
    let c = Config::from_vars(&vars(&own)).unwrap();
    assert_eq!(c.redis_sources["CACHE_REDIS_URL"], RedisSource::Own);
    assert_eq!(
        c.redis_sources["LOCK_ADAPTER_REDIS_URL"],
        RedisSource::RedisUrl
    );
    assert_ne!(c.cache, CacheStore::Redis(shared));

    // The template as it is (every URL empty): the documented default.
    let mut empty = guide.to_vec();
    empty[7] = ("REDIS_URL", "");
    let c = Config::from_vars(&vars(&empty)).unwrap();
    let default = SecretUrl::parse(DEFAULT_REDIS_URL, &["redis"]).unwrap();
    assert_eq!(c.cache, CacheStore::Redis(default));
    assert!(c.redis_sources.values().all(|s| *s == RedisSource::Default));
    assert_eq!(c.worker_id_redis, None);
}

#[test]
fn a_wrong_redis_url_is_one_line_even_when_every_adapter_falls_back_to_it() {
    let line = one_problem(&[
        ("CACHE_DEFAULT_STORE", "redis"),
        ("QUEUE_ADAPTER", "redis"),
        ("LOCK_ADAPTER_DEFAULT", "redis"),
        ("REDIS_URL", "http://x"),
    ]);
    assert!(line.starts_with("REDIS_URL:"), "{line}");
}

#[test]
fn unknown_queue_and_lock_adapters_are_named() {
    assert!(one_problem(&[("QUEUE_ADAPTER", "kafka")]).starts_with("QUEUE_ADAPTER:"));
    assert!(
        one_problem(&[("LOCK_ADAPTER_DEFAULT", "zookeeper")]).starts_with("LOCK_ADAPTER_DEFAULT:")
    );
    let line = one_problem(&[("QUEUE_ADAPTER", "rabbitmq")]);
    assert!(
        line.starts_with("QUEUE_ADAPTER_RABBITMQ_URL: missing"),
        "{line}"
    );
}

#[test]
fn each_url_variable_rejects_a_bad_url_by_name_with_the_password_masked() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "CACHE_REDIS_URL",
            &[
                ("CACHE_DEFAULT_STORE", "redis"),
                ("CACHE_REDIS_URL", "http://u:topsecret@h/0"),
            ],
        ),
        (
            "PUBSUB_ADAPTER_REDIS_URL",
            &[("PUBSUB_ADAPTER_REDIS_URL", "redis//:topsecret@h")],
        ),
        (
            "QUEUE_ADAPTER_REDIS_URL",
            &[
                ("QUEUE_ADAPTER", "redis"),
                ("QUEUE_ADAPTER_REDIS_URL", "amqp://u:topsecret@h"),
            ],
        ),
        (
            "QUEUE_ADAPTER_RABBITMQ_URL",
            &[
                ("QUEUE_ADAPTER", "rabbitmq"),
                ("QUEUE_ADAPTER_RABBITMQ_URL", "redis://u:topsecret@h"),
            ],
        ),
        (
            "LOCK_ADAPTER_REDIS_URL",
            &[
                ("LOCK_ADAPTER_DEFAULT", "redis"),
                ("LOCK_ADAPTER_REDIS_URL", "redis://:topsecret@"),
            ],
        ),
        ("REDIS_URL", &[("REDIS_URL", "localhost:6379")]),
    ];
    for (variable, pairs) in cases {
        let line = one_problem(pairs);
        assert!(line.starts_with(&format!("{variable}:")), "{line}");
        assert!(!line.contains("topsecret"), "{line}");
        assert!(line.contains("expected"), "{line}");
    }
}

#[test]
fn bad_cluster_name_is_rejected() {
    for bad in ["a:b", "prod*", "-x", &"x".repeat(65)] {
        assert!(one_problem(&[("CLUSTER_NAME", bad)]).starts_with("CLUSTER_NAME:"));
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Config::from_vars(&vars(&[
        ("CACHE_DEFAULT_STORE", "x"),
        ("QUEUE_ADAPTER", "y"),
        ("REDIS_URL", "z"),
    ]))
    .unwrap_err();
    assert_eq!(err.problems().len(), 3);
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn fingerprint_is_stable_and_names_the_differing_setting() {
    let a = Config::all_redis("redis://:pw@127.0.0.1:6379/0", "prod").unwrap();
    let b = Config::all_redis("redis://:pw@127.0.0.1:6379/0", "prod").unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let mut c = b.clone();
    c.app_key = Some(AppKey::new("other"));
    assert_ne!(a.fingerprint(), c.fingerprint());
    let differing: Vec<_> = a
        .fingerprint_parts()
        .into_iter()
        .filter(|(k, v)| c.fingerprint_parts()[k] != *v)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(differing, vec!["APP_KEY"]);
    assert!(!a.fingerprint().contains("pw"));
}

#[test]
fn serialized_config_has_no_secrets() {
    let mut c = Config::all_redis("redis://:hunter2@127.0.0.1:6379/0", "prod").unwrap();
    c.app_key = Some(AppKey::new("app-key-value"));
    let json = serde_json::to_string(&c).unwrap();
    let debug = format!("{c:?}");
    for shown in [json, debug] {
        assert!(
            !shown.contains("hunter2") && !shown.contains("app-key-value"),
            "{shown}"
        );
    }
}

#[test]
fn process_environment_overrides_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, "CLUSTER_NAME=fromfile\nQUEUE_ADAPTER=memory\n").unwrap();
    let c = Config::load(Some(&path)).unwrap();
    // CLUSTER_NAME is not set in the test process environment.
    assert_eq!(c.namespace.name(), "fromfile");
}

#[test]
fn db_url_and_storage_path_are_validated() {
    let line = one_problem(&[("DB_URL", "mysql://root:secretpw@h/db")]);
    assert!(
        line.starts_with("DB_URL:") && !line.contains("secretpw"),
        "{line}"
    );
    let c = Config::from_vars(&vars(&[
        ("DB_URL", "postgres://postgres@127.0.0.1/app"),
        ("STORAGE_PATH", "/srv/app"),
    ]))
    .unwrap();
    assert!(c.db_url.is_some() && c.storage_path.is_some());
}

#[test]
fn coordination_redis_prefers_redis_url() {
    let c = Config::all_redis("redis://127.0.0.1:6379/4", "x").unwrap();
    assert_eq!(c.coordination_redis().map(|(n, _)| n), Some("REDIS_URL"));
    let c = Config::from_vars(&vars(&[("LOCK_ADAPTER_DEFAULT", "redis")])).unwrap();
    assert_eq!(
        c.coordination_redis().map(|(n, _)| n),
        Some("LOCK_ADAPTER_REDIS_URL")
    );
    assert_eq!(Config::default().coordination_redis(), None);
}

#[test]
fn a_redis_database_that_is_not_a_number_is_refused_before_connecting() {
    let line = one_problem(&[("REDIS_URL", "redis://u:pw@127.0.0.1:6379/abc")]);
    assert!(
        line.starts_with("REDIS_URL:")
            && line.contains("must be a number")
            && !line.contains("pw@"),
        "{line}"
    );
    assert!(Config::from_vars(&vars(&[("REDIS_URL", "redis://127.0.0.1:6379/")])).is_ok());
}

#[test]
fn a_relative_storage_path_is_resolved_against_the_working_directory() {
    let c = Config::from_vars(&vars(&[("STORAGE_PATH", "storage/shared")])).unwrap();
    let path = c.storage_path.expect("set");
    assert!(path.is_absolute(), "{}", path.display());
    assert_eq!(
        path,
        std::env::current_dir().unwrap().join("storage/shared")
    );
}

#[test]
fn the_aes_secret_key_joins_the_fingerprint_and_is_never_shown() {
    let base = [("APP_KEY", "k")];
    let without = Config::from_vars(&vars(&base)).unwrap();
    let with = Config::from_vars(&vars(&[
        ("APP_KEY", "k"),
        ("APP_AES_SECRET_KEY", "aes-Secr3t"),
    ]))
    .unwrap();
    let other = Config::from_vars(&vars(&[
        ("APP_KEY", "k"),
        ("APP_AES_SECRET_KEY", "aes-0ther"),
    ]))
    .unwrap();
    assert_ne!(with.fingerprint(), without.fingerprint());
    assert_ne!(with.fingerprint(), other.fingerprint());
    assert!(with.fingerprint_parts().contains_key("APP_AES_SECRET_KEY"));
    assert!(
        !without
            .fingerprint_parts()
            .contains_key("APP_AES_SECRET_KEY")
    );
    let json = serde_json::to_string(&with).unwrap();
    let debug = format!("{with:?}");
    assert!(
        !json.contains("aes-Secr3t") && !debug.contains("aes-Secr3t"),
        "{json}"
    );
}

#[test]
fn cache_memory_max_bounds_the_memory_cache_and_refuses_nonsense() {
    let c = Config::from_vars(&vars(&[("CACHE_MEMORY_MAX", "2000")])).unwrap();
    assert_eq!(c.cache_memory_max, Some(2000));
    assert_eq!(
        Config::from_vars(&vars(&[("CACHE_MEMORY_MAX", "")]))
            .unwrap()
            .cache_memory_max,
        None
    );
    for bad in ["0", "-1", "lots", "1e9"] {
        let line = one_problem(&[("CACHE_MEMORY_MAX", bad)]);
        assert!(line.starts_with("CACHE_MEMORY_MAX:"), "{line}");
    }
}

#[test]
fn cluster_and_worker_modes_are_read_and_stay_out_of_the_fingerprint() {
    let c = Config::from_vars(&vars(&[("CLUSTER_MODE", "max"), ("WORKER_MODE", "!")])).unwrap();
    assert_eq!(c.cluster_mode, ClusterMode::PerCpu);
    assert_eq!(c.worker_mode, WorkerMode::HttpOnly);
    assert_eq!(c.fingerprint(), Config::default().fingerprint());
    let c = Config::from_vars(&vars(&[("CLUSTER_MODE", " "), ("WORKER_MODE", "")])).unwrap();
    assert_eq!(
        (c.cluster_mode, c.worker_mode),
        (ClusterMode::Single, WorkerMode::All)
    );
}

#[test]
fn a_wrong_cluster_mode_is_one_line_naming_it_with_the_reason() {
    let zero = one_problem(&[("CLUSTER_MODE", "0")]);
    assert!(zero.starts_with("CLUSTER_MODE: \"0\""), "{zero}");
    assert!(zero.contains("would run nothing"), "{zero}");
    let many = one_problem(&[("CLUSTER_MODE", "64")]);
    assert!(many.contains("32 worker IDs"), "{many}");
    let word = one_problem(&[("CLUSTER_MODE", "all")]);
    assert!(
        word.starts_with("CLUSTER_MODE:") && word.contains("max (one process per CPU)"),
        "{word}"
    );
}

#[test]
fn a_wrong_worker_mode_is_one_line_naming_it() {
    let line = one_problem(&[("WORKER_MODE", "jobs only")]);
    assert!(line.starts_with("WORKER_MODE: \"jobs only\""), "{line}");
    assert!(line.contains("comma list of queue topics"), "{line}");
}
