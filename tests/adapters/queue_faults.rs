//! The queue under crashes and connection loss: a consumer that dies in the
//! middle of a message has it redelivered (Redis: after the visibility
//! timeout, or at once to the restarted consumer of the same name;
//! RabbitMQ: when its channel closes), and publishing and consuming resume
//! after Redis restarts or RabbitMQ drops the connection, losing nothing.

use crate::common;

use clusterops::adapters::queue::{
    self, MessageQueue, QueueOptions, RetryPolicy, Subscription, handler,
};
use clusterops::config::Config;
use common::{PrivateRedis, TestNs};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn options(visibility: Duration) -> QueueOptions {
    QueueOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        visibility_timeout: visibility,
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        reconnect_timeout: Duration::from_secs(15),
        ..QueueOptions::default()
    }
}

fn config(ns: &str, adapter: &str, url: &str) -> Config {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("CLUSTER_NAME".into(), ns.into());
    vars.insert("QUEUE_ADAPTER".into(), adapter.into());
    let var = if adapter == "redis" {
        "QUEUE_ADAPTER_REDIS_URL"
    } else {
        "QUEUE_ADAPTER_RABBITMQ_URL"
    };
    vars.insert(var.into(), url.into());
    Config::from_vars(&vars).unwrap()
}

async fn node(config: &Config, id: &str, opts: QueueOptions) -> Arc<dyn MessageQueue> {
    queue::from_config_with(config, id, opts).await.unwrap()
}

/// Subscribe with a handler that reports each delivery and then hangs
/// forever when `hang` is set, like a node that dies mid-message.
async fn hanging_consumer(
    q: &Arc<dyn MessageQueue>,
    name: &str,
    tx: mpsc::UnboundedSender<(String, u32)>,
) -> Subscription {
    q.subscribe(
        name,
        2,
        handler(move |msg| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((msg.id.clone(), msg.attempt));
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }
        }),
    )
    .await
    .unwrap()
}

