//! `clusterops config`: print the configuration a node would run with,
//! secrets masked, and its fingerprint; exit 2 on a wrong value.

use super::EnvArgs;
use clusterops::config::{CacheStore, LockAdapter, PubsubAdapter, QueueAdapter};
use color_eyre::eyre::Result;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ConfigArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    if args.json {
        let mut value = serde_json::to_value(&config)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("fingerprint".into(), config.fingerprint().into());
            obj.insert(
                "fingerprint_parts".into(),
                serde_json::to_value(config.fingerprint_parts())?,
            );
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("cluster       {}", config.namespace);
    // ` (from REDIS_URL)` or ` (default)` after a URL the adapter's own
    // variable did not give.
    let from = |var: &str| {
        config
            .redis_sources
            .get(var)
            .map_or("", |source| source.note())
    };
    let cache = match &config.cache {
        CacheStore::Memory => "memory (this node only)".to_string(),
        CacheStore::Redis(u) => format!("redis {u}{}", from("CACHE_REDIS_URL")),
    };
    let pubsub = match &config.pubsub {
        PubsubAdapter::Memory => "memory (this node only)".to_string(),
        PubsubAdapter::Redis(u) => format!("redis {u}{}", from("PUBSUB_ADAPTER_REDIS_URL")),
    };
    let queue = match &config.queue {
        QueueAdapter::Memory => "memory (this node only)".to_string(),
        QueueAdapter::Redis(u) => format!("redis {u}{}", from("QUEUE_ADAPTER_REDIS_URL")),
        QueueAdapter::Rabbitmq(u) => format!("rabbitmq {u}"),
    };
    let lock = match &config.lock {
        LockAdapter::Local => "local (this node only)".to_string(),
        LockAdapter::Redis(u) => format!("redis {u}{}", from("LOCK_ADAPTER_REDIS_URL")),
    };
    println!("cache         {cache}");
    println!("sync signals  {pubsub}");
    println!("queue         {queue}");
    println!("lock          {lock}");
    match &config.worker_id_redis {
        Some(u) => println!("worker IDs    redis {u}"),
        None => println!("worker IDs    random (REDIS_URL unset: single node only)"),
    }
    match &config.app_key {
        Some(k) => println!("APP_KEY       {k}"),
        None => println!("APP_KEY       (unset)"),
    }
    if let Some(k) = &config.aes_secret_key {
        println!("AES key       {k} (APP_AES_SECRET_KEY)");
    }
    match (&config.db_url, &config.db_from_parts) {
        (Some(u), None) => println!("database      {u}"),
        (Some(u), Some(_)) => println!("database      {u} (from DB_DIALECT, DB_HOST, …)"),
        (None, Some(p)) => println!(
            "database      {} (DB_DIALECT={}: for the runbook's backups; the reference node \
             stores its records in PostgreSQL only, so in memory here)",
            p.url, p.dialect
        ),
        (None, None) => {
            println!("database      (DB_URL unset: records in memory, single node only)")
        }
    }
    match &config.storage_path {
        Some(p) => println!("storage       {}", p.display()),
        None => println!("storage       (STORAGE_PATH unset)"),
    }
    println!("processes     {}", config.cluster_mode.describe());
    println!("worker mode   {}", config.worker_mode.describe());
    println!("fingerprint   {}", config.fingerprint());
    let local = config.local_adapters();
    if !local.is_empty() && config.is_clustered() {
        println!("warning: still memory/local: {}", local.join(", "));
    }
    Ok(0)
}
