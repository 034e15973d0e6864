//! A broker of a 3-node RabbitMQ cluster dies under load: three private
//! nodes (`ct-a/b/c-{pid}@localhost`, one cookie, joined with
//! `rabbitmqctl join_cluster`) and a quorum queue replicated on all three,
//! its leader on the node the first consumer declared it through. Two
//! consumers and a producer go through the clusterops RabbitMQ adapter with
//! multi-host URLs (`amqp://…@a,b,c/%2f`): the producer and one consumer
//! list the leader's node first (so they are connected to it), the other
//! consumer a survivor. The producer publishes a record every few
//! milliseconds; after a warm-up the leader's node is killed (kill -9 of
//! its process group). Publishing goes on for a while, then every record
//! whose `publish` returned Ok must be handled (`records_lost` = 0), both
//! consumers must handle records after the kill, publishes must be
//! acknowledged after it, and the queue must have a new leader on a
//! survivor. Reported: the cluster's boot and join times, the longest time
//! without a delivery and the longest publish while the broker died, and
//! the duplicates (records redelivered after the lost connection).

use crate::common::rabbit_cluster::RabbitCluster;
use crate::harness::{Budget, Report, Scenario};
use crate::procs;
use clusterops::adapters::queue::{MessageQueue, QueueOptions, RabbitQueue, Subscription, handler};
use clusterops::config::{Namespace, SecretUrl};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "rabbit_cluster",
    run,
};

/// Nodes of the cluster.
const NODES: usize = 3;
/// Boot and join must be done by then.
const FORM_LIMIT: Duration = Duration::from_secs(120);
/// Publishing before the kill, and after it.
const BEFORE_KILL: Duration = Duration::from_secs(3);
const AFTER_KILL: Duration = Duration::from_secs(10);
/// Time between two publishes of the producer.
const PUBLISH_EVERY: Duration = Duration::from_millis(5);
/// Handlers at once per consumer.
const CONCURRENCY: usize = 4;
/// Every acknowledged record must be handled within this time after the
/// producer stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const QUEUE: &str = "records";

