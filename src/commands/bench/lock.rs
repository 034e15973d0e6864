//! `clusterops bench lock`: sequential acquire+release of an uncontended
//! Redis lock on one connection, against the raw redis-rs baseline doing
//! the same two round trips (SET NX PX, then a compare-and-delete script
//! via EVALSHA), in the same run.

use clusterops::adapters::lock::{LockBackend, RedisLock};
use clusterops::adapters::redis_conn;
use clusterops::config::{Namespace, SecretUrl};
use color_eyre::eyre::{Result, WrapErr};
use redis::Script;
use std::time::{Duration, Instant};

/// Lock TTL used by both sides (never reached: every lock is released).
const TTL: Duration = Duration::from_secs(10);
/// Measured rounds per side, interleaved (lock, baseline, lock, …) so that
/// both sides see the same background load.
const ROUNDS: u64 = 10;
const TARGET_RATIO: f64 = 0.8;

#[derive(Debug, clap::Args)]
pub struct LockBenchArgs {
    /// The Redis to measure against.
    #[arg(
        long,
        env = "LOCK_ADAPTER_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379/0"
    )]
    redis_url: String,
    /// Acquire+release operations per side, split into 10 interleaved
    /// rounds; the best round of each side gives the headline ratio.
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
}

const BASELINE_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub async fn run(args: LockBenchArgs) -> Result<i32> {
    let url = SecretUrl::parse(&args.redis_url, &["redis", "rediss"])
        .map_err(|why| color_eyre::eyre::eyre!("--redis-url: {why}"))?;
    let ops = args.ops.max(1);
    let ns = Namespace::new(&format!("bench-lock-{:08x}", rand::random::<u32>()))
        .map_err(|why| color_eyre::eyre::eyre!("bench namespace: {why}"))?;
    let lock = RedisLock::connect(&url, ns.clone(), "bench-node").await?;
    let mut raw = redis_conn::connect(&url).await?;
    let release = Script::new(BASELINE_RELEASE);
    let raw_key = ns.key("lock:bench-raw");
    let raw_value = format!("1|{}|{:016x}|bench-node", 0, rand::random::<u64>());

    let lock_round = |n: u64| {
        let lock = lock.clone();
        async move {
            let start = Instant::now();
            for _ in 0..n {
                let guard = lock.acquire("bench", TTL, Duration::from_secs(1)).await?;
                guard.release().await?;
            }
            Ok::<f64, color_eyre::Report>(n as f64 / start.elapsed().as_secs_f64())
        }
    };
    let baseline_round = |n: u64| {
        let mut raw = raw.clone();
        let (key, value, release) = (raw_key.clone(), raw_value.clone(), release.clone());
        async move {
            let start = Instant::now();
            for _ in 0..n {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL.as_millis() as u64)
                    .query_async(&mut raw)
                    .await?;
                if set.is_none() {
                    color_eyre::eyre::bail!("baseline key {key} was unexpectedly held");
                }
                let deleted: i64 = release.key(&key).arg(&value).invoke_async(&mut raw).await?;
                if deleted != 1 {
                    color_eyre::eyre::bail!("baseline compare-and-delete failed on {key}");
                }
            }
            Ok::<f64, color_eyre::Report>(n as f64 / start.elapsed().as_secs_f64())
        }
    };

    // Warm up both paths (script loading, connections, allocator).
    let warm = (ops / 10).clamp(100, 1_000);
    lock_round(warm).await.wrap_err("lock warm-up")?;
    baseline_round(warm).await.wrap_err("baseline warm-up")?;

    let per_round = (ops / ROUNDS).max(1);
    let mut lock_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    for _ in 0..ROUNDS {
        lock_rates.push(lock_round(per_round).await?);
        baseline_rates.push(baseline_round(per_round).await?);
    }

    let _: i64 = redis::cmd("DEL")
        .arg(ns.key("lock:bench"))
        .arg(ns.key("lock-fence:bench"))
        .arg(&raw_key)
        .query_async(&mut raw)
        .await?;

    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio_of = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let (lock_best, baseline_best) = (best(&lock_rates), best(&baseline_rates));
    let ratio = ratio_of(lock_best, baseline_best);
    let ratio_median = ratio_of(median(&lock_rates), median(&baseline_rates));
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let out = serde_json::json!({
        "bench": "lock",
        "redis": url.masked(),
        "ops_per_round": per_round,
        "rounds": ROUNDS,
        "round_trips_per_op": 2,
        "lock_acquire_release_ops_per_sec": round(lock_best),
        "baseline_set_nx_evalsha_ops_per_sec": round(baseline_best),
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "ratio_of_medians": (ratio_median * 1000.0).round() / 1000.0,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "lock_rounds_ops_per_sec": lock_rates.iter().map(|x| round(*x)).collect::<Vec<_>>(),
        "baseline_rounds_ops_per_sec": baseline_rates.iter().map(|x| round(*x)).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(0)
}
