//! `clusterops bench snowflake`: cost per ID below the per-worker limit and
//! a saturation run, under a real worker-ID lease leased from Redis in a
//! throwaway namespace (deleted at the end).

use clusterops::adapters::redis_conn;
use clusterops::adapters::snowflake::{Snowflake, decode};
use clusterops::adapters::worker_id::{RedisWorkerIds, WorkerIdAllocator, last_ts_key};
use clusterops::config::Namespace;
use color_eyre::eyre::{Result, eyre};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, clap::Args)]
pub struct SnowflakeArgs {
    /// Redis holding the bench's worker-ID lease.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0",
        hide_env_values = true
    )]
    redis_url: String,
    /// IDs timed per round, each round at the start of a fresh second
    /// (must fit in the 65,536 IDs of one second).
    #[arg(long, default_value_t = 60_000)]
    batch: u32,
    /// Timed rounds (one second each).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Length of the saturation run, whole seconds.
    #[arg(long, default_value_t = 3)]
    saturation_secs: u64,
}

/// Sleep until just after the next second boundary; return that second.
async fn next_second() -> u64 {
    let now = clusterops::clock::since_epoch();
    let next = now.as_secs() + 1;
    tokio::time::sleep(Duration::from_secs(next) - now + Duration::from_millis(2)).await;
    next
}

/// ns per call of the two clock reads every ID needs.
fn baseline_ns(calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        black_box(SystemTime::now());
        black_box(Instant::now());
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(args: SnowflakeArgs) -> Result<i32> {
    if args.batch == 0 || args.batch > 65_536 || args.rounds == 0 || args.saturation_secs == 0 {
        eprintln!("error: --batch must be 1..=65536, --rounds and --saturation-secs at least 1");
        return Ok(2);
    }
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|e| eyre!("--redis-url: {e}"))?;
    let ns = Namespace::new(&format!("bench-snowflake-{:08x}", rand::random::<u32>()))
        .map_err(|e| eyre!("namespace: {e}"))?;
    let mut conn = redis_conn::connect(&url).await?;
    let ids = RedisWorkerIds::builder(conn.clone(), ns.clone(), "bench")
        .start()
        .await?;
    let lease = ids.lease();
    let worker_id = lease
        .worker_id()
        .ok_or_else(|| eyre!("no worker ID leased"))?;
    let generator = Arc::new(Snowflake::new(Arc::clone(&lease)));

    // Cost per call below the limit: each round starts a fresh second and
    // times `batch` calls of try_next_id, none of which may have to wait.
    let mut per_round = Vec::new();
    let mut baseline_rounds = Vec::new();
    let mut refused = 0u64;
    for _ in 0..args.rounds {
        next_second().await;
        let start = Instant::now();
        for _ in 0..args.batch {
            if black_box(generator.try_next_id()).is_err() {
                refused += 1;
            }
        }
        per_round.push(start.elapsed().as_nanos() as f64 / f64::from(args.batch));
        // The baseline, timed right after each round under the same load.
        baseline_rounds.push(baseline_ns(args.batch));
    }
    let median_id = median(&mut per_round);
    let baseline = median(&mut baseline_rounds);

    // Saturation: issue as fast as possible for whole seconds, waiting
    // through each exhausted second; count IDs per second, check duplicates.
    let first = next_second().await;
    let end = first + args.saturation_secs;
    let sat_gen = Arc::clone(&generator);
    let issued = tokio::task::spawn_blocking(move || -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(70_000 * usize::try_from(end - first).unwrap_or(3));
        loop {
            let id = sat_gen.next_id_blocking()?;
            if decode(id)?.unix_seconds >= end {
                return Ok(out);
            }
            out.push(id);
        }
    })
    .await??;
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for id in &issued {
        *per_second.entry(decode(*id)?.unix_seconds).or_default() += 1;
    }
    let distinct: HashSet<u64> = issued.iter().copied().collect();
    let increasing = issued.windows(2).all(|w| w[0] < w[1]);

    ids.release().await?;
    let _: i64 = redis::cmd("DEL")
        .arg(last_ts_key(&ns, worker_id))
        .query_async(&mut conn)
        .await?;

    let report = json!({
        "bench": "snowflake",
        "worker_id": worker_id,
        "lease": "real Redis lease (fence checked per ID against a monotonic deadline)",
        "per_id": {
            "method": format!(
                "{} rounds; each starts just after a second boundary and times {} consecutive \
                 try_next_id() calls on one thread (fits the 65,536 IDs of one second, so no call waits)",
                args.rounds, args.batch
            ),
            "ns_per_id_median": median_id,
            "ns_per_id_min": per_round.first(),
            "ns_per_id_max": per_round.last(),
            "calls_refused": refused,
            "target_ns_per_id": 100,
        },
        "baseline": {
            "what": "SystemTime::now() + Instant::now() per call, the two clock reads every ID needs; timed right after each round, median",
            "ns_per_call": baseline,
        },
        "ratio_to_baseline": median_id / baseline,
        "saturation": {
            "method": "one thread calls next_id_blocking() for whole seconds; IDs counted per second by their timestamp",
            "seconds": args.saturation_secs,
            "ids_per_second": per_second.values().collect::<Vec<_>>(),
            "limit_per_second": 65_536,
            "total": issued.len(),
            "duplicates": issued.len() - distinct.len(),
            "strictly_increasing": increasing,
        },
    });
    println!("{report}");
    Ok(0)
}
