//! `clusterops bench lock --contenders N[,N…]`: one Redis lock taken over
//! and over by N contenders, each on its own `RedisLock` (its own
//! connection and release subscription, as separate nodes would be), none
//! doing work while holding it. For each N it reports hand-overs per
//! second (an acquire by another contender than the last holder), the
//! hand-over latency (from the last holder's release call to the next
//! holder's acquire returning), the wait of each acquire, and
//! `starvation` = the longest wait over the mean wait. The baseline is the
//! uncontended rate: one client alone doing acquire+release, measured
//! right before each point of the curve.

use clusterops::adapters::lock::{self, LockBackend, LockError, RedisLock};
use clusterops::adapters::redis_conn;
use clusterops::config::{Namespace, SecretUrl};
use color_eyre::eyre::{Result, eyre};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Lock TTL (never reached: every holder releases at once).
const TTL: Duration = Duration::from_secs(10);
/// How long one acquire may wait before it counts as a timeout.
const WAIT: Duration = Duration::from_secs(10);
/// Not measured at the start of each point (connections, subscriptions,
/// script loading).
const WARMUP: Duration = Duration::from_millis(500);
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

/// Acquire+release per second of one client alone, for `secs`.
async fn uncontended(url: &SecretUrl, secs: Duration) -> Result<f64> {
    let ns = bench_ns()?;
    let lock = RedisLock::connect(url, ns.clone(), "bench-alone").await?;
    let warm_end = Instant::now() + WARMUP;
    while Instant::now() < warm_end {
        lock.acquire("bench", TTL, WAIT).await?.release().await?;
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < secs {
        lock.acquire("bench", TTL, WAIT).await?.release().await?;
        ops += 1;
    }
    let rate = ops as f64 / start.elapsed().as_secs_f64();
    cleanup(url, &ns, "bench").await?;
    Ok(rate)
}

/// One point of the curve: `n` contenders for `secs` after the warm-up.
async fn contended(url: &SecretUrl, n: usize, secs: Duration) -> Result<serde_json::Value> {
    let ns = bench_ns()?;
    let mut locks = Vec::with_capacity(n);
    for i in 0..n {
        locks.push(RedisLock::connect(url, ns.clone(), format!("bench-c{i}")).await?);
    }
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let window_start = begin + WARMUP;
    let window_end = window_start + secs;
    let mut tasks = Vec::with_capacity(n);
    for (me, lock) in locks.into_iter().enumerate() {
        let (record, stop) = (Arc::clone(&record), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let asked = Instant::now();
                let guard = match lock.acquire("bench", TTL, WAIT).await {
                    Ok(guard) => guard,
                    Err(LockError::Timeout { .. }) => {
                        let mut r = record.lock();
                        if asked >= window_start {
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
                    if asked >= window_start && asked < window_end {
                        r.waits_us.push((got - asked).as_secs_f64() * 1e6);
                    }
                    if got >= window_start && got < window_end {
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
            Ok::<(), LockError>(())
        }));
    }
    tokio::time::sleep_until(window_end.into()).await;
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await.map_err(|e| eyre!("contender task: {e}"))??;
    }
    cleanup(url, &ns, "bench").await?;

    let mut r = std::mem::take(&mut *record.lock());
    r.handover_us.sort_by(f64::total_cmp);
    r.waits_us.sort_by(f64::total_cmp);
    let window = secs.as_secs_f64();
    let mean_wait = r.waits_us.iter().sum::<f64>() / (r.waits_us.len().max(1) as f64);
    let max_wait = r.waits_us.last().copied().unwrap_or(0.0);
    Ok(json!({
        "contenders": n,
        "handovers_per_sec": r1(r.handover_us.len() as f64 / window),
        "acquisitions_per_sec": r1(r.acquisitions as f64 / window),
        "handover_p50_us": r1(pct(&r.handover_us, 0.50)),
        "handover_p99_us": r1(pct(&r.handover_us, 0.99)),
        "wait_mean_us": r1(mean_wait),
        "wait_p99_us": r1(pct(&r.waits_us, 0.99)),
        "wait_max_us": r1(max_wait),
        "starvation": r3(if mean_wait > 0.0 { max_wait / mean_wait } else { 0.0 }),
        "timeouts": r.timeouts,
    }))
}

/// The contended bench over `contenders` (each point `secs` long).
pub async fn run(url: &SecretUrl, contenders: &[usize], secs: Duration) -> Result<i32> {
    if contenders.iter().any(|n| !(1..=256).contains(n)) {
        return Err(eyre!("--contenders: each count must be 1 to 256"));
    }
    let mut curve = Vec::new();
    for &n in contenders {
        let alone = uncontended(url, secs).await?;
        let mut point = contended(url, n, secs).await?;
        let rate = point["handovers_per_sec"].as_f64().unwrap_or(0.0);
        point["uncontended_ops_per_sec"] = json!(r1(alone));
        point["ratio_vs_uncontended"] = json!(r3(rate / alone.max(1e-9)));
        curve.push(point);
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
