//! Poison messages are bounded on Redis and RabbitMQ (one body, two
//! backends): a message that crashes its consumer every time is delivered
//! `max_deliveries` times, then becomes a dead letter saying so, while the
//! other messages keep flowing; requeueing it gives it a fresh budget. On
//! RabbitMQ also: quorum queues by default, classic on request, and a clear
//! error (no panic, no hang) when a classic queue of the same name exists.

use crate::common;

use clusterops::adapters::queue::{
    self, MessageQueue, QueueError, QueueOptions, RabbitQueueType, Requeue, RetryPolicy,
    Subscription, handler,
};
use clusterops::config::Config;
use common::TestNs;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const MAX_DELIVERIES: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Redis,
    Rabbitmq,
}

fn options() -> QueueOptions {
    QueueOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        visibility_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        max_deliveries: MAX_DELIVERIES,
        ..QueueOptions::default()
    }
}

fn config(kind: Kind, ns: &TestNs, extra: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("CLUSTER_NAME".into(), ns.name.clone());
    match kind {
        Kind::Redis => {
            vars.insert("QUEUE_ADAPTER".into(), "redis".into());
            vars.insert("QUEUE_ADAPTER_REDIS_URL".into(), ns.url.clone());
        }
        Kind::Rabbitmq => {
            vars.insert("QUEUE_ADAPTER".into(), "rabbitmq".into());
            vars.insert("QUEUE_ADAPTER_RABBITMQ_URL".into(), common::amqp_url());
        }
    }
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_vars(&vars).unwrap()
}

/// A consumer that handles `ok-*` messages and, on `poison`, reports it and
/// hangs until the test aborts it (a consumer dying on that message).
async fn crashing_consumer(
    q: &Arc<dyn MessageQueue>,
    name: &str,
    poisoned: mpsc::UnboundedSender<u32>,
    handled: Arc<Mutex<BTreeSet<String>>>,
) -> Subscription {
    q.subscribe(
        name,
        2,
        handler(move |msg| {
            let (poisoned, handled) = (poisoned.clone(), handled.clone());
            async move {
                let text = msg.text().unwrap_or_default().to_string();
                if text == "poison" {
                    let _ = poisoned.send(msg.attempt);
                    std::future::pending::<()>().await;
                }
                handled.lock().insert(text);
                Ok::<(), String>(())
            }
        }),
    )
    .await
    .unwrap()
}

/// Publish the round's five `ok-*` messages and wait until the consumer of
/// `sub` has handled them.
async fn publish_and_handle(
    q: &Arc<dyn MessageQueue>,
    handled: &Mutex<BTreeSet<String>>,
    round: u32,
    sub: &Subscription,
) {
    let texts: Vec<String> = (0..5).map(|i| format!("ok-{round}-{i}")).collect();
    for text in &texts {
        q.publish(sub.queue(), text.as_bytes()).await.unwrap();
    }
    eventually(
        &format!("round {round}'s messages handled"),
        Duration::from_secs(10),
        async || {
            let done = handled.lock();
            texts.iter().all(|t| done.contains(t))
        },
    )
    .await;
}

