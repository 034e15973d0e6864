//! `clusterops bench cache`: throughput of the Redis cache's `get` (hit),
//! `set` with TTL and `bloom_exists` (bitmap or RedisBloom), each next to
//! the raw-client command it wraps (for `bloom_exists`, one pipeline of
//! GETBIT for as many bits as the filter checks per item), measured in the
//! same run with the same concurrency over the same kind of connection.

use clusterops::adapters::cache::{Cache, MemoryCache, RedisCache};
use clusterops::adapters::redis_conn;
use clusterops::config::Namespace;
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::try_join_all;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The Redis to measure against (a throw-away namespace is used and removed).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// Operations per measurement.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Rounds, alternating the adapter and the raw baseline; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent tasks issuing them.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// Run `ops` calls of `op(i)` spread over `concurrency` tasks; ops/second.
async fn measure<F, Fut>(ops: usize, concurrency: usize, op: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let per_task = ops.div_ceil(concurrency);
    let start = Instant::now();
    let tasks = (0..concurrency).map(|t| {
        let op = op.clone();
        tokio::spawn(async move {
            for i in 0..per_task {
                op(t * per_task + i).await?;
            }
            Ok::<_, color_eyre::eyre::Report>(())
        })
    });
    for r in try_join_all(tasks).await? {
        r?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((per_task * concurrency) as f64 / elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `rounds` alternating measurements of `a` and `b`; their medians.
async fn pair<A, AF, B, BF>(
    rounds: usize,
    ops: usize,
    conc: usize,
    a: A,
    b: B,
) -> Result<(f64, f64)>
where
    A: Fn(usize) -> AF + Clone + Send + 'static,
    AF: Future<Output = Result<()>> + Send,
    B: Fn(usize) -> BF + Clone + Send + 'static,
    BF: Future<Output = Result<()>> + Send,
{
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        xs.push(measure(ops, conc, a.clone()).await?);
        ys.push(measure(ops, conc, b.clone()).await?);
    }
    Ok((median(xs), median(ys)))
}

fn entry(name: &str, figure: f64, baseline: f64, baseline_name: &str) -> serde_json::Value {
    json!({
        "op": name,
        "ops_per_sec": figure.round(),
        "baseline": baseline_name,
        "baseline_ops_per_sec": baseline.round(),
        "ratio": (figure / baseline * 1000.0).round() / 1000.0,
    })
}

pub async fn run(args: CacheArgs) -> Result<i32> {
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|e| eyre!("--redis-url: {e}"))?;
    let ns_name = format!("bench-cache-{:08x}", rand::random::<u32>());
    let ns = Namespace::new(&ns_name).map_err(|e| eyre!("namespace: {e}"))?;
    let redis_cache = Arc::new(RedisCache::connect(&url, ns.clone(), "bench").await?);
    let bloom_impl = redis_cache.bloom_impl().await?.as_str();
    let cache: Arc<dyn Cache> = redis_cache;
    let raw = redis_conn::connect(&url).await?;
    let (ops, conc, rounds) = (args.ops.max(1), args.concurrency.max(1), args.rounds.max(1));
    let ttl = Some(Duration::from_secs(60));
    let value = vec![b'x'; 100];

    // Warm up (connections, script cache) and create the data.
    cache.set("hot", &value, ttl).await?;
    cache.bloom_reserve("bench", 0.01, 100_000).await?;
    let items: Vec<String> = (0..1000).map(|i| format!("item-{i}")).collect();
    let refs: Vec<&[u8]> = items.iter().map(|s| s.as_bytes()).collect();
    cache.bloom_add_many("bench", &refs).await?;
    let raw_key = ns.key("bench-raw");
    let bits_key = ns.key("bench-raw-bits");

    let c = cache.clone();
    let get_op = move |_| {
        let c = c.clone();
        async move {
            c.get("hot")
                .await?
                .ok_or_else(|| eyre!("hot key missing"))?;
            Ok(())
        }
    };
    redis::cmd("SET")
        .arg(&raw_key)
        .arg(&value)
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut raw.clone())
        .await?;
    let (r, k) = (raw.clone(), raw_key.clone());
    let raw_get_op = move |_| {
        let (mut r, k) = (r.clone(), k.clone());
        async move {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut r).await?;
            v.ok_or_else(|| eyre!("raw key missing"))?;
            Ok(())
        }
    };

    let (c, v) = (cache.clone(), value.clone());
    let set_op = move |i| {
        let (c, v) = (c.clone(), v.clone());
        async move {
            c.set(&format!("k{}", i % 1000), &v, ttl).await?;
            Ok(())
        }
    };
    let (r, k, v) = (raw.clone(), raw_key.clone(), value.clone());
    let raw_set_op = move |i| {
        let (mut r, k, v) = (r.clone(), k.clone(), v.clone());
        async move {
            redis::cmd("SET")
                .arg(format!("{k}:{}", i % 1000))
                .arg(&v)
                .arg("PX")
                .arg(60_000)
                .query_async::<()>(&mut r)
                .await?;
            Ok(())
        }
    };

    let c = cache.clone();
    let exists_op = move |i| {
        let c = c.clone();
        async move {
            c.bloom_exists("bench", format!("item-{}", i % 2000).as_bytes())
                .await?;
            Ok(())
        }
    };
    redis::cmd("SETBIT")
        .arg(&bits_key)
        .arg(958_505)
        .arg(0)
        .query_async::<()>(&mut raw.clone())
        .await?;
    // The filter's bits per item (k): the baseline reads as many bits, in
    // one round trip (a pipeline of k GETBIT).
    let hashes: usize = redis::cmd("HGET")
        .arg(clusterops::adapters::cache::bloom_meta_key(&ns, "bench"))
        .arg("hashes")
        .query_async::<Option<usize>>(&mut raw.clone())
        .await?
        .unwrap_or(1)
        .max(1);
    let (r, k) = (raw.clone(), bits_key.clone());
    let raw_getbit_op = move |i: usize| {
        let (mut r, k) = (r.clone(), k.clone());
        async move {
            let mut pipe = redis::pipe();
            for j in 0..hashes {
                pipe.cmd("GETBIT")
                    .arg(&k)
                    .arg((i.wrapping_mul(7919) + j * 104_729) % 958_505);
            }
            let _: Vec<i64> = pipe.query_async(&mut r).await?;
            Ok(())
        }
    };

    let (get, raw_get) = pair(rounds, ops, conc, get_op, raw_get_op).await?;
    let (set, raw_set) = pair(rounds, ops, conc, set_op, raw_set_op).await?;
    let (exists, raw_getbit) = pair(rounds, ops, conc, exists_op, raw_getbit_op).await?;

    let memory: Arc<dyn Cache> = Arc::new(MemoryCache::new("bench"));
    memory.set("hot", &value, ttl).await?;
    let m = memory.clone();
    let memory_get = measure(ops * 10, conc, move |_| {
        let m = m.clone();
        async move {
            m.get("hot").await?;
            Ok(())
        }
    })
    .await?;

    // Clean up the throw-away namespace.
    cache.clear().await?;
    cache.bloom_delete("bench").await?;
    let mut keys = vec![raw_key.clone(), bits_key];
    keys.extend((0..1000).map(|i| format!("{raw_key}:{i}")));
    // One DEL per key: untagged keys are in different Redis Cluster slots.
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("DEL").arg(key).ignore();
    }
    pipe.query_async::<()>(&mut raw.clone())
        .await
        .wrap_err("cleanup")?;

    let out = json!({
        "bench": "cache",
        "redis": url.masked(),
        "ops": ops,
        "concurrency": conc,
        "rounds": rounds,
        "value_bytes": value.len(),
        "bloom_impl": bloom_impl,
        "results": [
            entry("redis get (hit)", get, raw_get, "raw GET"),
            entry("redis set with TTL", set, raw_set, "raw SET PX"),
            entry(
                "redis bloom_exists (1 item)",
                exists,
                raw_getbit,
                &format!("raw GETBIT x {hashes} (the filter's bits per item), one pipeline")
            ),
        ],
        "memory_get_ops_per_sec": memory_get.round(),
    });
    println!("{out}");
    Ok(0)
}
