//! Property tests over the parsers of outside data: whatever the input,
//! they return a value or an error, never panic, and never echo a password.
//! (Short by default; raise PROPTEST_CASES for a longer run.)

use clusterops::adapters::snowflake;
use clusterops::adapters::worker_id::HolderInfo;
use clusterops::config::{Config, SecretUrl, parse_env_text};
use clusterops::node::maintenance;
use clusterops::node::registry::parse_entry;
use clusterops::node::version::AppVersion;
use proptest::prelude::*;
use std::collections::BTreeMap;

const VARS: &[&str] = &[
    "CLUSTER_NAME",
    "CACHE_DEFAULT_STORE",
    "CACHE_REDIS_URL",
    "PUBSUB_ADAPTER_REDIS_URL",
    "QUEUE_ADAPTER",
    "QUEUE_ADAPTER_REDIS_URL",
    "QUEUE_ADAPTER_RABBITMQ_URL",
    "LOCK_ADAPTER_DEFAULT",
    "LOCK_ADAPTER_REDIS_URL",
    "REDIS_URL",
    "DB_URL",
    "STORAGE_PATH",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_env_file_reader_never_panics(text in "\\PC{0,200}(\n\\PC{0,80}){0,5}") {
        let _ = parse_env_text(&text);
    }

    #[test]
    fn every_wrong_value_names_its_variable_and_hides_the_password(
        var in prop::sample::select(VARS),
        junk in "[ -~]{0,40}",
    ) {
        let value = format!("redis://user:S3cretPw@{junk}");
        let vars: BTreeMap<String, String> = [
            (var.to_string(), value.clone()),
            ("CACHE_DEFAULT_STORE".to_string(), "redis".to_string()),
            ("CACHE_REDIS_URL".to_string(), if var == "CACHE_REDIS_URL" { value } else { "redis://127.0.0.1/0".into() }),
        ]
        .into_iter()
        .collect();
        if let Err(e) = Config::from_vars(&vars) {
            let text = e.to_string();
            prop_assert!(!text.contains("S3cretPw"), "{}", text);
            for line in text.lines() {
                prop_assert!(VARS.iter().any(|v| line.starts_with(&format!("{v}:"))), "{}", line);
            }
        }
    }

    #[test]
    fn url_parsing_never_panics_or_leaks(s in "\\PC{0,120}") {
        if let Err(e) = SecretUrl::parse(&format!("redis://u:Pw0rd9@{s}"), &["redis"]) {
            prop_assert!(!e.contains("Pw0rd9"));
        }
        let _ = SecretUrl::parse(&s, &["redis", "amqp"]);
    }

    #[test]
    fn registry_and_maintenance_values_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), ttl in any::<i64>()) {
        let v = redis::Value::BulkString(bytes);
        let _ = parse_entry("ns:node:{ns}:x", &v, &redis::Value::Int(ttl));
        let _ = maintenance::parse("ns:maintenance", &v);
    }

    #[test]
    fn lease_values_versions_and_ids_never_panic(s in "\\PC{0,120}") {
        let _ = HolderInfo::parse(&s);
        let _ = AppVersion::parse(&s);
        let _ = snowflake::decode_str(&s);
        let _ = clusterops::runbook::config::RunbookConfig::parse(&s, "prop.toml");
        let _ = clusterops::runbook::journal::parse(std::path::Path::new("prop.jsonl"), &s, true);
        let _ = clusterops::runbook::journal::parse(std::path::Path::new("prop.jsonl"), &s, false);
    }
}
