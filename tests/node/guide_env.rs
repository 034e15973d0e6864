//! The deployment guide's `.env` template as it is: every adapter's Redis
//! variable present but empty, only `REDIS_URL` filled, and the database in
//! parts (`DB_DIALECT`, `DB_HOST`, …) instead of `DB_URL`. The adapters fall
//! back to `REDIS_URL` (docs/configuration.md), `config` says so, and a real
//! node runs on it: it serves, and a record goes through the queue into
//! PostgreSQL.

use crate::common;

use common::nodes::TestCluster;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn the_guide_template_with_only_redis_url_runs_a_node() {
    let cluster = TestCluster::new("guide-env");
    let env = cluster.env_variant(
        "guide.env",
        &[
            ("CACHE_REDIS_URL", ""),
            ("PUBSUB_ADAPTER_REDIS_URL", ""),
            ("QUEUE_ADAPTER_REDIS_URL", ""),
            ("LOCK_ADAPTER_REDIS_URL", ""),
            ("DB_URL", ""),
            ("DB_DIALECT", "postgres"),
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "5432"),
            ("DB_DATABASE", &cluster.db.name),
            ("DB_USER", "postgres"),
            ("DB_PASSWORD", "unused-with-trust"),
        ],
    );

    let out = Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["config", "--env-file"])
        .arg(&env)
        .output()
        .expect("the clusterops binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in ["cache ", "sync signals ", "queue ", "lock "] {
        let shown = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no {line:?} line in {stdout}"));
        assert!(shown.ends_with("(from REDIS_URL)"), "{shown}");
    }
    let database = stdout
        .lines()
        .find(|l| l.starts_with("database "))
        .unwrap_or("");
    assert!(
        database.ends_with("(from DB_DIALECT, DB_HOST, …)"),
        "{database}"
    );
    assert!(
        database.contains(&cluster.db.name) && !stdout.contains("unused-with-trust"),
        "{stdout}"
    );

    let node = cluster.spawn_with_env("g1", "1.0.0", &env);
    node.wait_for_status(Duration::from_secs(30)).await;
    node.wait_for_health(200, Duration::from_secs(20)).await;
    let mut created = false;
    for _ in 0..50 {
        let resp = node
            .http
            .post(node.url("/api/records"))
            .json(&json!({"name": "guide", "value": "v"}))
            .send()
            .await
            .expect("POST /api/records");
        if resp.status() == 201 {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(created, "a record is created on the guide's configuration");
    let handled = common::nodes::eventually(Duration::from_secs(15), || async {
        cluster.db.query("SELECT count(*) FROM record_events") == "1"
    })
    .await;
    assert!(
        handled,
        "its event went through the Redis queue on REDIS_URL"
    );
}
