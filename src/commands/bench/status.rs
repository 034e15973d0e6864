//! `clusterops bench status`: builds a large cluster state (by default 32
//! nodes, 1,000 locks, 10 streams, 10 queues; other sizes with `--nodes
//! --locks --streams --queues`, one point of the curve each) in a private
//! namespace, times snapshots, and compares them with a raw pipelined read
//! of the same keys in the same run (the keys known in advance: no SCAN,
//! one pipeline). Documented in docs/redis-keys.md, "Reading a snapshot".

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
    /// Snapshots (and raw reads) to time per point; the median is reported.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Registered nodes, one value per point of the curve (comma-separated;
    /// a single value is used at every point).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    nodes: Vec<usize>,
    /// Held locks per point.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    locks: Vec<usize>,
    /// Sync-signal streams per point.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    streams: Vec<usize>,
    /// Redis queues per point.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    queues: Vec<usize>,
}

use clusterops::inspect::sample::{self, SampleSize};

/// The points of the curve: the lists zipped, a one-value list repeated.
fn points(args: &StatusBenchArgs) -> Result<Vec<SampleSize>> {
    let lists = [
        ("--nodes", &args.nodes),
        ("--locks", &args.locks),
        ("--streams", &args.streams),
        ("--queues", &args.queues),
    ];
    let n = lists.iter().map(|(_, l)| l.len()).max().unwrap_or(1);
    for (name, list) in lists {
        if list.is_empty() || (list.len() != 1 && list.len() != n) {
            return Err(eyre!(
                "{name} has {} values; give one value, or one per point ({n})",
                list.len()
            ));
        }
    }
    if let Some(bad) = args.nodes.iter().find(|&&v| v == 0) {
        return Err(eyre!("--nodes {bad}: at least one node"));
    }
    let at = |l: &Vec<usize>, i: usize| if l.len() == 1 { l[0] } else { l[i] };
    Ok((0..n)
        .map(|i| SampleSize {
            nodes: at(&args.nodes, i),
            locks: at(&args.locks, i),
            streams: at(&args.streams, i),
            queues: at(&args.queues, i),
        })
        .collect())
}

pub async fn run(args: StatusBenchArgs) -> Result<i32> {
    let url = clusterops::config::parse_redis_url(&args.redis_url)
        .map_err(|why| eyre!("--redis-url: {why}"))?;
    let points = points(&args)?;
    let mut conn = redis_conn::connect(&url).await?;
    let mut out = Vec::new();
    for size in points {
        let name = format!("bench-status-{:08x}", rand::random::<u32>());
        let ns = Namespace::new(&name).map_err(|why| eyre!("namespace: {why}"))?;
        let result = measure(&args, size, &url, &ns, &mut conn).await;
        cleanup(&mut conn, &ns).await;
        let point = result?;
        // Each point as soon as it is measured: a long curve shows progress.
        println!("{}", serde_json::to_string_pretty(&point)?);
        out.push(point);
    }
    if out.len() > 1 {
        println!("{}", serde_json::to_string_pretty(&curve(&out))?);
    }
    Ok(0)
}

/// The summary of several points: snapshot time per key read, and whether
/// it stays within 1.5x of the smallest (the time grows linearly).
fn curve(points: &[serde_json::Value]) -> serde_json::Value {
    let per_key: Vec<f64> = points
        .iter()
        .map(|p| p["snapshot_us_per_key"].as_f64().unwrap_or(0.0))
        .collect();
    let (lo, hi) = (
        per_key.iter().copied().fold(f64::MAX, f64::min),
        max(&per_key),
    );
    let ratios: Vec<f64> = points
        .iter()
        .map(|p| p["ratio_snapshot_over_raw"].as_f64().unwrap_or(0.0))
        .collect();
    serde_json::json!({
        "bench": "status-curve",
        "points": points.iter().map(|p| serde_json::json!({
            "state": p["state"],
            "snapshot_ms_median": p["snapshot_ms_median"],
            "raw_pipeline_ms_median": p["raw_pipeline_ms_median"],
            "ratio_snapshot_over_raw": p["ratio_snapshot_over_raw"],
            "snapshot_us_per_key": p["snapshot_us_per_key"],
        })).collect::<Vec<_>>(),
        "us_per_key_max_over_min": if lo > 0.0 { (hi / lo * 100.0).round() / 100.0 } else { 0.0 },
        "linear": lo > 0.0 && hi / lo <= 1.5,
        "worst_ratio": max(&ratios),
        "target": "ratio at most 1.3 at every point; us per key within 1.5x across points",
        "meets_target": max(&ratios) <= 1.3 && lo > 0.0 && hi / lo <= 1.5,
    })
}

