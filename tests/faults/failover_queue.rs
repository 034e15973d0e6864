//! The queue half of the failover scenarios (`failover` on Sentinel,
//! `cluster_failover` on a Redis Cluster): a producer publishing through
//! the Redis queue adapter on the URL it is given every few milliseconds
//! and a consumer handling, both running through every failover. Afterwards every
//! message whose `publish` returned Ok must have been handled at least once
//! (a publish that failed, e.g. `NotReplicated` while the replica was
//! frozen, promised nothing).

use clusterops::adapters::queue::{MessageQueue, QueueOptions, RedisQueue, handler};
use clusterops::config::{Namespace, parse_redis_url};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const QUEUE: &str = "records";

/// The queue's stream key for the scenario namespace `ns` (the load uses
/// the namespace `<ns>-q`), to find the master that holds it.
pub fn stream_key(ns: &str) -> Result<String, String> {
    Ok(clusterops::adapters::queue::stream_key(
        &Namespace::new(&format!("{ns}-q"))?,
        QUEUE,
    ))
}

/// What the queue load saw.
pub struct QueueFigures {
    /// Publishes that returned Ok.
    pub acknowledged: usize,
    /// Publishes that returned an error (the caller would retry).
    pub refused: usize,
    /// Acknowledged messages never handled.
    pub lost: usize,
    /// Messages handled more than once.
    pub duplicates: usize,
    /// The longest a single `publish` call took (ms), refused or not.
    pub longest_publish_ms: u128,
}

impl QueueFigures {
    /// `records_acknowledged`, `records_refused`, `records_lost`,
    /// `records_duplicates`.
    pub fn report(&self, report: &mut crate::harness::Report) {
        report.figure("records_acknowledged", self.acknowledged);
        report.figure("records_refused", self.refused);
        report.figure("records_lost", self.lost);
        report.figure("records_duplicates", self.duplicates);
        report.figure("longest_publish_ms", self.longest_publish_ms);
    }

    /// Every acknowledged message handled, and some acknowledged.
    pub fn check(&self) -> Result<(), String> {
        if self.lost > 0 {
            return Err(format!(
                "{} of {} acknowledged queue messages were never handled",
                self.lost, self.acknowledged
            ));
        }
        if self.acknowledged == 0 {
            return Err("no queue message was acknowledged".into());
        }
        Ok(())
    }
}

/// The producer and consumer, on a runtime of their own.
pub struct QueueLoad {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<QueueFigures, String>>,
}

impl QueueLoad {
    /// Start publishing and consuming on `url` under namespace `<ns>-q`.
    pub fn start(url: &str, ns: &str) -> Result<Self, String> {
        let url = parse_redis_url(url)?;
        let ns = Namespace::new(&format!("{ns}-q"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = crate::procs::runtime()?;
            rt.block_on(async move {
                let options = QueueOptions::default();
                let consumer = RedisQueue::connect(&url, ns.clone(), "fo-consumer", options)
                    .await
                    .map_err(|e| e.to_string())?;
                let producer = RedisQueue::connect(&url, ns, "fo-producer", options)
                    .await
                    .map_err(|e| e.to_string())?;
                let seen: Arc<Mutex<(HashSet<String>, usize)>> = Arc::default();
                let s2 = seen.clone();
                let sub = consumer
                    .subscribe(
                        QUEUE,
                        4,
                        handler(move |msg| {
                            let seen = s2.clone();
                            async move {
                                let body = String::from_utf8_lossy(&msg.payload).to_string();
                                let mut s = seen.lock();
                                if !s.0.insert(body) {
                                    s.1 += 1;
                                }
                                Ok::<(), String>(())
                            }
                        }),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let (mut acked, mut refused, mut n) = (Vec::new(), 0usize, 0u64);
                let mut longest = Duration::ZERO;
                while !stop2.load(Ordering::Acquire) {
                    let body = format!("m{n}");
                    let sent = Instant::now();
                    match producer.publish(QUEUE, body.as_bytes()).await {
                        Ok(_) => acked.push(body),
                        Err(_) => refused += 1,
                    }
                    longest = longest.max(sent.elapsed());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Every acknowledged message handled, within a bound.
                let deadline = Instant::now() + Duration::from_secs(60);
                let missing = loop {
                    let missing = {
                        let s = seen.lock();
                        acked.iter().filter(|m| !s.0.contains(*m)).count()
                    };
                    if missing == 0 || Instant::now() > deadline {
                        break missing;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                let _ = sub.shutdown().await;
                let duplicates = seen.lock().1;
                Ok(QueueFigures {
                    acknowledged: acked.len(),
                    refused,
                    lost: missing,
                    duplicates,
                    longest_publish_ms: longest.as_millis(),
                })
            })
        });
        Ok(Self { stop, thread })
    }

    /// Stop publishing, wait until every acknowledged message was handled
    /// (or a minute passed), and count.
    pub fn finish(self) -> Result<QueueFigures, String> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| "the queue load thread panicked".to_string())?
    }
}
