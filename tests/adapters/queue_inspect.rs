//! The inspector's read of the queues from Redis alone: every queue with
//! waiting, in-flight, oldest pending age, dead letters and consumers; keys
//! that are not what the queue writes listed as unreadable; nothing written.

use crate::common;

use clusterops::adapters::queue::{self, QueueOptions, RetryPolicy, handler, read_queue_stats};
use clusterops::config::Config;
use common::TestNs;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_queue_stats_reports_every_queue_and_names_keys_it_cannot_read() {
    let ns = TestNs::new("qinspect");
    let mut vars = BTreeMap::new();
    vars.insert("CLUSTER_NAME".to_string(), ns.name.clone());
    vars.insert("QUEUE_ADAPTER".to_string(), "redis".to_string());
    vars.insert("QUEUE_ADAPTER_REDIS_URL".to_string(), ns.url.clone());
    let cfg = Config::from_vars(&vars).unwrap();
    let opts = QueueOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..QueueOptions::default()
    };
    let q = queue::from_config_with(&cfg, "n1", opts).await.unwrap();

    // "orders": 3 published, 2 held by a consumer that never finishes.
    for i in 0..3 {
        q.publish_json("orders", &i).await.unwrap();
    }
    let held = q
        .subscribe(
            "orders",
            2,
            handler(|_m| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }),
        )
        .await
        .unwrap();
    // "mail": one dead letter, nothing else.
    let failing = q
        .subscribe("mail", 1, handler(|_m| async { Err::<(), _>("smtp down") }))
        .await
        .unwrap();
    q.publish("mail", b"hello").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = q.stats("orders").await.unwrap();
        if o.in_flight == Some(2) && q.dead_letter_count("mail").await.unwrap() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "setup did not settle: {o:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    failing.shutdown().await.unwrap();

    // Garbage under the queue prefix.
    let client = redis::Client::open(ns.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let broken = queue::stream_key(&ns.namespace(), "broken");
    let stray = format!("{}:extra", queue::stream_key(&ns.namespace(), "mail"));
    let bad_dead = queue::dead_key(&ns.namespace(), "other");
    let _: () = redis::pipe()
        .set(&broken, "not a stream")
        .set(&stray, "x")
        .rpush(&bad_dead, "y")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut keys_before = ns.keys();
    keys_before.sort();
    let stats = read_queue_stats(&mut conn, &ns.namespace()).await.unwrap();
    let mut keys_after = ns.keys();
    keys_after.sort();
    assert_eq!(keys_before, keys_after, "reading writes nothing");

    let by_name: BTreeMap<&str, _> = stats.iter().map(|s| (s.queue.as_str(), s)).collect();
    let orders = by_name["orders"];
    assert_eq!(orders.key, queue::stream_key(&ns.namespace(), "orders"));
    assert_eq!(
        (orders.waiting, orders.in_flight, orders.dead),
        (1, Some(2), 0)
    );
    assert!(orders.oldest_pending_age_ms.is_some(), "{orders:?}");
    assert_eq!(orders.consumers, 1);
    assert_eq!(orders.consumer_details[0].name, "n1-0");
    assert_eq!(orders.consumer_details[0].pending, 2);
    assert!(orders.unreadable.is_none());

    let mail = by_name["mail"];
    assert_eq!((mail.waiting, mail.in_flight, mail.dead), (0, Some(0), 1));
    assert_eq!(
        mail.consumers, 0,
        "a cleanly stopped consumer leaves the group"
    );

    let broken_entry = by_name["broken"];
    assert_eq!(broken_entry.key, broken);
    assert!(
        broken_entry
            .unreadable
            .as_deref()
            .unwrap()
            .contains("string"),
        "{broken_entry:?}"
    );
    let other = by_name["other"];
    assert_eq!(other.key, bad_dead);
    assert!(
        other.unreadable.as_deref().unwrap().contains("list"),
        "{other:?}"
    );
    let stray_entry = stats.iter().find(|s| s.key == stray).unwrap();
    assert!(stray_entry.unreadable.is_some());
    assert_eq!(stats.len(), 5, "{stats:#?}");

    // The adapter's own stats call names the key instead of guessing.
    let err = q.stats("broken").await.unwrap_err();
    assert!(err.to_string().contains(&broken), "{err}");
    held.abort();
}
