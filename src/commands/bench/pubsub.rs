//! `clusterops bench pubsub`: node-to-node latency of sync signals on Redis.
//! A publisher and a subscriber (separate adapter instances, separate
//! connections) exchange messages carrying their send time; latency is taken
//! at receipt. The same run measures a raw redis-rs XADD + XREAD BLOCK loop
//! as the baseline.

use clusterops::adapters::pubsub::{self, Payload, RedisSignals, SubscribeOptions, SyncSignals};
use clusterops::adapters::redis_conn;
use clusterops::config::{Namespace, SecretUrl};
use color_eyre::eyre::{Result, eyre};
use serde_json::json;
use std::time::{Duration, Instant};

const CHANNEL: &str = "bench";
const WARMUP: usize = 200;
/// Issue #17's goal: the adapter's p99 at most this many times the raw p99.
const TARGET_P99_RATIO: f64 = 1.5;

#[derive(Debug, clap::Args)]
pub struct PubsubArgs {
    /// The Redis to measure against.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// Messages measured per variant (after a warm-up of 200).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    messages: usize,
    /// The adapter and the raw loop alternate this many times (each round
    /// `--messages / --rounds` messages), so that both see the same
    /// background load; the percentiles are over all rounds.
    #[arg(long, value_name = "R", default_value_t = 4)]
    rounds: usize,
}

fn now_ns() -> u64 {
    u64::try_from(clusterops::clock::since_epoch().as_nanos()).unwrap_or(u64::MAX)
}

/// Latencies (ns) measured in one run and the time the run took.
type Run = (Vec<u64>, Duration);

/// Latency percentiles (µs) and throughput of one variant.
fn summary(mut lat_ns: Vec<u64>, wall: Duration) -> serde_json::Value {
    lat_ns.sort_unstable();
    let pct = |p: f64| {
        if lat_ns.is_empty() {
            return 0.0;
        }
        let i = ((lat_ns.len() as f64 * p).ceil() as usize).clamp(1, lat_ns.len()) - 1;
        lat_ns[i] as f64 / 1000.0
    };
    json!({
        "p50_us": round1(pct(0.50)),
        "p90_us": round1(pct(0.90)),
        "p99_us": round1(pct(0.99)),
        "max_us": round1(pct(1.0)),
        "messages_per_s": round1(lat_ns.len() as f64 / wall.as_secs_f64().max(1e-9)),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub async fn run(args: PubsubArgs) -> Result<i32> {
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|e| eyre!("--redis-url: {e}"))?;
    let ns = Namespace::new(&format!("bench-pubsub-{:08x}", rand::random::<u32>()))
        .map_err(|e| eyre!("namespace: {e}"))?;
    let n = args.messages.max(1);
    let rounds = args.rounds.clamp(1, n);
    let per_round = n.div_ceil(rounds);
    let (mut adapter, mut raw): (Run, Run) = Default::default();
    for _ in 0..rounds {
        let a = adapter_run(&url, &ns, per_round).await;
        let r = raw_run(&url, &ns, per_round).await;
        cleanup(&url, &ns).await;
        for (total, run) in [(&mut adapter, a?), (&mut raw, r?)] {
            total.0.extend(run.0);
            total.1 += run.1;
        }
    }
    let (adapter, raw) = (summary(adapter.0, adapter.1), summary(raw.0, raw.1));
    let p99 = adapter["p99_us"].as_f64().unwrap_or(f64::MAX);
    let raw_p99 = raw["p99_us"].as_f64().unwrap_or(0.0);
    let ratio = if raw_p99 > 0.0 {
        p99 / raw_p99
    } else {
        f64::MAX
    };
    let out = json!({
        "bench": "pubsub",
        "redis": url.masked(),
        "messages": per_round * rounds,
        "rounds": rounds,
        "publisher": "sequential (each publish awaits its reply)",
        "adapter": adapter,
        "raw_xadd_xread": raw,
        "p99_ratio_adapter_to_raw": (ratio * 100.0).round() / 100.0,
        "target_p99_ratio": TARGET_P99_RATIO,
        "meets_target": ratio <= TARGET_P99_RATIO,
    });
    println!("{out}");
    Ok(0)
}

/// Publisher and subscriber as two adapter instances (two nodes).
async fn adapter_run(url: &SecretUrl, ns: &Namespace, n: usize) -> Result<Run> {
    let publisher = RedisSignals::connect(url, ns.clone(), "bench-publisher").await?;
    let subscriber = RedisSignals::connect(url, ns.clone(), "bench-subscriber").await?;
    let mut sub = subscriber
        .subscribe(CHANNEL, SubscribeOptions::default())
        .await?;
    let total = WARMUP + n;
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(n);
        let mut last = Instant::now();
        for i in 0..total {
            let Some(signal) = sub.recv().await else {
                break;
            };
            let at = now_ns();
            last = Instant::now();
            if let Payload::Json(v) = &signal.payload
                && i >= WARMUP
            {
                lat.push(at.saturating_sub(v["t"].as_u64().unwrap_or(at)));
            }
        }
        (lat, last)
    });
    let mut start = Instant::now();
    for i in 0..total {
        if i == WARMUP {
            start = Instant::now();
        }
        publisher
            .publish(CHANNEL, json!({ "t": now_ns(), "i": i }).into())
            .await?;
    }
    let (lat, last) = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .map_err(|_| eyre!("the subscriber did not receive every message within 60 s"))??;
    if lat.len() < n {
        return Err(eyre!(
            "the subscriber received {} of {n} messages",
            lat.len()
        ));
    }
    publisher.shutdown().await;
    subscriber.shutdown().await;
    Ok((lat, last.duration_since(start)))
}

