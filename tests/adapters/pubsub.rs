//! Sync signals against the memory backend and the real Redis: broadcast in
//! publish order, own-message skipping, resuming from the recorded cursor,
//! garbage entries, the inspector's lag, and surviving a Redis restart.

use crate::common;

use clusterops::adapters::pubsub::{
    MemoryHub, MemorySignals, Payload, PubsubError, RedisSignals, RedisSignalsOptions, Signal,
    SubscribeOptions, Subscription, SyncSignals, forget_node, keys, read_streams,
};
use clusterops::config::SecretUrl;
use common::{PrivateRedis, TestNs};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

enum Backend {
    Memory(Arc<MemoryHub>),
    Redis(TestNs),
}

impl Backend {
    fn memory() -> Self {
        Backend::Memory(MemoryHub::new())
    }

    fn redis(label: &str) -> Self {
        Backend::Redis(TestNs::new(label))
    }

    async fn node(&self, id: &str) -> Arc<dyn SyncSignals> {
        match self {
            Backend::Memory(hub) => Arc::new(MemorySignals::with_hub(hub.clone(), id).unwrap()),
            Backend::Redis(ns) => Arc::new(redis_node(ns, id).await),
        }
    }
}

fn url(raw: &str) -> SecretUrl {
    SecretUrl::parse(raw, &["redis"]).unwrap()
}

fn fast() -> RedisSignalsOptions {
    RedisSignalsOptions {
        cursor_flush_interval: Duration::from_millis(50),
        ..RedisSignalsOptions::default()
    }
}

async fn redis_node(ns: &TestNs, id: &str) -> RedisSignals {
    RedisSignals::connect_with(&url(&ns.url), ns.namespace(), id, fast())
        .await
        .unwrap()
}

async fn recv(sub: &mut Subscription) -> Signal {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("a message within 5 s")
        .expect("the subscription is open")
}

async fn recv_n(sub: &mut Subscription, n: usize) -> Vec<Signal> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(recv(sub).await);
    }
    out
}

fn index(s: &Signal) -> i64 {
    match &s.payload {
        Payload::Json(v) => v["i"].as_i64().expect("payload has i"),
        Payload::Bytes(_) => panic!("expected JSON"),
    }
}

async fn publish_range(node: &Arc<dyn SyncSignals>, channel: &str, range: std::ops::Range<i64>) {
    for i in range {
        node.publish(channel, json!({ "i": i }).into())
            .await
            .unwrap();
    }
}

async fn every_subscriber_receives_every_message_in_order(backend: Backend) {
    let publisher = backend.node("a").await;
    let mut nodes = Vec::new();
    let mut subs = Vec::new();
    for id in ["b", "c", "d"] {
        let node = backend.node(id).await;
        subs.push(
            node.subscribe("orders", SubscribeOptions::default())
                .await
                .unwrap(),
        );
        nodes.push(node);
    }
    publish_range(&publisher, "orders", 0..1000).await;
    for sub in &mut subs {
        let got = recv_n(sub, 1000).await;
        let order: Vec<i64> = got.iter().map(index).collect();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
        assert!(got.iter().all(|s| s.sender == "a" && s.channel == "orders"));
        assert!(sub.try_recv().is_none());
    }
}

#[tokio::test]
async fn every_memory_subscriber_receives_every_message_in_publish_order() {
    every_subscriber_receives_every_message_in_order(Backend::memory()).await;
}

#[tokio::test]
async fn every_redis_subscriber_receives_every_message_in_publish_order() {
    every_subscriber_receives_every_message_in_order(Backend::redis("ps-order")).await;
}