/// Subscribe with a handler that records each message id.
async fn collecting_consumer(
    q: &Arc<dyn MessageQueue>,
    name: &str,
    concurrency: usize,
) -> (Subscription, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let sub = q
        .subscribe(
            name,
            concurrency,
            handler(move |msg| {
                let s = s.clone();
                async move {
                    s.lock().push(msg.text().unwrap_or_default().to_string());
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .unwrap();
    (sub, seen)
}

async fn wait_until(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_message_held_by_a_crashed_consumer_goes_to_another_after_the_visibility_timeout() {
    let ns = TestNs::new("qcrash");
    let cfg = config(&ns.name, "redis", &ns.url);
    let opts = options(Duration::from_secs(1));
    let a = node(&cfg, "node-a", opts).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub_a = hanging_consumer(&a, "jobs", tx).await;
    let id = a.publish("jobs", b"precious").await.unwrap();
    let (held, attempt) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((held.as_str(), attempt), (id.as_str(), 1));
    let crashed_at = Instant::now();
    sub_a.abort();

    let b = node(&cfg, "node-b", opts).await;
    let (sub_b, seen) = collecting_consumer(&b, "jobs", 2).await;
    wait_until("the message on node b", Duration::from_secs(10), || {
        !seen.lock().is_empty()
    })
    .await;
    assert!(
        crashed_at.elapsed() >= Duration::from_millis(500),
        "redelivered only once the crashed consumer's message went idle"
    );
    assert_eq!(*seen.lock(), vec!["precious".to_string()]);
    sub_b.shutdown().await.unwrap();
    let stats = b.stats("jobs").await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, Some(0)), "{stats:?}");
    assert_eq!(
        stats.consumers, 1,
        "the crashed consumer is still listed: {stats:?}"
    );
    assert_eq!(stats.consumer_details[0].name, "node-a-0");
    assert_eq!(stats.consumer_details[0].pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_restarted_consumer_takes_back_its_own_pending_messages_at_once() {
    let ns = TestNs::new("qown");
    let cfg = config(&ns.name, "redis", &ns.url);
    // A long visibility timeout: only the consumer's own history read can
    // deliver the message within the test's bound.
    let opts = options(Duration::from_secs(60));
    let a = node(&cfg, "node-a", opts).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = hanging_consumer(&a, "jobs", tx).await;
    a.publish("jobs", b"mine").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    sub.abort();
    let stats = a.stats("jobs").await.unwrap();
    assert_eq!(stats.in_flight, Some(1), "{stats:?}");
    assert!(stats.oldest_pending_age_ms.is_some(), "{stats:?}");

    let again = node(&cfg, "node-a", opts).await;
    let (sub, seen) = collecting_consumer(&again, "jobs", 1).await;
    wait_until("the pending message", Duration::from_secs(5), || {
        !seen.lock().is_empty()
    })
    .await;
    sub.shutdown().await.unwrap();
    assert_eq!(*seen.lock(), vec!["mine".to_string()]);
    let stats = again.stats("jobs").await.unwrap();
    assert_eq!(stats.in_flight, Some(0), "{stats:?}");
    assert_eq!(
        stats.consumers, 0,
        "a clean stop leaves the group: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_publishing_and_consuming_resume_after_restarts_and_nothing_is_lost() {
    let mut server = PrivateRedis::start_persistent();
    let ns = TestNs::on("qrestart", &server.url());
    let cfg = config(&ns.name, "redis", &server.url());
    let opts = options(Duration::from_secs(2));
    let producer = node(&cfg, "producer", opts).await;
    let consumer = node(&cfg, "consumer", opts).await;
    const N: usize = 1500;
    // A third waits in the stream while the server restarts.
    for i in 0..N / 3 {
        producer
            .publish("jobs", format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    server.restart();
    assert_eq!(
        producer.stats("jobs").await.unwrap().waiting as usize,
        N / 3
    );

    // The rest is published while consuming, across a second restart.
    let (sub, seen) = collecting_consumer(&consumer, "jobs", 8).await;
    let published = Arc::new(Mutex::new(N / 3));
    let p = published.clone();
    let publisher = tokio::spawn(async move {
        for i in N / 3..N {
            producer
                .publish("jobs", format!("m{i}").as_bytes())
                .await
                .unwrap();
            *p.lock() += 1;
        }
        producer
    });
    wait_until("two thirds published", Duration::from_secs(20), || {
        *published.lock() >= 2 * N / 3
    })
    .await;
    server.restart();
    let producer = publisher.await.unwrap();
    wait_until("every message consumed", Duration::from_secs(30), || {
        seen.lock().iter().collect::<HashSet<_>>().len() == N
    })
    .await;
    sub.shutdown().await.unwrap();
    let distinct: HashSet<String> = seen.lock().iter().cloned().collect();
    let expected: HashSet<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(distinct, expected, "nothing lost across the restarts");
    let stats = producer.stats("jobs").await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, Some(0)), "{stats:?}");
}

/// A unique namespace for RabbitMQ names (no Redis keys are written).
fn amqp_ns(label: &str) -> String {
    format!("t-{label}-{:08x}", rand::random::<u32>())
}

/// Force-close (like a broker-side failure) every RabbitMQ connection whose
/// name mentions `ns`: only this test's connections. Returns how many.
fn close_connections_of(ns: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl is installed");
    let listing = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<String> = listing
        .lines()
        .filter(|l| l.contains(ns))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let closing: Vec<_> = pids
        .iter()
        .map(|pid| {
            std::process::Command::new("rabbitmqctl")
                .args(["-q", "close_connection", pid, "test"])
                .spawn()
                .expect("rabbitmqctl is installed")
        })
        .collect();
    for mut c in closing {
        assert!(c.wait().unwrap().success(), "rabbitmqctl close_connection");
    }
    pids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_message_held_by_a_crashed_consumer_goes_to_another_when_its_channel_closes() {
    let ns = amqp_ns("qcrash");
    let cfg = config(&ns, "rabbitmq", &common::amqp_url());
    let opts = options(Duration::from_secs(1));
    let a = node(&cfg, "node-a", opts).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub_a = hanging_consumer(&a, "jobs", tx).await;
    let id = a.publish("jobs", b"precious").await.unwrap();
    let (held, attempt) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((held.as_str(), attempt), (id.as_str(), 1));

    let b = node(&cfg, "node-b", opts).await;
    let (sub_b, seen) = collecting_consumer(&b, "jobs", 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().is_empty(), "held by node a while it lives");
    sub_a.abort();
    wait_until("the message on node b", Duration::from_secs(10), || {
        !seen.lock().is_empty()
    })
    .await;
    assert_eq!(*seen.lock(), vec!["precious".to_string()]);
    sub_b.shutdown().await.unwrap();
    let stats = b.stats("jobs").await.unwrap();
    assert_eq!((stats.waiting, stats.dead), (0, 0), "{stats:?}");
    b.delete_queue("jobs").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_publishing_and_consuming_resume_after_the_broker_drops_the_connections() {
    let ns = amqp_ns("qdrop");
    let cfg = config(&ns, "rabbitmq", &common::amqp_url());
    let opts = options(Duration::from_secs(1));
    let producer = node(&cfg, "producer", opts).await;
    let consumer = node(&cfg, "consumer", opts).await;
    let (sub, seen) = collecting_consumer(&consumer, "jobs", 8).await;
    // Four publishers, about a thousand messages a second in all, until
    // told to stop: the connections drop while they publish.
    let published: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for p in 0..4 {
        let (producer, published, done) = (producer.clone(), published.clone(), done.clone());
        publishers.push(tokio::spawn(async move {
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let text = format!("p{p}-{i}");
                producer.publish("jobs", text.as_bytes()).await.unwrap();
                published.lock().push(text);
                i += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        }));
    }
    wait_until("some published", Duration::from_secs(20), || {
        published.lock().len() >= 200
    })
    .await;
    let closed = tokio::task::spawn_blocking({
        let ns = ns.clone();
        move || close_connections_of(&ns)
    })
    .await
    .unwrap();
    assert!(
        closed >= 2,
        "the producer's and the consumer's connections were closed"
    );
    let after_close = published.lock().len();
    wait_until("publishing resumed", Duration::from_secs(20), || {
        published.lock().len() >= after_close + 300
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    let expected: HashSet<String> = published.lock().iter().cloned().collect();
    wait_until("every message consumed", Duration::from_secs(30), || {
        seen.lock().iter().collect::<HashSet<_>>().len() >= expected.len()
    })
    .await;
    sub.shutdown().await.unwrap();
    let distinct: HashSet<String> = seen.lock().iter().cloned().collect();
    assert_eq!(
        distinct, expected,
        "nothing lost when the connections dropped"
    );
    let stats = producer.stats("jobs").await.unwrap();
    assert_eq!((stats.waiting, stats.dead), (0, 0), "{stats:?}");
    producer.delete_queue("jobs").await.unwrap();
}
