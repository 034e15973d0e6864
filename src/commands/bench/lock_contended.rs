//! `clusterops bench lock --contenders N[,N…]`: one Redis lock taken over
//! and over by N contenders, each on its own `RedisLock` (its own
//! connection and release subscription, as separate nodes would be), none
//! doing work while holding it. For each N it reports hand-overs per
//! second (an acquire by another contender than the last holder), the
//! hand-over latency (from the last holder's release call to the next
//! holder's acquire returning), the wait of each acquire, and
//! `starvation` = the longest wait over the mean wait, next to what explains
//! it (the slowest hand-over, the hand-overs over 1 ms) and the fairness
//! between contenders (the worst contender's mean wait over the mean, the
//! fewest acquisitions over an equal share). The baseline is the
//! uncontended rate: one client alone doing acquire+release on another
//! lock, measured in blocks of 0.25 s alternating with the contended ones
//! (both sides see the same background load on a shared machine).

use clusterops::adapters::lock::{self, LockBackend, LockError, RedisLock};
use clusterops::adapters::redis_conn;
use clusterops::config::{Namespace, SecretUrl};
use color_eyre::eyre::{Result, eyre};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Lock TTL (never reached: every holder releases at once).
const TTL: Duration = Duration::from_secs(10);
/// How long one acquire may wait before it counts as a timeout.
const WAIT: Duration = Duration::from_secs(10);
/// Not measured at the start of each point (connections, subscriptions,
/// script loading), on each side.
const WARMUP: Duration = Duration::from_millis(500);
/// The contended and the uncontended side alternate in blocks of about
/// this long.
const BLOCK: Duration = Duration::from_millis(250);
/// A hand-over slower than this (µs) is counted: every waiter queued at
/// that moment absorbs it, so the longest waits are made of these.
const SLOW_HANDOVER_US: f64 = 1000.0;
/// The goals at [`GOAL_AT`] contenders.
const GOAL_AT: usize = 8;
const GOAL_RATIO: f64 = 0.6;
const GOAL_STARVATION: f64 = 3.0;
/// The rate "does not fall" as N grows when each point keeps at least this
/// share of the best rate at a smaller N (noise on a shared machine).
const NOT_FALLING: f64 = 0.9;

/// What the contenders record while the lock passes between them.
#[derive(Default)]
struct Record {
    /// The last holder and when it called release.
    last: Option<(usize, Instant)>,
    /// Hand-over latencies in µs (holder changed), inside the window.
    handover_us: Vec<f64>,
    /// Acquisitions inside the window (hand-overs plus re-takes by the
    /// same contender).
    acquisitions: u64,
    /// Waits in µs of acquires that started inside the window.
    waits_us: Vec<f64>,
    /// Per contender: acquisitions and the sum of their waits in µs
    /// (acquires that started inside the window).
    per: Vec<(u64, f64)>,
    timeouts: u64,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn bench_ns() -> Result<Namespace> {
    Namespace::new(&format!("bench-lock-{:08x}", rand::random::<u32>()))
        .map_err(|why| eyre!("bench namespace: {why}"))
}

/// Delete every key of lock `name` under `ns` (they share one slot).
async fn cleanup(url: &SecretUrl, ns: &Namespace, name: &str) -> Result<()> {
    let mut raw = redis_conn::connect(url).await?;
    let keys = [
        lock::lock_key(ns, name),
        lock::fence_key(ns, name),
        lock::wait_key(ns, name),
        lock::wait_until_key(ns, name),
    ];
    let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut raw).await?;
    Ok(())
}

/// Acquire+release of one client alone on `lock` for `block`: operations done.
async fn alone_block(lock: &RedisLock, block: Duration) -> Result<u64> {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < block {
        lock.acquire("bench-alone", TTL, WAIT)
            .await?
            .release()
            .await?;
        ops += 1;
    }
    Ok(ops)
}

