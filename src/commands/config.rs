//! `clusterops config`: print the configuration a node would run with,
//! secrets masked, and its fingerprint; exit 2 on a wrong value.

use super::EnvArgs;
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
    println!("cache         {:?}", config.cache);
    println!("sync signals  {:?}", config.pubsub);
    println!("queue         {:?}", config.queue);
    println!("lock          {:?}", config.lock);
    match &config.worker_id_redis {
        Some(u) => println!("worker IDs    redis {u}"),
        None => println!("worker IDs    random (REDIS_URL unset: single node only)"),
    }
    match &config.app_key {
        Some(k) => println!("APP_KEY       {k}"),
        None => println!("APP_KEY       (unset)"),
    }
    println!("fingerprint   {}", config.fingerprint());
    let local = config.local_adapters();
    if !local.is_empty() && config.is_clustered() {
        println!("warning: still memory/local: {}", local.join(", "));
    }
    Ok(0)
}
