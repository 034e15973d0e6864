//! Metadata that piles up, on a private Redis: sync signals and queue
//! messages flow steadily between live nodes (one of them a slow reader
//! that also restarts once) while short-lived nodes join, consume and
//! crash every few seconds, leaving queue consumers (some with entries
//! pending) and sync-signal cursors behind. Two live nodes run the janitor.
//!
//! Promises: no live reader misses a signal (duplicates after its restart
//! are allowed), no queue message is lost, the streams stay bounded
//! (trimmed at the slowest live cursor, not at the total published), and
//! the dead nodes' consumers and cursors all go. Figures: publishes, the
//! signal stream's length and `MEMORY USAGE`, and the server's
//! `used_memory` at start, peak and end.

use crate::common::PrivateRedis;
use crate::harness::{Budget, Report, Scenario};
use crate::procs;
use clusterops::adapters::pubsub::{
    Payload, RedisSignals, RedisSignalsOptions, SubscribeOptions, SyncSignals,
};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions, RedisQueue};
use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::config::{Namespace, SecretUrl, parse_redis_url};
use clusterops::node::janitor::{Janitor, JanitorOptions};
use clusterops::node::metrics::Metrics;
use clusterops::node::registry::{NodeRecord, Registry};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "metadata_soak",
    run,
};

/// How long messages flow in the default (CI) run, and per soak round.
const CI_RUN: Duration = Duration::from_secs(15);
const SOAK_ROUND: Duration = Duration::from_secs(300);
/// Signals and queue messages published per 100 ms.
const SIGNALS_PER_TICK: u64 = 40;
const JOBS_PER_TICK: u64 = 10;
/// A short-lived node is started this often and crashes after `DEAD_LIFE`.
const DEAD_EVERY: Duration = Duration::from_secs(3);
const DEAD_LIFE: Duration = Duration::from_millis(1500);
/// The slow reader spends this long on each signal (below the publish
/// rate) in its slow phases: signals whose number divided by `PHASE` is
/// even; it catches up in the others, so its lag stays bounded in a soak.
const SLOW: Duration = Duration::from_millis(3);
const PHASE: u64 = 4000;
const CHANNEL: &str = "events";
const QUEUE: &str = "jobs";
const HEARTBEAT: Duration = Duration::from_millis(500);

fn janitor_options() -> JanitorOptions {
    JanitorOptions {
        every: Duration::from_secs(1),
        consumer_idle: Duration::from_secs(3),
        cursor_idle: Duration::from_secs(3),
    }
}

fn signal_options() -> RedisSignalsOptions {
    RedisSignalsOptions {
        keep_recent: Duration::from_secs(2),
        ..RedisSignalsOptions::default()
    }
}

fn queue_options() -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_secs(1),
        poll_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(2),
        ..QueueOptions::default()
    }
}

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| {
        let redis = PrivateRedis::start();
        let rt = procs::runtime()?;
        let length = if budget.is_soak() { SOAK_ROUND } else { CI_RUN };
        rt.block_on(scenario(&redis.url(), length, report))
    })
}

use clusterops::clock::now_ms;

