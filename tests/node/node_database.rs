//! A real node whose PostgreSQL connection is cut (its backend terminated
//! with `pg_terminate_backend`, on the test's own database only) opens it
//! again on the next request instead of failing until it is restarted.

use crate::common;

use common::nodes::{TestCluster, eventually};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_database_connection_is_cut_serves_again_without_a_restart() {
    let c = TestCluster::new("pgcut");
    let n = c.start("pg-1", "2").await;
    n.wait_for_health(200, Duration::from_secs(10)).await;
    let post = |name: &'static str| {
        let http = n.http.clone();
        let url = n.url("/api/records");
        async move {
            http.post(url)
                .json(&json!({"name": name, "value": "v"}))
                .send()
                .await
                .ok()
        }
    };
    let first = post("before").await.expect("the node answers");
    assert!(first.status().is_success(), "{}", first.status());

    let cut = c.db.query(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        c.db.name
    ));
    assert!(cut.trim().parse::<u32>().unwrap() >= 1, "{cut}");

    // The request that meets the closed connection opens a new one; a
    // statement in flight when it was cut is not re-sent, so allow one
    // failure, then every write must succeed.
    let reconnected = eventually(Duration::from_secs(10), || async {
        post("after").await.is_some_and(|r| r.status().is_success())
    })
    .await;
    assert!(reconnected, "{}", n.log_text());
    let again = post("after-again").await.expect("the node answers");
    assert!(again.status().is_success(), "{}", again.status());
    let names =
        c.db.query("SELECT string_agg(DISTINCT name, ',' ORDER BY name) FROM records");
    assert_eq!(names.trim(), "after,after-again,before");

    let log = n.log_text();
    assert!(log.contains("database connection lost"), "{log}");
    assert!(log.contains("database connection opened again"), "{log}");
    // The masked URL only: no password appears (the test URL has none,
    // but the line must name the database it reconnected to).
    assert!(log.contains(&c.db.name), "{log}");
    let status: Value = n.status().await.expect("status");
    assert_eq!(status["state"], "running");
}