async fn own_messages_are_skipped_unless_asked_for(backend: Backend) {
    let a = backend.node("a").await;
    let b = backend.node("b").await;
    let mut a_default = a
        .subscribe("cfg", SubscribeOptions::default())
        .await
        .unwrap();
    let mut a_all = a
        .subscribe("cfg", SubscribeOptions::including_own())
        .await
        .unwrap();
    let mut b_default = b
        .subscribe("cfg", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "cfg", 0..3).await;
    b.publish("cfg", Payload::Bytes(vec![0, 159, 255]))
        .await
        .unwrap();

    let from_b = recv(&mut a_default).await;
    assert_eq!(
        (from_b.sender.as_str(), from_b.payload),
        ("b", Payload::Bytes(vec![0, 159, 255]))
    );
    let all = recv_n(&mut a_all, 4).await;
    let senders: Vec<&str> = all.iter().map(|s| s.sender.as_str()).collect();
    assert_eq!(senders, ["a", "a", "a", "b"]);
    assert_eq!(all[..3].iter().map(index).collect::<Vec<_>>(), [0, 1, 2]);
    let at_b: Vec<i64> = recv_n(&mut b_default, 3).await.iter().map(index).collect();
    assert_eq!(at_b, [0, 1, 2]);
    // Nothing else arrives: b's subscription did not get b's own message.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a_default.try_recv().is_none());
    assert!(b_default.try_recv().is_none());
}

#[tokio::test]
async fn a_memory_node_skips_its_own_messages_unless_it_asks_for_them() {
    own_messages_are_skipped_unless_asked_for(Backend::memory()).await;
}

#[tokio::test]
async fn a_redis_node_skips_its_own_messages_unless_it_asks_for_them() {
    own_messages_are_skipped_unless_asked_for(Backend::redis("ps-own")).await;
}

async fn shutdown_ends_subscriptions_and_refuses_new_work(backend: Backend) {
    let a = backend.node("a").await;
    assert!(matches!(
        a.subscribe("bad:name", SubscribeOptions::default()).await,
        Err(PubsubError::InvalidChannel(_))
    ));
    let mut sub = a.subscribe("x", SubscribeOptions::default()).await.unwrap();
    a.shutdown().await;
    assert!(
        tokio::time::timeout(WAIT, sub.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        a.publish("x", json!(1).into()).await,
        Err(PubsubError::ShutDown)
    ));
}

#[tokio::test]
async fn a_memory_shutdown_ends_subscriptions() {
    shutdown_ends_subscriptions_and_refuses_new_work(Backend::memory()).await;
}

#[tokio::test]
async fn a_redis_shutdown_ends_subscriptions() {
    shutdown_ends_subscriptions_and_refuses_new_work(Backend::redis("ps-shut")).await;
}

