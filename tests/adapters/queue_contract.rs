//! One contract for every queue backend (memory, Redis, RabbitMQ): no loss
//! and no duplicates without crashes, retries with backoff, dead letters
//! with their error, requeue and purge, stats and graceful shutdown.

use crate::common;

use clusterops::adapters::queue::{
    self, MessageQueue, QueueOptions, Requeue, RetryPolicy, Subscription, handler,
};
use clusterops::config::Config;
use common::TestNs;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Memory,
    Redis,
    Rabbitmq,
}

/// The nodes of one test: adapters on a fresh namespace of one backend.
struct Fixture {
    kind: Kind,
    ns: TestNs,
    options: QueueOptions,
    memory: Option<Arc<dyn MessageQueue>>,
    used: Mutex<Vec<String>>,
}

fn test_options() -> QueueOptions {
    QueueOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        visibility_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        reconnect_timeout: Duration::from_secs(10),
        ..QueueOptions::default()
    }
}

impl Fixture {
    fn new(kind: Kind, label: &str) -> Self {
        Self {
            kind,
            ns: TestNs::new(label),
            options: test_options(),
            memory: None,
            used: Mutex::new(Vec::new()),
        }
    }

    fn config(&self) -> Config {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("CLUSTER_NAME".into(), self.ns.name.clone());
        match self.kind {
            Kind::Memory => {}
            Kind::Redis => {
                vars.insert("QUEUE_ADAPTER".into(), "redis".into());
                vars.insert("QUEUE_ADAPTER_REDIS_URL".into(), self.ns.url.clone());
            }
            Kind::Rabbitmq => {
                vars.insert("QUEUE_ADAPTER".into(), "rabbitmq".into());
                vars.insert("QUEUE_ADAPTER_RABBITMQ_URL".into(), common::amqp_url());
            }
        }
        Config::from_vars(&vars).unwrap()
    }

    /// One node's adapter (the memory backend is one shared instance).
    async fn node(&mut self, id: &str) -> Arc<dyn MessageQueue> {
        if let (Kind::Memory, Some(m)) = (self.kind, &self.memory) {
            return m.clone();
        }
        let q = queue::from_config_with(&self.config(), id, self.options)
            .await
            .unwrap();
        if self.kind == Kind::Memory {
            self.memory = Some(q.clone());
        }
        q
    }

    /// A queue name, remembered for cleanup.
    fn queue(&self, name: &str) -> String {
        self.used.lock().push(name.to_string());
        name.to_string()
    }

    /// Delete every queue the test used (RabbitMQ; Redis keys go with the
    /// namespace).
    async fn cleanup(&mut self) {
        let q = self.node("cleanup").await;
        let names: Vec<String> = self.used.lock().clone();
        for name in names {
            q.delete_queue(&name).await.unwrap();
        }
    }
}

