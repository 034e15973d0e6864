//! Helpers for the janitor and stream-trimming tests: a connection, a
//! registry record written as a node's heartbeat would, the consumers of a
//! queue's group, and a node that consumes and then crashes.

use clusterops::adapters::queue::{MessageQueue, QueueOptions, REDIS_GROUP, RedisQueue, handler};
use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::config::{Namespace, parse_redis_url};
use clusterops::node::janitor::JanitorOptions;
use clusterops::node::registry::{NodeRecord, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub async fn connect(url: &str) -> SharedConn {
    redis_conn::connect(&parse_redis_url(url).expect("a valid URL"))
        .await
        .expect("Redis reachable")
}

pub use clusterops::clock::now_ms;

/// Write a live registry record for `id` (what a node's heartbeat writes).
pub async fn register(conn: &mut SharedConn, ns: &Namespace, id: &str) {
    let now = now_ms();
    let record = NodeRecord {
        node_id: id.into(),
        host: "h".into(),
        http_addr: "127.0.0.1:1".into(),
        pid: 1,
        app_version: "1".into(),
        schema_version: None,
        worker_id: None,
        state: "running".into(),
        state_reason: "ready".into(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        config_fingerprint: "f".into(),
        config_parts: Default::default(),
        storage_shared: None,
        storage_reason: None,
        clock_offset: None,
        worker_mode: Default::default(),
        process: None,
    };
    Registry::new(ns.clone(), Duration::from_secs(60))
        .heartbeat(conn, &record)
        .await
        .expect("heartbeat");
}

pub fn queue_options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        shutdown_timeout: Duration::from_secs(2),
        ..QueueOptions::default()
    }
}

pub fn idle(ms: u64) -> JanitorOptions {
    JanitorOptions {
        every: Duration::from_secs(2),
        consumer_idle: Duration::from_millis(ms),
        cursor_idle: Duration::from_millis(ms),
    }
}

pub async fn consumers(conn: &mut SharedConn, key: &str) -> Vec<(String, u64)> {
    let rows: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(key)
        .arg(REDIS_GROUP)
        .query_async(conn)
        .await
        .expect("XINFO CONSUMERS");
    rows.iter()
        .map(|row| {
            let map: std::collections::HashMap<String, redis::Value> =
                redis::from_redis_value_ref(row).expect("a consumer map");
            let name: String = redis::from_redis_value_ref(&map["name"]).expect("name");
            let pending: u64 = redis::from_redis_value_ref(&map["pending"]).expect("pending");
            (name, pending)
        })
        .collect()
}

pub async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node consumes `queue` until `handled` messages went through, then
/// crashes (abort: no clean leave, its consumer stays in the group).
pub async fn consume_then_crash(url: &str, ns: &Namespace, node: &str, queue: &str, handled: u64) {
    let q = RedisQueue::connect(
        &parse_redis_url(url).expect("url"),
        ns.clone(),
        node,
        queue_options(),
    )
    .await
    .expect("queue");
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let sub = q
        .subscribe(
            queue,
            1,
            handler(move |_| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .expect("subscribe");
    for _ in 0..handled {
        q.publish(queue, b"x").await.expect("publish");
    }
    wait_for(
        "the messages handled",
        Duration::from_secs(10),
        async || count.load(Ordering::SeqCst) >= handled,
    )
    .await;
    // Let the acknowledgements land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sub.abort();
}
