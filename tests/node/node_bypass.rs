//! The runbook bypass: while the maintenance flag is set, a request carrying
//! `X-Clusterops-Runbook: <token derived from APP_KEY>` reaches the app on a
//! node in state maintenance, and only there (never on a node in error, never
//! on the health check).

use crate::common;

use clusterops::config::Config;
use clusterops::node::http::runbook_bypass_token;
use clusterops::node::maintenance::{self, MaintenanceFlag};
use common::nodes::{HEARTBEAT_MS, NodeProc, TestCluster};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

const HEADER: &str = "X-Clusterops-Runbook";

async fn get(n: &NodeProc, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = n.http.get(n.url(path));
    if let Some(t) = token {
        req = req.header(HEADER, t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn in_maintenance_only_the_runbook_token_reaches_the_app_and_never_on_a_node_in_error() {
    let c = TestCluster::new("bypass");
    // The token is the documented formula over the cluster's APP_KEY.
    let config = Config::load(Some(&c.env_file)).unwrap();
    let token = runbook_bypass_token(&config).expect("APP_KEY is set");
    let expected = hex::encode(Sha256::digest(b"clusterops-runbook:test-app-key"));
    assert_eq!(token, expected[..32]);

    // v2 migrates the schema; a v1 node then refuses to serve (error).
    let v2 = c.start("bp-v2", "2").await;
    v2.wait_for_health(200, Duration::from_secs(10)).await;
    let v1 = c.start("bp-v1", "1").await;
    v1.wait_for_health(503, Duration::from_secs(10)).await;
    assert_eq!(v1.status().await.unwrap()["state"], "error");

    let created: Value = v2
        .http
        .post(v2.url("/api/records"))
        .json(&json!({"name": "probe", "value": "before"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/api/records/{}", created["id"].as_i64().unwrap());

    let mut conn = redis::Client::open(c.ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let flag = MaintenanceFlag {
        by: "runbook".into(),
        reason: "upgrading".into(),
        since_ms: 1,
    };
    maintenance::set(&mut conn, &c.ns.namespace(), &flag)
        .await
        .unwrap();
    v2.wait_for_health(503, Duration::from_millis(HEARTBEAT_MS * 4))
        .await;
    assert_eq!(v2.status().await.unwrap()["state"], "maintenance");

    // Maintenance: the right token passes, reads and writes.
    let (code, body) = get(&v2, &path, Some(&token)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"before\""), "{body}");
    let resp = v2
        .http
        .put(v2.url(&path))
        .header(HEADER, &token)
        .json(&json!({"value": "during"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Without it, or with a wrong one: the maintenance page.
    for wrong in [
        None,
        Some(""),
        Some("not-the-token"),
        Some(&expected[..]),
        Some(&expected[..31]),
    ] {
        let (code, body) = get(&v2, &path, wrong).await;
        assert_eq!(code, 503, "token {wrong:?}: {body}");
        assert!(body.contains("Down for maintenance"), "{body}");
    }
    // The health check stays 503 for the load balancer, token or not.
    let (code, body) = get(&v2, "/api/__health_check", Some(&token)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("maintenance"), "{body}");
    let metrics = get(&v2, "/metrics", None).await.1;
    assert!(
        metrics.contains("clusterops_http_runbook_bypass_total{node=\"bp-v2\"} 2"),
        "{metrics}"
    );

    // A node in error: the header does nothing.
    assert_eq!(v1.status().await.unwrap()["state"], "error");
    let (code, body) = get(&v1, &path, Some(&token)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("error: schema version 2"), "{body}");

    // Maintenance cleared: served without a token again.
    maintenance::clear(&mut conn, &c.ns.namespace())
        .await
        .unwrap();
    v2.wait_for_health(200, Duration::from_millis(HEARTBEAT_MS * 4))
        .await;
    let (code, body) = get(&v2, &path, None).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"during\""), "{body}");
}