/// Heartbeat `id` into the registry (TTL three heartbeats) until aborted.
fn heartbeat(mut conn: SharedConn, ns: Namespace, id: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let registry = Registry::new(ns, HEARTBEAT * 3);
        let started = now_ms();
        loop {
            let record = NodeRecord {
                node_id: id.clone(),
                host: "soak".into(),
                http_addr: "127.0.0.1:9".into(),
                pid: std::process::id(),
                app_version: "1".into(),
                schema_version: None,
                worker_id: None,
                state: "running".into(),
                state_reason: "ready".into(),
                started_at_ms: started,
                heartbeat_at_ms: now_ms(),
                config_fingerprint: "soak".into(),
                config_parts: Default::default(),
                storage_shared: None,
                storage_reason: None,
                clock_offset: None,
                worker_mode: Default::default(),
                process: None,
            };
            let _ = registry.heartbeat(&mut conn, &record).await;
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
}

/// What a live reader saw: the next signal number it expects, and the
/// numbers it never got.
#[derive(Default)]
struct Seen {
    next: AtomicU64,
    missed: AtomicU64,
}

/// Read `CHANNEL` as node `id` until the subscription ends, noting gaps.
async fn read_signals(signals: &RedisSignals, seen: Arc<Seen>, slow: bool) -> JoinHandle<()> {
    let mut sub = signals
        .subscribe(CHANNEL, SubscribeOptions::default())
        .await
        .expect("subscribe");
    tokio::spawn(async move {
        while let Some(s) = sub.recv().await {
            let Payload::Json(v) = s.payload else {
                continue;
            };
            let Some(n) = v.as_u64() else { continue };
            let next = seen.next.load(Ordering::SeqCst);
            if n > next {
                seen.missed.fetch_add(n - next, Ordering::SeqCst);
            }
            if n >= next {
                seen.next.store(n + 1, Ordering::SeqCst);
            }
            if slow && (n / PHASE).is_multiple_of(2) {
                tokio::time::sleep(SLOW).await;
            }
        }
    })
}

/// Consume `QUEUE` as node `id`; handled message numbers go to `handled`.
async fn consume(
    url: &SecretUrl,
    ns: &Namespace,
    id: &str,
    handled: Arc<Mutex<HashSet<u64>>>,
    delay: Duration,
) -> Result<queue::Subscription, String> {
    let q = RedisQueue::connect(url, ns.clone(), id, queue_options())
        .await
        .map_err(|e| e.to_string())?;
    let h = queue::handler(move |m: queue::Message| {
        let handled = handled.clone();
        async move {
            tokio::time::sleep(delay).await;
            if let Some(n) = m.text().and_then(|t| t.parse::<u64>().ok()) {
                handled.lock().insert(n);
            }
            Ok::<(), String>(())
        }
    });
    q.subscribe(QUEUE, 2, h).await.map_err(|e| e.to_string())
}

/// A short-lived node until its crash: when, its heartbeat, its queue
/// consumer, its sync signals and its signal reader.
type Dying = (
    Instant,
    JoinHandle<()>,
    queue::Subscription,
    RedisSignals,
    JoinHandle<()>,
);

/// One sample of what Redis holds.
#[derive(Clone, Copy, Default)]
struct Sample {
    stream_len: u64,
    stream_bytes: u64,
    used_memory: u64,
    queue_len: u64,
}

async fn sample(conn: &mut SharedConn, ns: &Namespace) -> Sample {
    let skey = clusterops::adapters::pubsub::redis::stream_key(ns, CHANNEL);
    let qkey = queue::stream_key(ns, QUEUE);
    let mut pipe = redis::pipe();
    pipe.ignore_errors()
        .cmd("XLEN")
        .arg(&skey)
        .cmd("MEMORY")
        .arg("USAGE")
        .arg(&skey)
        .cmd("INFO")
        .arg("memory")
        .cmd("XLEN")
        .arg(&qkey);
    let replies: Vec<redis::Value> = pipe.query_async(conn).await.unwrap_or_default();
    let int = |i: usize| -> u64 {
        replies
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
            .unwrap_or(0)
    };
    let info: String = replies
        .get(2)
        .and_then(|v| redis::from_redis_value_ref(v).ok())
        .unwrap_or_default();
    let used_memory = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Sample {
        stream_len: int(0),
        stream_bytes: int(1),
        used_memory,
        queue_len: int(3),
    }
}

/// Dead nodes' entries left: queue consumers and signal cursors of nodes
/// other than `live`.
async fn leftovers(conn: &mut SharedConn, ns: &Namespace, live: &[&str]) -> (usize, usize) {
    let qkey = queue::stream_key(ns, QUEUE);
    let ckey = clusterops::adapters::pubsub::redis::cursors_key(ns, CHANNEL);
    let rows: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&qkey)
        .arg(queue::REDIS_GROUP)
        .query_async(conn)
        .await
        .unwrap_or_default();
    let consumers = rows
        .iter()
        .filter_map(|r| {
            let m: std::collections::HashMap<String, redis::Value> =
                redis::from_redis_value_ref(r).ok()?;
            redis::from_redis_value_ref::<String>(m.get("name")?).ok()
        })
        .filter(|name| !live.contains(&queue::consumer_node(name)))
        .count();
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&ckey)
        .query_async(conn)
        .await
        .unwrap_or_default();
    let cursors = fields
        .iter()
        .filter(|f| !live.contains(&f.as_str()))
        .count();
    (consumers, cursors)
}