fn options() -> QueueOptions {
    QueueOptions {
        // A publish rides through the election of a new leader and the
        // reconnection to another broker instead of failing.
        reconnect_timeout: Duration::from_secs(30),
        shutdown_timeout: Duration::from_secs(5),
        ..QueueOptions::default()
    }
}

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| {
        let started = Instant::now();
        let cluster = RabbitCluster::start(NODES, FORM_LIMIT)?;
        report.figure("cluster_boot_s", secs(cluster.boot));
        report.figure("cluster_join_s", secs(cluster.join));
        let result = procs::runtime()?.block_on(load(cluster, report));
        report.figure("seconds", secs(started.elapsed()));
        result
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// What the consumers saw: per record, how often it was handled; per
/// consumer, records handled after the kill; every first delivery's time.
#[derive(Default)]
struct Seen {
    handled: HashMap<String, u32>,
    after_kill: [usize; 2],
    firsts: Vec<Instant>,
}

async fn connect(url: &str, ns: &Namespace, node_id: &str) -> Result<RabbitQueue, String> {
    let url = SecretUrl::parse(url, &["amqp"])?;
    RabbitQueue::connect(&url, ns.clone(), node_id, options())
        .await
        .map_err(|e| format!("{node_id}: {e}"))
}

async fn subscribe(
    q: &RabbitQueue,
    who: usize,
    seen: &Arc<Mutex<Seen>>,
    killed: &Arc<Mutex<Option<Instant>>>,
) -> Result<Subscription, String> {
    let (seen, killed) = (seen.clone(), killed.clone());
    q.subscribe(
        QUEUE,
        CONCURRENCY,
        handler(move |msg| {
            let (seen, killed) = (seen.clone(), killed.clone());
            async move {
                let body = String::from_utf8_lossy(&msg.payload).to_string();
                let now = Instant::now();
                let after = killed.lock().is_some_and(|k| now > k);
                let mut s = seen.lock();
                let n = s.handled.entry(body).or_insert(0);
                *n += 1;
                if *n == 1 {
                    s.firsts.push(now);
                }
                if after {
                    s.after_kill[who] += 1;
                }
                Ok::<(), String>(())
            }
        }),
    )
    .await
    .map_err(|e| format!("subscribe: {e}"))
}

/// What the producer saw.
struct Published {
    acked: Vec<String>,
    /// Records whose publish returned an error (they may still arrive).
    refused: Vec<String>,
    acked_after_kill: usize,
    longest_publish: Duration,
}

async fn load(mut cluster: RabbitCluster, report: &mut Report) -> Result<(), String> {
    let ns = Namespace::new(&format!("t-rcl-{:08x}", rand::random::<u32>()))?;
    let main = format!("{}.{QUEUE}", ns.name());
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let killed: Arc<Mutex<Option<Instant>>> = Arc::default();

    // The first consumer declares the queue through node a: the leader
    // is placed there (client-local), with members on every node.
    let first = connect(&cluster.url(&[0, 1, 2]), &ns, "rc-consumer-0").await?;
    let sub0 = subscribe(&first, 0, &seen, &killed).await?;
    let place = cluster.quorum_place(0, &main)?;
    if place.members.len() != NODES {
        return Err(format!(
            "the quorum queue has members {:?}, not all {NODES} nodes",
            place.members
        ));
    }
    let victim = cluster
        .index_of(&place.leader)
        .ok_or_else(|| format!("leader {} is none of the nodes", place.leader))?;
    let survivor = (victim + 1) % NODES;
    let other = (victim + 2) % NODES;
    report.figure("leader_before", &place.leader);
    // One consumer on the broker that will die, one on a survivor: the
    // second goes to the leader's node if that is not node a.
    let (second_order, on_dead) = if victim == 0 {
        ([survivor, victim, other], 0)
    } else {
        ([victim, survivor, other], 1)
    };
    let second = connect(&cluster.url(&second_order), &ns, "rc-consumer-1").await?;
    let sub1 = subscribe(&second, 1, &seen, &killed).await?;
    let producer = connect(&cluster.url(&[victim, survivor, other]), &ns, "rc-producer").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let publishing = {
        let (stop, killed, producer) = (stop.clone(), killed.clone(), producer.clone());
        tokio::spawn(async move {
            let mut p = Published {
                acked: Vec::new(),
                refused: Vec::new(),
                acked_after_kill: 0,
                longest_publish: Duration::ZERO,
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                let body = format!("r{n}");
                let t0 = Instant::now();
                let result = producer.publish(QUEUE, body.as_bytes()).await;
                let took = t0.elapsed();
                if killed.lock().is_some() {
                    p.longest_publish = p.longest_publish.max(took);
                }
                match result {
                    Ok(_) => {
                        if killed.lock().is_some_and(|k| t0 > k) {
                            p.acked_after_kill += 1;
                        }
                        p.acked.push(body);
                    }
                    Err(e) => {
                        eprintln!("rabbit_cluster: publish refused after {took:?}: {e}");
                        p.refused.push(body);
                    }
                }
                n += 1;
                tokio::time::sleep(PUBLISH_EVERY).await;
            }
            p
        })
    };

    tokio::time::sleep(BEFORE_KILL).await;
    let handled_before = seen.lock().handled.len();
    let kill_at = Instant::now();
    *killed.lock() = Some(kill_at);
    cluster.nodes[victim].kill9();
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, Ordering::Release);
    let published = publishing
        .await
        .map_err(|e| format!("the producer task failed: {e}"))?;
    let stopped_at = Instant::now();

    let deadline = Instant::now() + DRAIN_LIMIT;
    let lost = loop {
        let lost = {
            let s = seen.lock();
            published
                .acked
                .iter()
                .filter(|r| !s.handled.contains_key(*r))
                .count()
        };
        if lost == 0 || Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drained_in = stopped_at.elapsed();
    let _ = sub0.shutdown().await;
    let _ = sub1.shutdown().await;
    let after = cluster.quorum_place(survivor, &main)?;

    let s = seen.lock();
    let duplicates: u32 = s.handled.values().map(|n| n - 1).sum();
    let attempted: HashSet<&String> = published.acked.iter().chain(&published.refused).collect();
    let unknown = s.handled.keys().filter(|r| !attempted.contains(r)).count();
    // The longest stretch without a new record handled, from just before
    // the kill to the producer's stop.
    let mut firsts: Vec<Instant> = s
        .firsts
        .iter()
        .copied()
        .filter(|t| *t <= stopped_at)
        .collect();
    firsts.sort();
    let window_start = firsts
        .iter()
        .rev()
        .find(|t| **t <= kill_at)
        .copied()
        .unwrap_or(kill_at);
    let no_delivery = firsts
        .iter()
        .filter(|t| **t >= window_start)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].duration_since(*w[0]))
        .max()
        .unwrap_or(AFTER_KILL);
    let first_after_kill = firsts
        .iter()
        .find(|t| **t > kill_at)
        .map(|t| t.duration_since(kill_at));

    report.figure("records", published.acked.len());
    report.figure("records_lost", lost);
    report.figure("duplicates", duplicates);
    report.figure("refused_publishes", published.refused.len());
    report.figure("handled_before_kill", handled_before);
    report.figure("acked_after_kill", published.acked_after_kill);
    report.figure(
        "handled_after_kill",
        format!("{}+{}", s.after_kill[on_dead], s.after_kill[1 - on_dead]),
    );
    report.figure("no_delivery_s", format!("{:.2}", no_delivery.as_secs_f64()));
    report.figure(
        "first_delivery_after_kill_s",
        first_after_kill.map_or("never".to_string(), |d| format!("{:.2}", d.as_secs_f64())),
    );
    report.figure(
        "longest_publish_s",
        format!("{:.2}", published.longest_publish.as_secs_f64()),
    );
    report.figure("drained_s", format!("{:.1}", drained_in.as_secs_f64()));
    report.figure("leader_after", &after.leader);

    if lost > 0 || unknown > 0 {
        return Err(format!(
            "{lost} acknowledged records never handled, {unknown} handled that were never published"
        ));
    }
    if handled_before == 0 {
        return Err("nothing was handled before the kill".into());
    }
    if published.acked_after_kill == 0 {
        return Err("no publish was acknowledged after the broker died".into());
    }
    if s.after_kill.contains(&0) {
        return Err(format!(
            "a consumer handled nothing after the broker died: {:?}",
            s.after_kill
        ));
    }
    if cluster.index_of(&after.leader).is_none_or(|i| i == victim) {
        return Err(format!(
            "the queue has no leader on a survivor: {} (online {:?})",
            after.leader, after.online
        ));
    }
    Ok(())
}
