//! `clusterops bench status`: builds a large cluster state (32 nodes, 1,000
//! locks, 10 streams, 10 queues) in a private namespace, times snapshots,
//! and compares them with a raw pipelined read of the same keys in the same
//! run (the keys known in advance: no SCAN, one pipeline). Documented in
//! docs/redis-keys.md, "Reading a snapshot".

use clusterops::adapters::{lock, pubsub, queue, redis_conn, worker_id};
use clusterops::config::{Config, Namespace, SecretUrl};
use clusterops::inspect::{Inspector, health};
use clusterops::node::{maintenance, registry};
use color_eyre::eyre::{Result, eyre};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct StatusBenchArgs {
    /// The Redis to build the state in (every adapter on it).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// Snapshots (and raw reads) to time; the median is reported.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

use clusterops::inspect::sample::{self, LOCKS, NODES, QUEUES, STREAMS};

pub async fn run(args: StatusBenchArgs) -> Result<i32> {
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|why| eyre!("--redis-url: {why}"))?;
    let name = format!("bench-status-{:08x}", rand::random::<u32>());
    let ns = Namespace::new(&name).map_err(|why| eyre!("namespace: {why}"))?;
    let mut conn = redis_conn::connect(&url).await?;
    let result = measure(&args, &url, &ns, &mut conn).await;
    cleanup(&mut conn, &ns).await;
    let out = result?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// The same data read with one pipeline, keys known in advance.
async fn raw_read(ns: &Namespace, conn: &mut redis_conn::SharedConn) -> Result<usize> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("ZRANGE")
        .arg(registry::index_key(ns))
        .arg(0)
        .arg(-1);
    pipe.cmd("GET").arg(maintenance::key(ns));
    for i in 0..NODES {
        let key = registry::record_key(ns, &sample::node_id(i));
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
    }
    for id in 0..worker_id::WORKER_IDS {
        let key = worker_id::lease_key(ns, id);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        pipe.cmd("GET").arg(worker_id::last_ts_key(ns, id));
    }
    for i in 0..LOCKS {
        let name = sample::lock_name(i);
        let key = lock::lock_key(ns, &name);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        pipe.cmd("ZCARD").arg(lock::wait_key(ns, &name));
    }
    for s in 0..STREAMS {
        let channel = sample::channel_name(s);
        pipe.cmd("XINFO")
            .arg("STREAM")
            .arg(pubsub::keys::stream_key(ns, &channel));
        pipe.cmd("HGETALL")
            .arg(pubsub::keys::cursors_key(ns, &channel));
        pipe.cmd("GET").arg(pubsub::keys::seq_key(ns, &channel));
    }
    for q in 0..QUEUES {
        let name = sample::queue_name(q);
        let key = queue::stream_key(ns, &name);
        pipe.cmd("XLEN").arg(&key);
        pipe.cmd("XINFO").arg("GROUPS").arg(&key);
        pipe.cmd("XLEN").arg(queue::dead_key(ns, &name));
    }
    pipe.cmd("INFO");
    let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    Ok(replies.len())
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn measure(
    args: &StatusBenchArgs,
    url: &SecretUrl,
    ns: &Namespace,
    conn: &mut redis_conn::SharedConn,
) -> Result<serde_json::Value> {
    sample::write_sample(url, ns, conn).await?;
    let config = Config::all_redis(url.expose(), ns.name()).map_err(|e| eyre!("{e}"))?;
    let inspector = Inspector::new(config);
    let warm = inspector.snapshot().await;
    let nodes = warm.nodes.ok().map_or(0, Vec::len);
    let locks = warm.locks.ok().map_or(0, Vec::len);
    let streams = warm.streams.ok().map_or(0, Vec::len);
    let queues = warm.queues.ok().map_or(0, Vec::len);
    if nodes != NODES || locks != LOCKS || streams != STREAMS || queues != QUEUES {
        return Err(eyre!(
            "the snapshot did not see the state it should: {nodes} nodes, {locks} locks, {streams} streams, {queues} queues"
        ));
    }
    let _ = raw_read(ns, conn).await?;
    let rounds = args.rounds.max(1);
    let (mut snap_ms, mut raw_ms, mut requests) = (Vec::new(), Vec::new(), Vec::new());
    let (mut concurrent, mut health_ms) = (Vec::new(), Vec::new());
    let addrs = vec!["127.0.0.1:9".to_string(); NODES];
    let mut raw_replies = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let snap = inspector.snapshot().await;
        snap_ms.push(t.elapsed().as_secs_f64() * 1e3);
        requests.push(f64::from(snap.round_trips));
        concurrent.push(f64::from(inspector.last_requests().max_concurrent));
        let t = Instant::now();
        raw_replies = raw_read(ns, conn).await?;
        raw_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let _ = health::check_all(&addrs).await;
        health_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(conn).await?;
    let paired: Vec<f64> = snap_ms
        .iter()
        .zip(&raw_ms)
        .map(|(s, r)| s / r.max(1e-9))
        .collect();
    let (s, r) = (median(snap_ms), median(raw_ms));
    let (sent, most) = (median(requests.clone()), max(&requests));
    let ratio = if r > 0.0 { s / r } else { 0.0 };
    Ok(serde_json::json!({
        "bench": "status",
        "state": { "nodes": NODES, "locks": LOCKS, "streams": STREAMS, "queues": QUEUES, "db_keys": dbsize },
        "rounds": rounds,
        "snapshot_ms_median": (s * 1000.0).round() / 1000.0,
        "snapshot_redis_requests_median": sent,
        "snapshot_redis_requests_max": most,
        "snapshot_max_concurrent_requests": max(&concurrent),
        "snapshot_note": "requests = commands or pipelines sent (counted on the connection), by the timed snapshots: one inspector, after one untimed snapshot (its first snapshot takes 4: no keys known yet); max concurrent 2 = two chains of requests at once (the registry, then the health checks; the rest of the reads); the snapshot time includes the health checks of the 32 nodes (127.0.0.1:9, refused), timed alone in health_checks_alone_ms_median",
        "health_checks_alone_ms_median": (median(health_ms) * 1000.0).round() / 1000.0,
        "raw_pipeline_ms_median": (r * 1000.0).round() / 1000.0,
        "raw_pipeline_requests": 1,
        "raw_pipeline_replies": raw_replies,
        "ratio_snapshot_over_raw": (ratio * 100.0).round() / 100.0,
        "ratio_median_of_paired_rounds": (median(paired) * 100.0).round() / 100.0,
        "target": "at most 5 round trips, within 2x of the raw read",
        "meets_target": most <= 5.0 && ratio <= 2.0,
    }))
}

async fn cleanup(conn: &mut redis_conn::SharedConn, ns: &Namespace) {
    let mut cursor: u64 = 0;
    loop {
        let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(ns.pattern("*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await;
        let Ok((next, keys)) = reply else { return };
        if !keys.is_empty() {
            // One DEL per key: in a Redis Cluster they are in different slots.
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("DEL").arg(key).ignore();
            }
            let _: redis::RedisResult<()> = pipe.query_async(conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
