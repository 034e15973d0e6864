//! The deployment guide's rule "start one node of the new version first and
//! let it finish the upgrade", made safe: real v1 and v2 node processes.

use crate::common;

use common::nodes::TestCluster;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_v2_node_migrates_under_the_lock_and_fences_out_restarted_v1_nodes() {
    let c = TestCluster::new("upgrade");
    let mut v1a = c.start("v1-a", "1").await;
    let v1b = c.start("v1-b", "1").await;
    for n in [&v1a, &v1b] {
        n.wait_for_health(200, Duration::from_secs(10)).await;
        assert_eq!(n.status().await.unwrap()["schema_version"], "1");
    }
    assert_eq!(
        c.db.query("SELECT string_agg(id, ',' ORDER BY id) FROM clusterops_migrations"),
        "0001_records"
    );

    let v2a = c.start("v2-a", "2").await;
    v2a.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(v2a.status().await.unwrap()["schema_version"], "2");
    assert_eq!(c.db.query("SELECT version FROM clusterops_schema"), "2");
    assert_eq!(
        c.db.query("SELECT applied_by FROM clusterops_migrations WHERE id = '0002_record_tags'"),
        "v2-a"
    );
    assert!(
        v2a.log_text().contains("schema migrated"),
        "{}",
        v2a.log_text()
    );

    // A v1 node restarted now refuses to serve, with the reason.
    v1a.terminate();
    let v1a = c.start("v1-a", "1").await;
    let body = v1a.wait_for_health(503, Duration::from_secs(10)).await;
    assert!(
        body.starts_with("error: schema version 2 is newer than this binary (1)"),
        "{body}"
    );
    let status = v1a.status().await.unwrap();
    assert_eq!(status["state"], "error");
    assert!(
        status["worker_id"].is_null(),
        "a refusing node holds no worker ID"
    );
    let resp = v1a
        .http
        .post(v1a.url("/api/records"))
        .json(&serde_json::json!({"name": "x", "value": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "app routes refuse too");

    // A second v2 node finds the work done.
    let v2b = c.start("v2-b", "2").await;
    v2b.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(
        c.db.query("SELECT count(*) FROM clusterops_migrations"),
        "2"
    );
    assert!(
        !v2b.log_text().contains("schema migrated"),
        "{}",
        v2b.log_text()
    );
    drop(v1b);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_runs_on_the_defaults_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("empty.env");
    std::fs::write(&env_file, "# nothing: every adapter on memory/local\n").unwrap();
    let port = common::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args([
        "node",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--node-id",
        "solo",
    ])
    .arg("--env-file")
    .arg(&env_file)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    for var in clusterops::config::VARIABLES {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ok = common::nodes::eventually(Duration::from_secs(20), || async {
        http.get(format!("{base}/api/__health_check"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ok, "the solo node serves");
    let status: serde_json::Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warnings = status["warnings"].to_string();
    assert!(warnings.contains("cannot be clustered"), "{warnings}");
    assert!(warnings.contains("DB_URL unset"), "{warnings}");
    assert!(status["worker_id"].is_u64(), "a random worker ID");
    let created: serde_json::Value = http
        .post(format!("{base}/api/records"))
        .json(&serde_json::json!({"name": "n", "value": "v"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let read: serde_json::Value = http
        .get(format!("{base}/api/records/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["value"], "v");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