/// The same exchange with bare redis-rs: XADD on one connection, XREAD
/// BLOCK on a dedicated one.
async fn raw_run(url: &SecretUrl, ns: &Namespace, n: usize) -> Result<Run> {
    let key = ns.key("bench-raw");
    let mut publisher = redis_conn::connect(url).await?;
    // On a Redis Cluster, on the master of the stream's slot.
    let mut reader = publisher.blocking(&key).await?;
    let total = WARMUP + n;
    let read_key = key.clone();
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(n);
        let mut last_id = "0-0".to_string();
        let mut seen = 0;
        let mut last = Instant::now();
        while seen < total {
            let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(512)
                .arg("BLOCK")
                .arg(0)
                .arg("STREAMS")
                .arg(&read_key)
                .arg(&last_id)
                .query_async(&mut reader)
                .await?;
            let at = now_ns();
            last = Instant::now();
            for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                if seen >= WARMUP {
                    let t: u64 = entry.get("t").unwrap_or(at);
                    lat.push(at.saturating_sub(t));
                }
                seen += 1;
                last_id = entry.id;
            }
        }
        Ok::<_, redis::RedisError>((lat, last))
    });
    let mut start = Instant::now();
    for i in 0..total {
        if i == WARMUP {
            start = Instant::now();
        }
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("t")
            .arg(now_ns())
            .query_async(&mut publisher)
            .await?;
    }
    let (lat, last) = tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .map_err(|_| eyre!("the raw reader did not receive every message within 60 s"))???;
    Ok((lat, last.duration_since(start)))
}

/// Delete the keys the benchmark wrote.
async fn cleanup(url: &SecretUrl, ns: &Namespace) {
    let Ok(mut conn) = redis_conn::connect(url).await else {
        return;
    };
    // The channel's keys share a hash slot; the raw stream is elsewhere.
    let _: redis::RedisResult<(i64, i64)> = redis::pipe()
        .cmd("DEL")
        .arg(pubsub::keys::stream_key(ns, CHANNEL))
        .arg(pubsub::keys::seq_key(ns, CHANNEL))
        .arg(pubsub::keys::cursors_key(ns, CHANNEL))
        .cmd("DEL")
        .arg(ns.key("bench-raw"))
        .query_async(&mut conn)
        .await;
}