/// One contender: while `running`, take the lock and release it at once,
/// recording into `record` while `measuring`; exits when `running`'s
/// sender is dropped.
async fn contender(
    me: usize,
    lock: RedisLock,
    mut running: watch::Receiver<bool>,
    measuring: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
) -> Result<(), LockError> {
    while running.wait_for(|r| *r).await.is_ok() {
        while *running.borrow() {
            let asked = Instant::now();
            let measured = measuring.load(Ordering::Acquire);
            let guard = match lock.acquire("bench", TTL, WAIT).await {
                Ok(guard) => guard,
                Err(LockError::Timeout { .. }) => {
                    if measured {
                        let mut r = record.lock();
                        r.timeouts += 1;
                        r.waits_us.push(asked.elapsed().as_secs_f64() * 1e6);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let got = Instant::now();
            {
                let mut r = record.lock();
                if measured {
                    let wait = (got - asked).as_secs_f64() * 1e6;
                    r.waits_us.push(wait);
                    if let Some(mine) = r.per.get_mut(me) {
                        mine.0 += 1;
                        mine.1 += wait;
                    }
                }
                if measuring.load(Ordering::Acquire) {
                    r.acquisitions += 1;
                    if let Some((last, released)) = r.last
                        && last != me
                    {
                        r.handover_us.push((got - released).as_secs_f64() * 1e6);
                    }
                }
                r.last = Some((me, Instant::now()));
            }
            guard.release().await?;
        }
    }
    Ok(())
}

/// One point of the curve: `n` contenders against one client alone, in
/// alternating blocks of about [`BLOCK`] (after a warm-up of each), `secs`
/// measured on each side, so that both see the same background load.
async fn point(url: &SecretUrl, n: usize, secs: Duration) -> Result<serde_json::Value> {
    let ns = bench_ns()?;
    let alone = RedisLock::connect(url, ns.clone(), "bench-alone").await?;
    let record = Arc::new(Mutex::new(Record {
        per: vec![(0, 0.0); n],
        ..Record::default()
    }));
    let measuring = Arc::new(AtomicBool::new(false));
    let (running, rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(n);
    for me in 0..n {
        let lock = RedisLock::connect(url, ns.clone(), format!("bench-c{me}")).await?;
        let (rx, measuring, record) = (rx.clone(), measuring.clone(), record.clone());
        tasks.push(tokio::spawn(contender(me, lock, rx, measuring, record)));
    }
    // Warm-up: connections, subscriptions, scripts.
    alone_block(&alone, WARMUP).await?;
    running.send_replace(true);
    tokio::time::sleep(WARMUP).await;
    running.send_replace(false);

    let rounds = (secs.as_secs_f64() / BLOCK.as_secs_f64()).ceil().max(1.0) as u32;
    let block = secs / rounds;
    let (mut alone_ops, mut alone_time, mut contended_time) =
        (0u64, Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                let start = Instant::now();
                alone_ops += alone_block(&alone, block).await?;
                alone_time += start.elapsed();
            } else {
                record.lock().last = None;
                let start = Instant::now();
                measuring.store(true, Ordering::Release);
                running.send_replace(true);
                tokio::time::sleep(block).await;
                measuring.store(false, Ordering::Release);
                contended_time += start.elapsed();
                running.send_replace(false);
                // Let the queued contenders drain before the client alone
                // runs.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    drop(running);
    for task in tasks {
        task.await.map_err(|e| eyre!("contender task: {e}"))??;
    }
    cleanup(url, &ns, "bench").await?;
    cleanup(url, &ns, "bench-alone").await?;

    let mut r = std::mem::take(&mut *record.lock());
    r.handover_us.sort_by(f64::total_cmp);
    r.waits_us.sort_by(f64::total_cmp);
    let window = contended_time.as_secs_f64();
    let alone_rate = alone_ops as f64 / alone_time.as_secs_f64().max(1e-9);
    let rate = r.handover_us.len() as f64 / window;
    let mean_wait = r.waits_us.iter().sum::<f64>() / (r.waits_us.len().max(1) as f64);
    let max_wait = r.waits_us.last().copied().unwrap_or(0.0);
    // Fairness between contenders: the mean wait of the contender that
    // waited most on average, over the mean wait of all (1.0: every
    // contender waited alike), and the fewest acquisitions of any
    // contender over an equal share.
    let total: u64 = r.per.iter().map(|p| p.0).sum();
    let worst_contender = r
        .per
        .iter()
        .filter(|p| p.0 > 0)
        .map(|p| p.1 / p.0 as f64)
        .fold(0.0, f64::max);
    let fewest = r.per.iter().map(|p| p.0).min().unwrap_or(0);
    let fair_share = total as f64 / n.max(1) as f64;
    let slow = r
        .handover_us
        .iter()
        .filter(|h| **h > SLOW_HANDOVER_US)
        .count();
    Ok(json!({
        "contenders": n,
        "handovers_per_sec": r1(rate),
        "acquisitions_per_sec": r1(r.acquisitions as f64 / window),
        "uncontended_ops_per_sec": r1(alone_rate),
        "ratio_vs_uncontended": r3(rate / alone_rate.max(1e-9)),
        "handover_p50_us": r1(pct(&r.handover_us, 0.50)),
        "handover_p99_us": r1(pct(&r.handover_us, 0.99)),
        "wait_mean_us": r1(mean_wait),
        "wait_p99_us": r1(pct(&r.waits_us, 0.99)),
        "wait_max_us": r1(max_wait),
        "starvation": r3(if mean_wait > 0.0 { max_wait / mean_wait } else { 0.0 }),
        "handover_max_us": r1(r.handover_us.last().copied().unwrap_or(0.0)),
        "handovers_over_1ms": slow,
        "worst_contender_wait_vs_mean": r3(if mean_wait > 0.0 { worst_contender / mean_wait } else { 0.0 }),
        "fewest_acquisitions_vs_fair_share": r3(if fair_share > 0.0 { fewest as f64 / fair_share } else { 0.0 }),
        "timeouts": r.timeouts,
        "blocks_per_side": rounds,
    }))
}

/// The contended bench over `contenders` (each point `secs` long).
pub async fn run(url: &SecretUrl, contenders: &[usize], secs: Duration) -> Result<i32> {
    if contenders.iter().any(|n| !(1..=256).contains(n)) {
        return Err(eyre!("--contenders: each count must be 1 to 256"));
    }
    let mut curve = Vec::new();
    for &n in contenders {
        curve.push(point(url, n, secs).await?);
    }
    let mut falls = false;
    let mut best: f64 = 0.0;
    for p in &curve {
        let rate = p["handovers_per_sec"].as_f64().unwrap_or(0.0);
        if best > 0.0 && rate < NOT_FALLING * best {
            falls = true;
        }
        best = best.max(rate);
    }
    let at_goal = curve
        .iter()
        .find(|p| p["contenders"].as_u64() == Some(GOAL_AT as u64));
    let meets = at_goal.map(|p| {
        p["ratio_vs_uncontended"].as_f64().unwrap_or(0.0) >= GOAL_RATIO
            && p["starvation"].as_f64().unwrap_or(f64::MAX) <= GOAL_STARVATION
            && !falls
    });
    let out = json!({
        "bench": "lock",
        "mode": "contended",
        "redis": url.masked(),
        "seconds_per_point": secs.as_secs_f64(),
        "curve": curve,
        "rate_falls_as_contenders_grow": falls,
        "target": {
            "at_contenders": GOAL_AT,
            "ratio_vs_uncontended_min": GOAL_RATIO,
            "starvation_max": GOAL_STARVATION,
            "rate_not_below_share_of_best_smaller_n": NOT_FALLING,
        },
        "meets_target": meets,
    });
    println!("{out}");
    Ok(0)
}