/// The same data read with one pipeline, keys known in advance.
async fn raw_read(
    size: SampleSize,
    ns: &Namespace,
    conn: &mut redis_conn::SharedConn,
) -> Result<usize> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("ZRANGE")
        .arg(registry::index_key(ns))
        .arg(0)
        .arg(-1);
    pipe.cmd("GET").arg(maintenance::key(ns));
    for i in 0..size.nodes {
        let key = registry::record_key(ns, &sample::node_id(i));
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
    }
    for id in 0..worker_id::WORKER_IDS {
        let key = worker_id::lease_key(ns, id);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        pipe.cmd("GET").arg(worker_id::last_ts_key(ns, id));
    }
    for i in 0..size.locks {
        let name = sample::lock_name(i);
        let key = lock::lock_key(ns, &name);
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        pipe.cmd("ZCARD").arg(lock::wait_key(ns, &name));
    }
    for s in 0..size.streams {
        let channel = sample::channel_name(s);
        pipe.cmd("XINFO")
            .arg("STREAM")
            .arg(pubsub::keys::stream_key(ns, &channel));
        pipe.cmd("HGETALL")
            .arg(pubsub::keys::cursors_key(ns, &channel));
        pipe.cmd("GET").arg(pubsub::keys::seq_key(ns, &channel));
    }
    for q in 0..size.queues {
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
    size: SampleSize,
    url: &SecretUrl,
    ns: &Namespace,
    conn: &mut redis_conn::SharedConn,
) -> Result<serde_json::Value> {
    sample::write_sample_sized(url, ns, conn, size).await?;
    let config = Config::all_redis(url.expose(), ns.name()).map_err(|e| eyre!("{e}"))?;
    let inspector = Inspector::new(config);
    let warm = inspector.snapshot().await;
    let nodes = warm.nodes.ok().map_or(0, Vec::len);
    let locks = warm.locks.ok().map_or(0, Vec::len);
    let streams = warm.streams.ok().map_or(0, Vec::len);
    let queues = warm.queues.ok().map_or(0, Vec::len);
    if nodes != size.nodes
        || locks != size.locks
        || streams != size.streams
        || queues != size.queues
    {
        return Err(eyre!(
            "the snapshot did not see the state it should: {nodes} nodes, {locks} locks, {streams} streams, {queues} queues"
        ));
    }
    let _ = raw_read(size, ns, conn).await?;
    let rounds = args.rounds.max(1);
    let (mut snap_ms, mut raw_ms, mut requests) = (Vec::new(), Vec::new(), Vec::new());
    let (mut concurrent, mut health_ms) = (Vec::new(), Vec::new());
    let addrs = vec!["127.0.0.1:9".to_string(); size.nodes];
    let mut raw_replies = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let snap = inspector.snapshot().await;
        snap_ms.push(t.elapsed().as_secs_f64() * 1e3);
        requests.push(f64::from(snap.round_trips));
        concurrent.push(f64::from(inspector.last_requests().max_concurrent));
        let t = Instant::now();
        raw_replies = raw_read(size, ns, conn).await?;
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
        "state": { "nodes": size.nodes, "locks": size.locks, "streams": size.streams, "queues": size.queues, "db_keys": dbsize },
        "rounds": rounds,
        "snapshot_ms_median": (s * 1000.0).round() / 1000.0,
        "snapshot_redis_requests_median": sent,
        "snapshot_redis_requests_max": most,
        "snapshot_max_concurrent_requests": max(&concurrent),
        "snapshot_note": "requests = commands or pipelines sent (counted on the connection), by the timed snapshots: one inspector, after one untimed snapshot (its first snapshot takes 4: no keys known yet); max concurrent 2 = two chains of requests at once (the registry, then the health checks; the rest of the reads); the snapshot time includes the health checks of the nodes (127.0.0.1:9, refused), timed alone in health_checks_alone_ms_median",
        "health_checks_alone_ms_median": (median(health_ms) * 1000.0).round() / 1000.0,
        "raw_pipeline_ms_median": (r * 1000.0).round() / 1000.0,
        "raw_pipeline_requests": 1,
        "raw_pipeline_replies": raw_replies,
        "ratio_snapshot_over_raw": (ratio * 100.0).round() / 100.0,
        "snapshot_us_per_key": (s * 1000.0 / raw_replies.max(1) as f64 * 1000.0).round() / 1000.0,
        "ratio_median_of_paired_rounds": (median(paired) * 100.0).round() / 100.0,
        "target": "at most 5 round trips, within 1.3x of the raw read",
        "meets_target": most <= 5.0 && ratio <= 1.3,
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
