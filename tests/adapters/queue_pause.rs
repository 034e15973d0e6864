//! Pausing a queue's consumers on real Redis: with two nodes' consumers
//! running, jobs published to a paused queue stay waiting (the flag is
//! `<ns>:queue:{<queue>}:paused`, read by each consumer's loop), a handler
//! that was running when the pause came finishes, and after `resume` every
//! job is handled exactly once. The in-process backend honours it too, and
//! the inspector shows the flag and the age of the oldest waiting job.

use crate::common;

use clusterops::adapters::queue::{
    self, MemoryQueue, MessageQueue, PauseFlag, QueueOptions, handler,
};
use clusterops::config::{Config, SecretUrl};
use common::TestNs;
use common::nodes::eventually;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn options() -> QueueOptions {
    QueueOptions {
        poll_interval: Duration::from_millis(100),
        ..QueueOptions::default()
    }
}

fn flag() -> PauseFlag {
    PauseFlag {
        by: "ops@test".into(),
        reason: "downstream API down".into(),
        since_ms: 1,
    }
}

type Seen = Arc<Mutex<Vec<String>>>;

fn recording(seen: &Seen) -> queue::Handler {
    let seen = seen.clone();
    handler(move |m| {
        let seen = seen.clone();
        async move {
            seen.lock().push(m.text().unwrap_or("").to_string());
            Ok::<(), String>(())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_keeps_its_jobs_waiting_on_every_node_until_resumed() {
    let ns = TestNs::new("qpause");
    let url = SecretUrl::parse(&ns.url, &["redis"]).unwrap();
    let a = queue::RedisQueue::connect(&url, ns.namespace(), "node-a", options())
        .await
        .unwrap();
    let b = queue::RedisQueue::connect(&url, ns.namespace(), "node-b", options())
        .await
        .unwrap();
    let seen: Seen = Arc::default();
    let sub_a = a.subscribe("jobs", 4, recording(&seen)).await.unwrap();
    let sub_b = b.subscribe("jobs", 4, recording(&seen)).await.unwrap();
    // Running: a job goes through.
    a.publish("jobs", b"warm-up").await.unwrap();
    assert!(eventually(Duration::from_secs(5), || async { seen.lock().len() == 1 }).await);

    a.pause("jobs", &flag()).await.unwrap();
    assert_eq!(b.paused("jobs").await.unwrap(), Some(flag()));
    // Each consumer sees the flag within one poll interval.
    assert!(
        eventually(Duration::from_secs(5), || async {
            sub_a.pause_state().is_paused() && sub_b.pause_state().is_paused()
        })
        .await,
        "both nodes' consumers report paused"
    );
    for i in 0..20 {
        b.publish("jobs", format!("job-{i}").as_bytes())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().len(), 1, "nothing taken while paused");
    let stats = a.stats("jobs").await.unwrap();
    assert_eq!(stats.waiting, 20, "{stats:?}");
    assert_eq!(stats.in_flight, Some(0), "{stats:?}");
    assert_eq!(stats.paused, Some(flag()));
    assert!(
        stats.oldest_age_ms.is_some_and(|ms| ms >= 1_500),
        "the oldest job has waited the 2 s: {stats:?}"
    );

    assert!(b.resume("jobs").await.unwrap(), "it was paused");
    assert!(
        !b.resume("jobs").await.unwrap(),
        "resuming twice is a no-op"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            seen.lock().len() == 21
        })
        .await,
        "handled after resume: {}",
        seen.lock().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut handled = seen.lock().clone();
    handled.sort();
    let before = handled.len();
    handled.dedup();
    assert_eq!(before, handled.len(), "each job handled once: {handled:?}");
    assert!(!sub_a.pause_state().is_paused() && !sub_b.pause_state().is_paused());
    let stats = a.stats("jobs").await.unwrap();
    assert_eq!(
        (stats.waiting, stats.paused, stats.oldest_age_ms),
        (0, None, None)
    );
    sub_a.shutdown().await.unwrap();
    sub_b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_running_when_the_pause_comes_finishes() {
    let ns = TestNs::new("qpause-run");
    let url = SecretUrl::parse(&ns.url, &["redis"]).unwrap();
    let q = queue::RedisQueue::connect(&url, ns.namespace(), "node-a", options())
        .await
        .unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let done: Seen = Arc::default();
    let h = {
        let (release, done) = (release.clone(), done.clone());
        handler(move |m| {
            let (release, done) = (release.clone(), done.clone());
            async move {
                release.notified().await;
                done.lock().push(m.id);
                Ok::<(), String>(())
            }
        })
    };
    let sub = q.subscribe("slow", 1, h).await.unwrap();
    q.publish("slow", b"1").await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats("slow").await.unwrap().in_flight == Some(1)
        })
        .await
    );
    q.pause("slow", &flag()).await.unwrap();
    q.publish("slow", b"2").await.unwrap();
    // The only slot is busy: the consumer reads the flag once it is free.
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.notify_one();
    assert!(
        eventually(Duration::from_secs(5), || async {
            let s = q.stats("slow").await.unwrap();
            done.lock().len() == 1 && s.in_flight == Some(0) && s.waiting == 1
        })
        .await,
        "the running handler finished and was acknowledged; the new job waits"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            sub.pause_state().is_paused()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(q.stats("slow").await.unwrap().waiting, 1, "still waiting");
    q.resume("slow").await.unwrap();
    release.notify_one();
    assert!(eventually(Duration::from_secs(5), || async { done.lock().len() == 2 }).await);
    sub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_in_process_queue_honours_a_pause() {
    let q = MemoryQueue::new(options());
    let seen: Seen = Arc::default();
    let sub = q.subscribe("jobs", 2, recording(&seen)).await.unwrap();
    q.pause("jobs", &flag()).await.unwrap();
    q.publish("jobs", b"a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.lock().is_empty());
    assert!(sub.pause_state().is_paused());
    assert_eq!(q.stats("jobs").await.unwrap().paused, Some(flag()));
    assert!(q.resume("jobs").await.unwrap());
    assert!(eventually(Duration::from_secs(5), || async { seen.lock().len() == 1 }).await);
    sub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_the_pause_and_the_oldest_waiting_job() {
    let ns = TestNs::new("qpause-insp");
    let mut vars = BTreeMap::new();
    vars.insert("CLUSTER_NAME".to_string(), ns.name.clone());
    vars.insert("QUEUE_ADAPTER".to_string(), "redis".to_string());
    vars.insert("QUEUE_ADAPTER_REDIS_URL".to_string(), ns.url.clone());
    let cfg = Config::from_vars(&vars).unwrap();
    let q = queue::from_config_with(&cfg, "n1", options())
        .await
        .unwrap();
    q.publish("mail", b"x").await.unwrap();
    q.pause("mail", &flag()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let snap = clusterops::inspect::Inspector::new(cfg).snapshot().await;
    let queues = snap.queues.ok().expect("queues read");
    let mail = queues.iter().find(|v| v.name == "mail").expect("mail");
    assert_eq!(mail.paused, Some(flag()));
    assert!(mail.oldest_age_ms.is_some_and(|ms| ms >= 1_000), "{mail:?}");
    assert!(snap.unreadable.is_empty(), "{:?}", snap.unreadable);
}
