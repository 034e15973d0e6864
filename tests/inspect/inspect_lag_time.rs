//! Stream lag and queue backlog as time in `status --json`: a reader that
//! stopped while 5 signals followed is behind by the age of the first one
//! it has not handled; a queue's oldest waiting message has its age; a
//! caught-up reader and an empty queue have none.

use crate::common;

use clusterops::adapters::pubsub::{self, Payload, SubscribeOptions, SyncSignals};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions};
use clusterops::config::SecretUrl;
use common::{TestNs, status_cli};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_reader_and_a_waiting_queue_show_their_age() {
    let ns = TestNs::new("lagtime");
    let url = SecretUrl::parse(&ns.url, &["redis"]).unwrap();
    let lagger = pubsub::RedisSignals::connect(&url, ns.namespace(), "lagger")
        .await
        .unwrap();
    drop(
        lagger
            .subscribe("reports", SubscribeOptions::default())
            .await
            .unwrap(),
    );
    lagger.shutdown().await;
    let sender = pubsub::RedisSignals::connect(&url, ns.namespace(), "sender")
        .await
        .unwrap();
    for i in 0..5 {
        sender
            .publish("reports", Payload::Json(serde_json::json!({ "i": i })))
            .await
            .unwrap();
    }
    let q = queue::RedisQueue::connect(&url, ns.namespace(), "n1", QueueOptions::default())
        .await
        .unwrap();
    q.publish("backlog", b"old").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    q.publish("backlog", b"new").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let env = status_cli::env_file(dir.path(), "cluster.env", &ns.name, &ns.url);
    let (code, out) = status_cli::run(&["status", "--json"], &env, &[]);
    assert_eq!(code, 0, "{out}");
    let snap: Value = serde_json::from_str(&out).unwrap();
    let reports = snap["streams"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["channel"] == "reports")
        .unwrap()
        .clone();
    let reader = |id: &str| {
        reports["readers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no reader {id}: {reports}"))
    };
    let lagger = reader("lagger");
    assert_eq!(lagger["lag"], 5, "{lagger}");
    let behind = lagger["oldest_unhandled_age_ms"].as_u64().expect("an age");
    assert!((1_400..60_000).contains(&behind), "{lagger}");
    let backlog = snap["queues"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "backlog")
        .unwrap()
        .clone();
    assert_eq!(backlog["waiting"], 2, "{backlog}");
    let age = backlog["oldest_age_ms"].as_u64().expect("an age");
    assert!(
        (1_400..60_000).contains(&age),
        "the older message's age: {backlog}"
    );
    assert!(backlog.get("paused").is_none(), "{backlog}");
}