#[tokio::test]
async fn a_slow_memory_subscriber_loses_nothing() {
    let hub = MemoryHub::new();
    let a: Arc<dyn SyncSignals> = Arc::new(MemorySignals::with_hub(hub.clone(), "a").unwrap());
    let b = MemorySignals::with_hub(hub, "b").unwrap();
    let mut sub = b
        .subscribe("bulk", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "bulk", 0..25_000).await;
    assert_eq!(sub.backlog(), 25_000);
    let order: Vec<i64> = recv_n(&mut sub, 25_000).await.iter().map(index).collect();
    assert_eq!(order, (0..25_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_restarted_subscriber_resumes_from_its_cursor_without_missing_messages() {
    let ns = TestNs::new("ps-resume");
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    let b = redis_node(&ns, "b").await;
    let mut sub = b
        .subscribe("jobs", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "jobs", 0..15).await;
    // b handles 0..=11; 12..=14 are queued on b but never returned.
    let got: Vec<i64> = recv_n(&mut sub, 12).await.iter().map(index).collect();
    assert_eq!(got, (0..12).collect::<Vec<_>>());
    drop(sub);
    b.shutdown().await;
    drop(b);
    publish_range(&a, "jobs", 15..20).await;

    let b = redis_node(&ns, "b").await;
    let mut sub = b
        .subscribe("jobs", SubscribeOptions::default())
        .await
        .unwrap();
    let got: Vec<i64> = recv_n(&mut sub, 8).await.iter().map(index).collect();
    assert_eq!(got, (12..20).collect::<Vec<_>>());

    // A node without a cursor starts with new messages only.
    let c = redis_node(&ns, "c").await;
    let mut sub_c = c
        .subscribe("jobs", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "jobs", 20..21).await;
    assert_eq!(index(&recv(&mut sub_c).await), 20);
    assert_eq!(index(&recv(&mut sub).await), 20);
}

/// Collects everything `tracing` writes in this thread.
#[derive(Clone, Default)]
struct LogBuf(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn garbage_entries_are_logged_and_skipped_and_the_cursor_moves_past_them() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ns = TestNs::new("ps-garbage");
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    let b = redis_node(&ns, "b").await;
    let mut sub = b
        .subscribe("events", SubscribeOptions::default())
        .await
        .unwrap();
    let key = keys::stream_key(&ns.namespace(), "events");
    let mut raw = redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let junk_id: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("foo")
        .arg("bar")
        .query_async(&mut raw)
        .await
        .unwrap();
    let v2 = r#"{"v":2,"sender":"x","ts_ms":1,"kind":"json","payload":1}"#;
    let v2_id: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("seq")
        .arg(99)
        .arg("envelope")
        .arg(v2)
        .query_async(&mut raw)
        .await
        .unwrap();
    let not_json_id: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("seq")
        .arg(1)
        .arg("envelope")
        .arg("{nope")
        .query_async(&mut raw)
        .await
        .unwrap();
    let good_id = a.publish("events", json!({"i": 7}).into()).await.unwrap();

    let got = recv(&mut sub).await;
    assert_eq!((index(&got), got.id.as_str()), (7, good_id.as_str()));
    drop(sub);
    b.shutdown().await;

    let text = String::from_utf8_lossy(&logs.0.lock()).into_owned();
    for id in [&junk_id, &v2_id, &not_json_id] {
        assert!(
            text.lines()
                .any(|l| l.contains(&key) && l.contains(id.as_str())),
            "no warning naming {key} and entry {id} in:\n{text}"
        );
    }
    let cursor: String = redis::cmd("HGET")
        .arg(format!("{key}:cursors"))
        .arg("b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        cursor.contains(&format!("\"id\":\"{good_id}\"")),
        "{cursor}"
    );
    let info = read_streams(&mut raw, &ns.namespace()).await.unwrap();
    assert_eq!(info[0].per_node[0].lag, 0);
    assert_eq!(info[0].length, 4);
}

#[tokio::test]
async fn the_inspector_reports_each_nodes_lag_and_unreadable_keys() {
    let ns = TestNs::new("ps-inspect");
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    let b = redis_node(&ns, "b").await;
    let mut sub = b
        .subscribe("audit", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "audit", 0..5).await;
    let handled = recv_n(&mut sub, 5).await;
    drop(sub);
    b.shutdown().await;
    publish_range(&a, "audit", 5..15).await;

    let mut raw = redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let bad_key = format!("{}:extra", keys::stream_key(&ns.namespace(), "audit"));
    let _: () = redis::cmd("SET")
        .arg(&bad_key)
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    let cursors = keys::cursors_key(&ns.namespace(), "audit");
    let _: () = redis::cmd("HSET")
        .arg(&cursors)
        .arg("zombie")
        .arg("1-1|5")
        .query_async(&mut raw)
        .await
        .unwrap();
    // The cursors of the layout before hash tags: not this channel's.
    let old_cursors = format!("{}:signal:audit:cursors", ns.name);
    let _: () = redis::cmd("HSET")
        .arg(&old_cursors)
        .arg("c")
        .arg(r#"{"id":"1-0","seq":1,"at_ms":1}"#)
        .query_async(&mut raw)
        .await
        .unwrap();

    let info = read_streams(&mut raw, &ns.namespace()).await.unwrap();
    let audit = info
        .iter()
        .find(|s| s.channel == "audit")
        .expect("the audit channel");
    assert_eq!((audit.length, audit.published), (15, 15));
    assert_eq!(audit.key, keys::stream_key(&ns.namespace(), "audit"));
    assert_eq!(audit.per_node.len(), 1, "{audit:?}");
    let node = &audit.per_node[0];
    assert_eq!((node.node.as_str(), node.lag), ("b", 10));
    assert_eq!(node.last_id, handled[4].id);
    assert!(node.last_handled_age_ms < 60_000);
    assert!(
        audit
            .unreadable
            .iter()
            .any(|u| u.key == cursors && u.field.as_deref() == Some("zombie"))
    );
    assert!(
        info.iter()
            .flat_map(|s| &s.unreadable)
            .any(|u| u.key == bad_key)
    );
    assert!(
        info.iter()
            .flat_map(|s| &s.unreadable)
            .any(|u| u.key == old_cursors && u.reason.contains("not in the hash-tagged layout"))
    );

    assert_eq!(
        forget_node(&mut raw, &ns.namespace(), "b").await.unwrap(),
        1
    );
    let info = read_streams(&mut raw, &ns.namespace()).await.unwrap();
    assert!(info.iter().all(|s| s.per_node.is_empty()));
}

#[tokio::test]
async fn the_reader_survives_a_redis_restart() {
    let mut server = PrivateRedis::start();
    let ns = TestNs::on("ps-restart", &server.url());
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    let b = redis_node(&ns, "b").await;
    let mut sub = b
        .subscribe("live", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "live", 0..1).await;
    assert_eq!(index(&recv(&mut sub).await), 0);

    server.restart();
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.publish("live", json!({"i": 1}).into()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing works again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_range(&a, "live", 2..4).await;
    let got: Vec<i64> = recv_n(&mut sub, 3).await.iter().map(index).collect();
    assert_eq!(got, [1, 2, 3]);
}

#[tokio::test]
async fn a_new_channel_is_read_at_once_even_while_the_reader_is_blocked() {
    let ns = TestNs::new("ps-wake");
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    // A block time far above the wait below: only CLIENT UNBLOCK can make
    // the reader pick up the second channel in time.
    let slow = RedisSignalsOptions {
        block: Duration::from_secs(60),
        ..fast()
    };
    let b = RedisSignals::connect_with(&url(&ns.url), ns.namespace(), "b", slow)
        .await
        .unwrap();
    let mut first = b
        .subscribe("one", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "one", 0..1).await;
    assert_eq!(index(&recv(&mut first).await), 0);
    let mut second = b
        .subscribe("two", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "two", 0..1).await;
    assert_eq!(index(&recv(&mut second).await), 0);
    b.shutdown().await;
}

#[tokio::test]
async fn a_stream_key_overwritten_by_another_type_does_not_stop_the_other_channels() {
    let ns = TestNs::new("ps-wrongtype");
    let a: Arc<dyn SyncSignals> = Arc::new(redis_node(&ns, "a").await);
    let b = redis_node(&ns, "b").await;
    let mut one = b
        .subscribe("one", SubscribeOptions::default())
        .await
        .unwrap();
    let mut two = b
        .subscribe("two", SubscribeOptions::default())
        .await
        .unwrap();
    publish_range(&a, "one", 0..1).await;
    assert_eq!(index(&recv(&mut one).await), 0);

    let key = keys::stream_key(&ns.namespace(), "one");
    let mut raw = redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::pipe()
        .atomic()
        .del(&key)
        .set(&key, "not a stream")
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = a.publish("one", json!(1).into()).await.unwrap_err();
    assert!(err.to_string().contains(&key), "{err}");

    publish_range(&a, "two", 0..3).await;
    let got: Vec<i64> = recv_n(&mut two, 3).await.iter().map(index).collect();
    assert_eq!(got, [0, 1, 2]);
    b.shutdown().await;
}

#[tokio::test]
async fn the_config_picks_the_backend() {
    use clusterops::adapters::pubsub::from_config;
    use clusterops::config::{Config, PubsubAdapter};
    let memory = from_config(&Config::default(), "n1").await.unwrap();
    assert_eq!(memory.node_id(), "n1");
    let mut sub = memory
        .subscribe("c", SubscribeOptions::including_own())
        .await
        .unwrap();
    assert_eq!(memory.publish("c", json!(1).into()).await.unwrap(), "1");
    assert_eq!(recv(&mut sub).await.payload, Payload::Json(json!(1)));

    let ns = TestNs::new("ps-config");
    let config = Config {
        namespace: ns.namespace(),
        pubsub: PubsubAdapter::Redis(url(&ns.url)),
        ..Config::default()
    };
    let redis = from_config(&config, "n2").await.unwrap();
    let id = redis.publish("c", json!(2).into()).await.unwrap();
    let keys = ns.keys();
    assert!(
        keys.contains(&clusterops::adapters::pubsub::keys::stream_key(
            &ns.namespace(),
            "c"
        )),
        "{keys:?} after {id}"
    );
    assert!(matches!(
        from_config(&config, " ").await,
        Err(PubsubError::EmptyNodeId)
    ));
}