async fn eventually(what: &str, bound: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_message_that_crashes_its_consumer_every_time_becomes_a_dead_letter(kind: Kind) {
    let ns = TestNs::new("qpoison");
    let cfg = config(kind, &ns, &[]);
    let q = queue::from_config_with(&cfg, "node-a", options())
        .await
        .unwrap();
    let poison_id = q.publish("jobs", b"poison").await.unwrap();
    let handled: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut deliveries = 0u32;
    let started = Instant::now();
    // Each round: a fresh consumer takes the poison message (the only one
    // waiting), handles the round's other messages with its second slot
    // while the poison one hangs, then "crashes" holding the poison message
    // only. Aborting it as soon as the poison message arrives would also
    // return any message sharing its prefetch window unacknowledged, and a
    // message returned by three crashes is rightly dead-lettered too (see
    // docs/queue.md, "Poison messages").
    for round in 0..MAX_DELIVERIES + 2 {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sub = crashing_consumer(&q, "jobs", tx, handled.clone()).await;
        // Redis hands the message over after the 1 s visibility timeout
        // and the next reclaim; RabbitMQ as soon as the channel closed.
        let poisoned = tokio::time::timeout(Duration::from_secs(8), rx.recv()).await;
        publish_and_handle(&q, &handled, round, &sub).await;
        match poisoned {
            Ok(Some(attempt)) => {
                assert_eq!(attempt, 1, "a crash is not a failed attempt");
                deliveries += 1;
                sub.abort();
            }
            _ => {
                // Past the bound the consumer never sees it.
                sub.shutdown().await.unwrap();
                break;
            }
        }
    }
    assert_eq!(deliveries, MAX_DELIVERIES, "delivered exactly the bound");
    // The other messages kept flowing, each round, while the poison message
    // was held.
    let expected = usize::try_from(deliveries + 1).unwrap() * 5;
    assert_eq!(handled.lock().len(), expected);
    eventually(
        "the poison dead letter",
        Duration::from_secs(30),
        async || q.dead_letter_count("jobs").await.unwrap() >= 1,
    )
    .await;
    let dead = q.dead_letters("jobs", 10).await.unwrap();
    println!(
        "{kind:?}: poison dead-lettered after {deliveries} deliveries in {:?}: {:?}",
        started.elapsed(),
        dead[0].error
    );
    let payloads: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8_lossy(&d.payload).into_owned())
        .collect();
    assert_eq!(payloads, ["poison"], "only the poison message is dead");
    assert_eq!(dead[0].id, poison_id);
    assert_eq!(dead[0].payload, b"poison");
    assert_eq!(
        dead[0].error,
        format!(
            "delivered {MAX_DELIVERIES} times without being acknowledged (its consumer crashed \
             or lost its connection each time)"
        )
    );

    // Requeued, it starts a fresh budget and a healed consumer handles it.
    assert_eq!(
        q.requeue_dead_letters("jobs", Requeue::All).await.unwrap(),
        1
    );
    let healed: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = healed.clone();
    let sub = q
        .subscribe(
            "jobs",
            1,
            handler(move |msg| {
                let seen = seen.clone();
                async move {
                    seen.lock().push(msg.id.clone());
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .unwrap();
    eventually(
        "the requeued message",
        Duration::from_secs(10),
        async || healed.lock().contains(&poison_id),
    )
    .await;
    sub.shutdown().await.unwrap();
    assert_eq!(q.dead_letter_count("jobs").await.unwrap(), 0);
    q.delete_queue("jobs").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_message_that_crashes_its_consumer_every_time_becomes_a_dead_letter() {
    a_message_that_crashes_its_consumer_every_time_becomes_a_dead_letter(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_message_that_crashes_its_consumer_every_time_becomes_a_dead_letter() {
    a_message_that_crashes_its_consumer_every_time_becomes_a_dead_letter(Kind::Rabbitmq).await;
}

/// `x-queue-type` of a queue, from `rabbitmqctl list_queues`.
fn queue_type(name: &str) -> Option<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name", "type"])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(name)).then(|| parts.next().unwrap_or("").to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_queues_are_quorum_by_default_and_a_classic_one_of_the_same_name_is_one_clear_error()
 {
    let ns = TestNs::new("qtype");
    let classic_cfg = config(
        Kind::Rabbitmq,
        &ns,
        &[("QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE", "classic")],
    );
    let quorum_cfg = config(Kind::Rabbitmq, &ns, &[]);

    let quorum = queue::from_config_with(&quorum_cfg, "node-q", options())
        .await
        .unwrap();
    quorum.publish("fresh", b"x").await.unwrap();
    let main = format!("{}.fresh", ns.name);
    assert_eq!(queue_type(&main).as_deref(), Some("quorum"));
    assert_eq!(
        queue_type(&format!("{main}.dead")).as_deref(),
        Some("quorum")
    );
    assert_eq!(
        queue_type(&format!("{main}.retry.20")).as_deref(),
        Some("quorum")
    );
    quorum.delete_queue("fresh").await.unwrap();

    // An existing classic queue (as earlier versions declared it).
    let classic = queue::from_config_with(&classic_cfg, "node-c", options())
        .await
        .unwrap();
    classic.publish("legacy", b"x").await.unwrap();
    let legacy = format!("{}.legacy", ns.name);
    assert_eq!(queue_type(&legacy).as_deref(), Some("classic"));

    let t = Instant::now();
    let err = quorum.publish("legacy", b"y").await.unwrap_err();
    let sub = quorum.subscribe("legacy", 1, handler(|_| async { Ok::<(), String>(()) }));
    let sub_err = sub.await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        t.elapsed()
    );
    for e in [&err, &sub_err] {
        assert!(matches!(e, QueueError::AmqpInequivalent { .. }), "{e:?}");
        let line = e.to_string();
        println!("{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.contains("guest"), "{line}");
        let exists = format!("RabbitMQ queue {}.legacy.dead already exists", ns.name);
        for part in [
            exists.as_str(),
            "x-queue-type",
            "declares it as quorum",
            "delete the queue",
            "QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE",
        ] {
            assert!(line.contains(part), "{part:?} in {line}");
        }
    }
    // The classic adapter goes on working, and `classic` is honoured.
    assert_eq!(classic.stats("legacy").await.unwrap().waiting, 1);
    let opts = QueueOptions {
        rabbitmq_queue_type: RabbitQueueType::Classic,
        ..options()
    };
    let by_option = queue::from_config_with(&quorum_cfg, "node-o", opts)
        .await
        .unwrap();
    by_option.publish("legacy", b"z").await.unwrap();
    assert_eq!(classic.stats("legacy").await.unwrap().waiting, 2);
    classic.delete_queue("legacy").await.unwrap();
}
