//! One Redis reached through several databases is one server: `status`
//! prints one line for it with its uses, and `check`'s server warnings
//! (`redis-persistence`, `eviction-policy`) name it once, not once per
//! database. Against a private Redis that keeps nothing and evicts.

use crate::common;

use common::{PrivateRedis, status_cli};
use std::path::Path;

/// An env file with the leases on db 0, the locks on db 2, the sync
/// signals on db 3, the queue on db 4 and the cache on db 1 of `port`.
fn env(dir: &Path, port: u16) -> std::path::PathBuf {
    let ns = format!("t-inst-{:08x}", rand::random::<u32>());
    let db = |n: u8| format!("redis://127.0.0.1:{port}/{n}");
    let text = format!(
        "CLUSTER_NAME={ns}\nREDIS_URL={}\nCACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL={}\n\
         LOCK_ADAPTER_DEFAULT=redis\nLOCK_ADAPTER_REDIS_URL={}\nPUBSUB_ADAPTER_REDIS_URL={}\n\
         QUEUE_ADAPTER=redis\nQUEUE_ADAPTER_REDIS_URL={}\n",
        db(0),
        db(1),
        db(2),
        db(3),
        db(4)
    );
    let path = dir.join("cluster.env");
    std::fs::write(&path, text).expect("env file");
    path
}

#[test]
fn one_redis_behind_five_databases_is_one_server_in_status_and_check() {
    let redis = PrivateRedis::start_args(&["--maxmemory-policy", "allkeys-lru"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = env(dir.path(), redis.port);
    let (code, out) = status_cli::run(&["status"], &env, &[]);
    assert_eq!(code, 0, "{out}");
    let address = format!("127.0.0.1:{}", redis.port);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("redis ") && l.contains(&address))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the one server:\n{out}");
    assert!(
        lines[0].starts_with(&format!("redis {address} (db 0-4) (")),
        "{}",
        lines[0]
    );
    for var in ["REDIS_URL", "CACHE_REDIS_URL", "QUEUE_ADAPTER_REDIS_URL"] {
        assert!(lines[0].contains(var), "{var}: {}", lines[0]);
    }

    let (_, out) = status_cli::run(&["check", "--json"], &env, &[]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("check JSON");
    let reason = |id: &str| -> String {
        v["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_else(|| panic!("no {id}: {out}"))
            .to_string()
    };
    let persistence = reason("redis-persistence");
    assert_eq!(
        persistence.matches("keeps nothing").count(),
        1,
        "named once: {persistence}"
    );
    assert!(
        persistence.starts_with(&format!(
            "{address} (db 0, 2) (REDIS_URL, LOCK_ADAPTER_REDIS_URL)"
        )),
        "{persistence}"
    );
    let eviction = reason("eviction-policy");
    assert_eq!(
        eviction.matches("has maxmemory-policy").count(),
        1,
        "named once: {eviction}"
    );
}