async fn eventually(what: &str, bound: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + bound;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shutdown_all(subs: Vec<Subscription>) {
    for s in subs {
        s.shutdown().await.unwrap();
    }
}

async fn ten_thousand_messages_are_each_handled_once(kind: Kind) {
    let mut fx = Fixture::new(kind, "q10k");
    let name = fx.queue("jobs");
    const N: u64 = 10_000;
    let seen: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let duplicates = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for c in 0..3 {
        let node = fx.node(&format!("consumer{c}")).await;
        let (seen, duplicates) = (seen.clone(), duplicates.clone());
        let h = handler(move |msg| {
            let (seen, duplicates) = (seen.clone(), duplicates.clone());
            async move {
                let n: u64 = msg.json().map_err(|e| e.to_string())?;
                if !seen.lock().insert(n) {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            }
        });
        subs.push(node.subscribe(&name, 16, h).await.unwrap());
    }
    let mut producers = Vec::new();
    for p in 0..2u64 {
        let node = fx.node(&format!("producer{p}")).await;
        let name = name.clone();
        producers.push(tokio::spawn(async move {
            futures::stream::iter((0..N / 2).map(|i| p * (N / 2) + i))
                .map(|n| {
                    let node = node.clone();
                    let name = name.clone();
                    async move { node.publish_json(&name, &n).await.unwrap() }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        }));
    }
    let mut ids = HashSet::new();
    for p in producers {
        ids.extend(p.await.unwrap());
    }
    assert_eq!(ids.len() as u64, N, "every publish gets its own id");
    eventually(
        "every message handled",
        Duration::from_secs(60),
        async || seen.lock().len() as u64 == N,
    )
    .await;
    shutdown_all(subs).await;
    assert_eq!(
        duplicates.load(Ordering::Relaxed),
        0,
        "no duplicates without crashes"
    );
    let node = fx.node("inspector").await;
    let stats = node.stats(&name).await.unwrap();
    assert_eq!(stats.waiting, 0, "{stats:?}");
    assert!(stats.in_flight.unwrap_or(0) == 0, "{stats:?}");
    assert_eq!(stats.dead, 0, "{stats:?}");
    fx.cleanup().await;
}

async fn a_message_that_keeps_failing_becomes_a_dead_letter_with_its_error(kind: Kind) {
    let mut fx = Fixture::new(kind, "qdead");
    let name = fx.queue("fails");
    let node = fx.node("n1").await;
    let attempts: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let seen = attempts.clone();
    let sub = node
        .subscribe(
            &name,
            2,
            handler(move |msg| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .push((msg.text().unwrap_or("").to_string(), msg.attempt));
                    if msg.payload == b"bad" {
                        Err(format!("boom on attempt {}", msg.attempt))
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .await
        .unwrap();
    let bad_id = node.publish(&name, b"bad").await.unwrap();
    node.publish(&name, b"good").await.unwrap();
    eventually("one dead letter", Duration::from_secs(10), async || {
        node.dead_letter_count(&name).await.unwrap() == 1
    })
    .await;
    let dead = node.dead_letters(&name, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, bad_id);
    assert_eq!(dead[0].payload, b"bad");
    assert_eq!(dead[0].error, "boom on attempt 3");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].failed_at_ms > 0);
    let bad_attempts: Vec<u32> = attempts
        .lock()
        .iter()
        .filter(|(t, _)| t == "bad")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(bad_attempts, vec![1, 2, 3]);
    let good: Vec<u32> = attempts
        .lock()
        .iter()
        .filter(|(t, _)| t == "good")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(good, vec![1], "a good message is handled once");
    sub.shutdown().await.unwrap();
    let stats = node.stats(&name).await.unwrap();
    assert_eq!(stats.dead, 1, "{stats:?}");
    assert_eq!(stats.waiting, 0, "{stats:?}");
    fx.cleanup().await;
}

async fn a_message_that_fails_twice_then_succeeds_is_not_dead_lettered(kind: Kind) {
    let mut fx = Fixture::new(kind, "qretry");
    let name = fx.queue("flaky");
    let node = fx.node("n1").await;
    let done: Arc<Mutex<Vec<u32>>> = Arc::default();
    let d = done.clone();
    let sub = node
        .subscribe(
            &name,
            1,
            handler(move |msg| {
                let d = d.clone();
                async move {
                    if msg.attempt < 3 {
                        if msg.attempt == 2 {
                            panic!("a panicking handler counts as a failure");
                        }
                        return Err("not yet".to_string());
                    }
                    d.lock().push(msg.attempt);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    node.publish(&name, b"x").await.unwrap();
    eventually("the third attempt", Duration::from_secs(10), async || {
        !done.lock().is_empty()
    })
    .await;
    sub.shutdown().await.unwrap();
    assert_eq!(*done.lock(), vec![3]);
    assert_eq!(node.dead_letter_count(&name).await.unwrap(), 0);
    fx.cleanup().await;
}

async fn dead_letters_can_be_requeued_by_id_or_all_and_purged(kind: Kind) {
    let mut fx = Fixture::new(kind, "qrequeue");
    let name = fx.queue("mail");
    let node = fx.node("n1").await;
    let healthy = Arc::new(AtomicU64::new(0));
    let handled: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (h2, handled2) = (healthy.clone(), handled.clone());
    let sub = node
        .subscribe(
            &name,
            4,
            handler(move |msg| {
                let (healthy, handled) = (h2.clone(), handled2.clone());
                async move {
                    if healthy.load(Ordering::SeqCst) == 0 {
                        return Err("smtp down");
                    }
                    *handled.lock().entry(msg.id.clone()).or_default() += 1;
                    assert_eq!(msg.attempt, 1, "a requeued message starts a fresh budget");
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            node.publish(&name, format!("m{i}").as_bytes())
                .await
                .unwrap(),
        );
    }
    eventually("five dead letters", Duration::from_secs(10), async || {
        node.dead_letter_count(&name).await.unwrap() == 5
    })
    .await;
    let listed: HashSet<String> = node
        .dead_letters(&name, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect());
    assert_eq!(node.dead_letters(&name, 2).await.unwrap().len(), 2);

    healthy.store(1, Ordering::SeqCst);
    let requeued = node
        .requeue_dead_letters(
            &name,
            Requeue::Ids(vec![ids[1].clone(), "no-such-id".into()]),
        )
        .await
        .unwrap();
    assert_eq!(requeued, 1);
    eventually(
        "the requeued message handled",
        Duration::from_secs(10),
        async || handled.lock().contains_key(&ids[1]),
    )
    .await;
    assert_eq!(node.dead_letter_count(&name).await.unwrap(), 4);

    // Two go back, the rest is purged.
    let requeued = node
        .requeue_dead_letters(&name, Requeue::Ids(vec![ids[0].clone(), ids[2].clone()]))
        .await
        .unwrap();
    assert_eq!(requeued, 2);
    assert_eq!(node.purge_dead_letters(&name).await.unwrap(), 2);
    assert_eq!(node.dead_letter_count(&name).await.unwrap(), 0);
    assert!(node.dead_letters(&name, 10).await.unwrap().is_empty());
    eventually(
        "both requeued messages handled",
        Duration::from_secs(10),
        async || {
            let h = handled.lock();
            h.contains_key(&ids[0]) && h.contains_key(&ids[2])
        },
    )
    .await;

    // Requeue all: fail them again first.
    healthy.store(0, Ordering::SeqCst);
    for i in 0..3 {
        node.publish(&name, format!("again{i}").as_bytes())
            .await
            .unwrap();
    }
    eventually(
        "three new dead letters",
        Duration::from_secs(10),
        async || node.dead_letter_count(&name).await.unwrap() == 3,
    )
    .await;
    healthy.store(1, Ordering::SeqCst);
    assert_eq!(
        node.requeue_dead_letters(&name, Requeue::All)
            .await
            .unwrap(),
        3
    );
    eventually(
        "all requeued handled",
        Duration::from_secs(10),
        async || handled.lock().len() == 6,
    )
    .await;
    sub.shutdown().await.unwrap();
    assert!(
        handled.lock().values().all(|n| *n == 1),
        "{:?}",
        handled.lock()
    );
    assert_eq!(node.dead_letter_count(&name).await.unwrap(), 0);
    fx.cleanup().await;
}

async fn stats_count_waiting_messages_and_consumers(kind: Kind) {
    let mut fx = Fixture::new(kind, "qstats");
    let name = fx.queue("stats");
    let node = fx.node("n1").await;
    for i in 0..7 {
        node.publish_json(&name, &i).await.unwrap();
    }
    eventually("seven waiting", Duration::from_secs(5), async || {
        node.stats(&name).await.unwrap().waiting == 7
    })
    .await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let r = release.clone();
    let sub = node
        .subscribe(
            &name,
            3,
            handler(move |_msg| {
                let r = r.clone();
                async move {
                    let _p = r.acquire().await.map_err(|e| e.to_string())?;
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .unwrap();
    eventually(
        "three held by handlers",
        Duration::from_secs(5),
        async || {
            let s = node.stats(&name).await.unwrap();
            s.waiting == 4 && s.consumers >= 1 && s.in_flight.is_none_or(|n| n == 3)
        },
    )
    .await;
    release.add_permits(100);
    eventually("all handled", Duration::from_secs(5), async || {
        let s = node.stats(&name).await.unwrap();
        s.waiting == 0 && s.in_flight.is_none_or(|n| n == 0)
    })
    .await;
    sub.shutdown().await.unwrap();
    assert!(matches!(
        node.publish(&name.replace('s', ":"), b"x").await,
        Err(queue::QueueError::InvalidName(_))
    ));
    fx.cleanup().await;
}

async fn shutdown_lets_the_running_handler_finish(kind: Kind) {
    let mut fx = Fixture::new(kind, "qstop");
    let name = fx.queue("stop");
    let node = fx.node("n1").await;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let finished = Arc::new(AtomicU64::new(0));
    let f = finished.clone();
    let sub = node
        .subscribe(
            &name,
            2,
            handler(move |_msg| {
                let (started_tx, f) = (started_tx.clone(), f.clone());
                async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .unwrap();
    node.publish(&name, b"slow").await.unwrap();
    started_rx.recv().await.unwrap();
    sub.shutdown().await.unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "in-flight handler finished"
    );
    let s = node.stats(&name).await.unwrap();
    assert_eq!(s.waiting, 0, "{s:?}");
    assert!(
        s.in_flight.is_none_or(|n| n == 0),
        "acknowledged before stopping: {s:?}"
    );
    fx.cleanup().await;
}

macro_rules! contract {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ten_thousand_messages_from_two_producers_are_each_handled_once_by_three_consumers() {
                ten_thousand_messages_are_each_handled_once($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_message_that_keeps_failing_becomes_a_dead_letter_with_its_error() {
                super::a_message_that_keeps_failing_becomes_a_dead_letter_with_its_error($kind)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_message_that_fails_twice_then_succeeds_is_not_dead_lettered() {
                super::a_message_that_fails_twice_then_succeeds_is_not_dead_lettered($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letters_can_be_requeued_by_id_or_all_and_purged() {
                super::dead_letters_can_be_requeued_by_id_or_all_and_purged($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stats_count_waiting_messages_and_consumers() {
                super::stats_count_waiting_messages_and_consumers($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shutdown_lets_the_running_handler_finish() {
                super::shutdown_lets_the_running_handler_finish($kind).await;
            }
        }
    };
}

contract!(memory, Kind::Memory);
contract!(redis, Kind::Redis);
contract!(rabbitmq, Kind::Rabbitmq);