async fn scenario(raw_url: &str, length: Duration, report: &mut Report) -> Result<(), String> {
    let url = parse_redis_url(raw_url)?;
    let ns = Namespace::new("soak")?;
    let mut conn = redis_conn::connect(&url).await.map_err(|e| e.to_string())?;
    let handled: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let live_ids = ["live-a", "live-b", "live-slow"];
    let mut beats = Vec::new();
    let mut readers = Vec::new();
    let mut seen = Vec::new();
    let mut signals = Vec::new();
    let mut queue_subs = Vec::new();
    for id in live_ids {
        beats.push(heartbeat(conn.clone(), ns.clone(), id.to_string()));
        let s = RedisSignals::connect_with(&url, ns.clone(), id, signal_options())
            .await
            .map_err(|e| e.to_string())?;
        let st = Arc::new(Seen::default());
        readers.push(read_signals(&s, st.clone(), id == "live-slow").await);
        seen.push(st);
        signals.push(s);
        queue_subs.push(consume(&url, &ns, id, handled.clone(), Duration::ZERO).await?);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let janitor_metrics: Vec<Arc<Metrics>> = (0..2).map(|_| Arc::new(Metrics::default())).collect();
    for (id, m) in live_ids.iter().zip(&janitor_metrics) {
        let j = Janitor::new(
            *id,
            ns.clone(),
            conn.clone(),
            Some(conn.clone()),
            Some(conn.clone()),
            janitor_options(),
        );
        tokio::spawn(j.run_counting(m.clone(), stop.clone()));
    }
    tokio::time::sleep(HEARTBEAT).await;
    let start = sample(&mut conn, &ns).await;
    let mut peak = start;
    // The most entries the stream held beyond what the slowest live reader
    // still needed (dead cursors, the keep window, trimming granularity).
    let mut beyond_live = 0u64;

    let publisher = RedisSignals::connect_with(&url, ns.clone(), "publisher", signal_options())
        .await
        .map_err(|e| e.to_string())?;
    let producer = RedisQueue::connect(&url, ns.clone(), "publisher", queue_options())
        .await
        .map_err(|e| e.to_string())?;
    let (mut signals_sent, mut jobs_sent, mut dead_nodes) = (0u64, 0u64, 0u64);
    let began = Instant::now();
    let mut next_dead = began;
    let mut next_sample = began;
    let mut restarted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // A late tick is not made up with a burst: the rate stays at most nominal.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dying: Vec<Dying> = Vec::new();
    while began.elapsed() < length {
        tick.tick().await;
        for _ in 0..SIGNALS_PER_TICK {
            publisher
                .publish(CHANNEL, serde_json::json!(signals_sent).into())
                .await
                .map_err(|e| e.to_string())?;
            signals_sent += 1;
        }
        for _ in 0..JOBS_PER_TICK {
            producer
                .publish(QUEUE, jobs_sent.to_string().as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            jobs_sent += 1;
        }
        let now = Instant::now();
        if now >= next_dead {
            next_dead = now + DEAD_EVERY;
            dead_nodes += 1;
            let id = format!("dead-{dead_nodes}");
            let beat = heartbeat(conn.clone(), ns.clone(), id.clone());
            let s = RedisSignals::connect_with(&url, ns.clone(), id.as_str(), signal_options())
                .await
                .map_err(|e| e.to_string())?;
            let reader = read_signals(&s, Arc::new(Seen::default()), false).await;
            // A slow handler: the crash leaves entries pending.
            let q = consume(&url, &ns, &id, handled.clone(), Duration::from_millis(300)).await?;
            dying.push((now + DEAD_LIFE, beat, q, s, reader));
        }
        // Crash the nodes whose time is up: no clean leave anywhere.
        let (gone, kept): (Vec<_>, Vec<_>) = dying.into_iter().partition(|d| d.0 <= now);
        dying = kept;
        for (_, beat, q, s, reader) in gone {
            beat.abort();
            q.abort();
            reader.abort();
            drop(s);
        }
        if !restarted && began.elapsed() >= length / 2 {
            // The slow reader restarts: it resumes at its cursor.
            restarted = true;
            let slow = signals.pop().ok_or("no slow reader")?;
            if let Some(r) = readers.pop() {
                r.abort();
            }
            slow.shutdown().await;
            let s = RedisSignals::connect_with(&url, ns.clone(), "live-slow", signal_options())
                .await
                .map_err(|e| e.to_string())?;
            readers.push(read_signals(&s, seen[2].clone(), true).await);
            signals.push(s);
        }
        if now >= next_sample {
            next_sample = now + Duration::from_millis(500);
            let s = sample(&mut conn, &ns).await;
            let slowest = seen.iter().map(|s| s.next.load(Ordering::SeqCst)).min();
            let needed = signals_sent.saturating_sub(slowest.unwrap_or(signals_sent));
            beyond_live = beyond_live.max(s.stream_len.saturating_sub(needed));
            peak.stream_len = peak.stream_len.max(s.stream_len);
            peak.stream_bytes = peak.stream_bytes.max(s.stream_bytes);
            peak.used_memory = peak.used_memory.max(s.used_memory);
            peak.queue_len = peak.queue_len.max(s.queue_len);
        }
    }
    for (_, beat, q, s, reader) in dying {
        beat.abort();
        q.abort();
        reader.abort();
        drop(s);
    }
    let flowed = began.elapsed();

    // Everything delivered, and every dead node's consumer and cursor gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut consumers_left, mut cursors_left);
    loop {
        (consumers_left, cursors_left) = leftovers(&mut conn, &ns, &live_ids).await;
        let read_all = seen
            .iter()
            .all(|s| s.next.load(Ordering::SeqCst) >= signals_sent);
        let jobs_done = handled.lock().len() as u64 >= jobs_sent;
        if read_all && jobs_done && consumers_left == 0 && cursors_left == 0 {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Past the keep window, a few more publishes trim what every reader
    // has (every 16th publish trims).
    tokio::time::sleep(signal_options().keep_recent + Duration::from_millis(500)).await;
    for _ in 0..32 {
        publisher
            .publish(CHANNEL, serde_json::json!(signals_sent).into())
            .await
            .map_err(|e| e.to_string())?;
        signals_sent += 1;
    }
    let end = sample(&mut conn, &ns).await;
    let _ = stop_tx.send(true);
    for b in &beats {
        b.abort();
    }
    let missed: u64 = seen.iter().map(|s| s.missed.load(Ordering::SeqCst)).sum();
    let lost = jobs_sent.saturating_sub(handled.lock().len() as u64);
    let sum = |f: fn(&Metrics) -> &AtomicU64| -> u64 {
        janitor_metrics
            .iter()
            .map(|m| f(m).load(Ordering::SeqCst))
            .sum()
    };
    report.figure("flowed_s", format!("{:.0}", flowed.as_secs_f64()));
    report.figure("signals", signals_sent);
    report.figure("jobs", jobs_sent);
    report.figure("dead_nodes", dead_nodes);
    report.figure(
        "stream_len",
        format!(
            "{}/{}/{}",
            start.stream_len, peak.stream_len, end.stream_len
        ),
    );
    report.figure(
        "stream_kb",
        format!(
            "{}/{}/{}",
            start.stream_bytes / 1024,
            peak.stream_bytes / 1024,
            end.stream_bytes / 1024
        ),
    );
    report.figure(
        "used_memory_kb",
        format!(
            "{}/{}/{}",
            start.used_memory / 1024,
            peak.used_memory / 1024,
            end.used_memory / 1024
        ),
    );
    report.figure("beyond_live_peak", beyond_live);
    report.figure("queue_len_peak", peak.queue_len);
    report.figure("missed", missed);
    report.figure("lost", lost);
    report.figure("consumers_removed", sum(|m| &m.janitor_consumers_removed));
    report.figure("cursors_removed", sum(|m| &m.janitor_cursors_removed));
    report.figure("consumers_left", consumers_left);
    report.figure("cursors_left", cursors_left);
    for s in signals {
        s.shutdown().await;
    }
    publisher.shutdown().await;
    for q in queue_subs {
        let _ = q.shutdown().await;
    }
    if missed > 0 {
        return Err(format!("live readers missed {missed} signals"));
    }
    if lost > 0 {
        return Err(format!("{lost} queue messages were never handled"));
    }
    if consumers_left > 0 || cursors_left > 0 {
        return Err(format!(
            "dead nodes left {consumers_left} consumers and {cursors_left} cursors"
        ));
    }
    // Per second: 10 ticks of SIGNALS_PER_TICK. A dead cursor holds the
    // stream for at most cursor_idle plus two janitor periods; the keep
    // window and 4 s of slack (sampling, a janitor late on a loaded
    // machine, macro-node granularity) on top.
    let j = janitor_options();
    let window =
        j.cursor_idle + j.every * 2 + signal_options().keep_recent + Duration::from_secs(4);
    let bound = SIGNALS_PER_TICK * 10 * window.as_secs();
    if beyond_live > bound {
        return Err(format!(
            "the signal stream held {beyond_live} entries no live reader needed (bound {bound}): \
             dead readers pin it"
        ));
    }
    if end.stream_len > 1000 {
        return Err(format!(
            "the signal stream kept {} entries after every reader caught up",
            end.stream_len
        ));
    }
    Ok(())
}
