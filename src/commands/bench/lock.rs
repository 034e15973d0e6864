//! `clusterops bench lock`: sequential acquire+release of an uncontended
//! Redis lock on one connection, against the raw redis-rs baseline doing
//! the same two round trips (SET NX PX, then a compare-and-delete script
//! via EVALSHA), in the same run.

use clusterops::adapters::lock::{self, LockBackend, RedisLock};
use clusterops::adapters::redis_conn;
use clusterops::config::Namespace;
use color_eyre::eyre::{Result, WrapErr};
use redis::Script;
use std::time::{Duration, Instant};

/// Lock TTL used by both sides (never reached: every lock is released).
const TTL: Duration = Duration::from_secs(10);
/// Operations per measured block; blocks of the two sides alternate.
const BLOCK: u64 = 100;
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
    /// Acquire+release operations per side, measured in interleaved blocks
    /// of 100 (lock, baseline, baseline, lock, …).
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
    /// Measure the contended lock instead: N clients, each on its own
    /// connection, taking one lock over and over; a list (`2,4,8,16`)
    /// prints the curve. See docs/redis-keys.md.
    #[arg(long, value_name = "N[,N…]", value_delimiter = ',')]
    contenders: Vec<usize>,
    /// Seconds measured per point of the contended curve on each side
    /// (contended, and one client alone), in alternating 0.25 s blocks
    /// after 0.5 s of warm-up.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    seconds: f64,
}

const BASELINE_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub async fn run(args: LockBenchArgs) -> Result<i32> {
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|why| color_eyre::eyre::eyre!("--redis-url: {why}"))?;
    if !args.contenders.is_empty() {
        if !(args.seconds.is_finite() && (0.1..=3600.0).contains(&args.seconds)) {
            color_eyre::eyre::bail!("--seconds: use 0.1 to 3600");
        }
        let secs = Duration::from_secs_f64(args.seconds);
        return super::lock_contended::run(&url, &args.contenders, secs).await;
    }
    let ops = args.ops.max(1);
    let ns = Namespace::new(&format!("bench-lock-{:08x}", rand::random::<u32>()))
        .map_err(|why| color_eyre::eyre::eyre!("bench namespace: {why}"))?;
    let lock = RedisLock::connect(&url, ns.clone(), "bench-node").await?;
    let mut raw = redis_conn::connect(&url).await?;
    let release = Script::new(BASELINE_RELEASE);
    let raw_key = lock::lock_key(&ns, "bench-raw");
    let raw_value = format!("1|{}|{:016x}|bench-node", 0, rand::random::<u64>());

    let lock_block = |n: u64| {
        let lock = lock.clone();
        async move {
            let start = Instant::now();
            for _ in 0..n {
                let guard = lock.acquire("bench", TTL, Duration::from_secs(1)).await?;
                guard.release().await?;
            }
            Ok::<Duration, color_eyre::Report>(start.elapsed())
        }
    };
    let baseline_block = |n: u64| {
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
            Ok::<Duration, color_eyre::Report>(start.elapsed())
        }
    };

    // Warm up both paths (script loading, connections, allocator).
    let warm = (ops / 10).clamp(100, 1_000);
    lock_block(warm).await.wrap_err("lock warm-up")?;
    baseline_block(warm).await.wrap_err("baseline warm-up")?;

    // Short blocks, interleaved and alternating which side goes first, so
    // both sides see the same background load.
    let blocks = ops.div_ceil(BLOCK);
    let (mut lock_total, mut baseline_total) = (Duration::ZERO, Duration::ZERO);
    let mut paired = Vec::new();
    for i in 0..blocks {
        let (l, b) = if i % 2 == 0 {
            let l = lock_block(BLOCK).await?;
            (l, baseline_block(BLOCK).await?)
        } else {
            let b = baseline_block(BLOCK).await?;
            (lock_block(BLOCK).await?, b)
        };
        lock_total += l;
        baseline_total += b;
        paired.push(b.as_secs_f64() / l.as_secs_f64().max(1e-9));
    }

    // One DEL per lock: the two locks' keys are in different hash slots.
    let _: (i64, i64) = redis::pipe()
        .cmd("DEL")
        .arg(lock::lock_key(&ns, "bench"))
        .arg(lock::fence_key(&ns, "bench"))
        .cmd("DEL")
        .arg(&raw_key)
        .query_async(&mut raw)
        .await?;

    let done = (blocks * BLOCK) as f64;
    let lock_rate = done / lock_total.as_secs_f64();
    let baseline_rate = done / baseline_total.as_secs_f64();
    let ratio = lock_rate / baseline_rate;
    paired.sort_by(f64::total_cmp);
    let median_paired = paired[paired.len() / 2];
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let out = serde_json::json!({
        "bench": "lock",
        "redis": url.masked(),
        "ops_per_side": blocks * BLOCK,
        "block_ops": BLOCK,
        "round_trips_per_op": 2,
        "lock_acquire_release_ops_per_sec": r1(lock_rate),
        "baseline_set_nx_evalsha_ops_per_sec": r1(baseline_rate),
        "ratio": r3(ratio),
        "ratio_median_of_paired_blocks": r3(median_paired),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    });
    println!("{out}");
    Ok(0)
}
