//! `clusterops bench queue --backend redis|rabbitmq`: messages per second
//! end to end (publish to acknowledgement) through the queue adapter, and a
//! raw-client baseline of the same shape in the same run (Redis: plain
//! XADD / XREADGROUP / XACK; RabbitMQ: plain lapin with publisher confirms
//! and manual acks), with their ratio.

use clusterops::adapters::queue::{
    self, MessageQueue, QueueOptions, RabbitQueue, RedisQueue, Subscription, handler,
};
use clusterops::adapters::redis_conn;
use clusterops::config::{Namespace, SecretUrl};
use color_eyre::eyre::{Result, eyre};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Issue #17's goal: the adapter end to end at least this share of the raw
/// client's rate.
const TARGET_RATIO: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Redis,
    Rabbitmq,
}

#[derive(Debug, clap::Args)]
pub struct QueueBenchArgs {
    /// Which backend to measure.
    #[arg(long, value_enum)]
    backend: Backend,
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Publishing tasks; each keeps `--window` publishes in flight.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Publishes in flight per producer.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Consumer concurrency (handlers at once; RabbitMQ prefetch).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Runs of each (adapter and baseline alternate); the best is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Server URL [default: QUEUE_ADAPTER_REDIS_URL / QUEUE_ADAPTER_RABBITMQ_URL,
    /// else the local server]. `--redis-url` is the same option, as the other
    /// benches spell it.
    #[arg(long, visible_alias = "redis-url")]
    url: Option<String>,
}

fn url_for(args: &QueueBenchArgs) -> Result<SecretUrl> {
    let (var, default, schemes): (&str, &str, &[&str]) = match args.backend {
        Backend::Redis => (
            "QUEUE_ADAPTER_REDIS_URL",
            "redis://127.0.0.1:6379/0",
            &["redis", "rediss"],
        ),
        Backend::Rabbitmq => (
            "QUEUE_ADAPTER_RABBITMQ_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            &["amqp", "amqps"],
        ),
    };
    let raw = args
        .url
        .clone()
        .or_else(|| std::env::var(var).ok())
        .unwrap_or_else(|| default.to_string());
    match args.backend {
        Backend::Redis => clusterops::config::parse_redis_url(&raw),
        Backend::Rabbitmq => SecretUrl::parse(&raw, schemes),
    }
    .map_err(|e| eyre!("bad URL: {e}"))
}

fn payload(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i}}}").into_bytes()
}

/// Publish `n` messages from `producers` tasks with `window` in flight each.
async fn produce<F, Fut>(n: usize, producers: usize, window: usize, publish: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let producers = producers.max(1);
    let mut tasks = Vec::new();
    for p in 0..producers {
        let publish = publish.clone();
        tasks.push(tokio::spawn(async move {
            futures::stream::iter((p..n).step_by(producers))
                .map(&publish)
                .buffer_unordered(window.max(1))
                .collect::<Vec<Result<()>>>()
                .await
                .into_iter()
                .collect::<Result<Vec<()>>>()
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One adapter run: seconds from the first publish to the last ack.
async fn adapter_run(
    q: Arc<dyn MessageQueue>,
    queue: &str,
    args: &QueueBenchArgs,
    acked: impl AsyncFnOnce(Subscription) -> Result<Option<Subscription>>,
) -> Result<f64> {
    let n = args.messages;
    let count = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let (c, a) = (count.clone(), all.clone());
    let sub = q
        .subscribe(
            queue,
            args.concurrency,
            handler(move |_msg| {
                let (c, a) = (c.clone(), a.clone());
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        a.notify_one();
                    }
                    Ok::<(), String>(())
                }
            }),
        )
        .await?;
    let started = Instant::now();
    let (qp, name) = (q.clone(), queue.to_string());
    produce(n, args.producers, args.window, move |i| {
        let (qp, name) = (qp.clone(), name.clone());
        async move {
            qp.publish(&name, &payload(i)).await?;
            Ok(())
        }
    })
    .await?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        handled = count.load(Ordering::SeqCst),
        "published"
    );
    tokio::time::timeout(Duration::from_secs(300), all.notified()).await?;
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "handled");
    let sub = acked(sub).await?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(sub) = sub {
        sub.shutdown().await?;
    }
    Ok(secs)
}

async fn redis_adapter(url: &SecretUrl, ns: &Namespace, args: &QueueBenchArgs) -> Result<f64> {
    let opts = QueueOptions::default();
    let q: Arc<dyn MessageQueue> =
        Arc::new(RedisQueue::connect(url, ns.clone(), "bench", opts).await?);
    let key = queue::stream_key(ns, "adapter");
    let mut conn = redis_conn::connect(url).await?;
    let secs = adapter_run(q.clone(), "adapter", args, async |sub| {
        // Acknowledged = nothing left in the stream (acks delete entries).
        loop {
            let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await?;
            if len == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Some(sub))
    })
    .await?;
    q.delete_queue("adapter").await?;
    Ok(secs)
}

async fn redis_baseline(url: &SecretUrl, ns: &Namespace, args: &QueueBenchArgs) -> Result<f64> {
    let key = queue::stream_key(ns, "baseline");
    let n = args.messages;
    let mut admin = redis_conn::connect(url).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut admin)
        .await?;
    // On a Redis Cluster, on the master of the stream's slot.
    let mut reader = admin.blocking(&key).await?;
    let count = args.concurrency;
    let consumer_key = key.clone();
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut done = 0usize;
        while done < n {
            let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&consumer_key)
                .arg(">")
                .query_async(&mut reader)
                .await?;
            let ids: Vec<String> = reply
                .keys
                .into_iter()
                .flat_map(|k| k.ids.into_iter().map(|e| e.id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let _: u64 = redis::cmd("XACK")
                .arg(&consumer_key)
                .arg("g")
                .arg(&ids)
                .query_async(&mut reader)
                .await?;
            done += ids.len();
        }
        Ok::<(), color_eyre::Report>(())
    });
    let producer_conn = redis_conn::connect(url).await?;
    let pk = key.clone();
    produce(n, args.producers, args.window, move |i| {
        let (mut c, k) = (producer_conn.clone(), pk.clone());
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&k)
                .arg("*")
                .arg("payload")
                .arg(payload(i))
                .query_async(&mut c)
                .await?;
            Ok(())
        }
    })
    .await?;
    consumer.await??;
    let secs = started.elapsed().as_secs_f64();
    let _: u64 = redis::cmd("DEL").arg(&key).query_async(&mut admin).await?;
    Ok(secs)
}

async fn rabbit_adapter(url: &SecretUrl, ns: &Namespace, args: &QueueBenchArgs) -> Result<f64> {
    let opts = QueueOptions::default();
    let q: Arc<dyn MessageQueue> =
        Arc::new(RabbitQueue::connect(url, ns.clone(), "bench", opts).await?);
    // Acknowledged = the subscription drained (each handler task ends
    // after its ack is sent).
    let secs = adapter_run(q.clone(), "adapter", args, async |sub| {
        sub.shutdown().await?;
        Ok(None)
    })
    .await?;
    q.delete_queue("adapter").await?;
    Ok(secs)
}

async fn rabbit_baseline(url: &SecretUrl, ns: &Namespace, args: &QueueBenchArgs) -> Result<f64> {
    let name = format!("{}.baseline", ns.name());
    let n = args.messages;
    let props = || ConnectionProperties::default();
    let pub_conn = clusterops::adapters::queue::connect_amqp(url, props()).await?;
    let pub_ch = pub_conn.create_channel().await?;
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    pub_ch
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let sub_conn = clusterops::adapters::queue::connect_amqp(url, props()).await?;
    let sub_ch = sub_conn.create_channel().await?;
    sub_ch
        .basic_qos(
            u16::try_from(args.concurrency).unwrap_or(u16::MAX),
            BasicQosOptions::default(),
        )
        .await?;
    let mut consumer = sub_ch
        .basic_consume(
            name.as_str().into(),
            "baseline".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut done = 0usize;
        while done < n {
            let Some(d) = consumer.next().await else {
                return Err(eyre!("baseline consumer cancelled"));
            };
            d?.acker.ack(BasicAckOptions::default()).await?;
            done += 1;
        }
        Ok::<(), color_eyre::Report>(())
    });
    let (ch, routing) = (pub_ch.clone(), name.clone());
    produce(n, args.producers, args.window, move |i| {
        let (ch, routing) = (ch.clone(), routing.clone());
        async move {
            ch.basic_publish(
                "".into(),
                routing.as_str().into(),
                BasicPublishOptions::default(),
                &payload(i),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
            Ok(())
        }
    })
    .await?;
    consuming.await??;
    let secs = started.elapsed().as_secs_f64();
    pub_ch
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = sub_conn.close(200, "OK".into()).await;
    let _ = pub_conn.close(200, "OK".into()).await;
    Ok(secs)
}

pub async fn run(args: QueueBenchArgs) -> Result<i32> {
    let url = url_for(&args)?;
    let ns = Namespace::new(&format!("bench-queue-{:08x}", rand::random::<u32>()))
        .map_err(|e| eyre!("namespace: {e}"))?;
    let (mut best_adapter, mut best_base) = (f64::MAX, f64::MAX);
    let mut per_round = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let (a, b) = match args.backend {
            Backend::Redis => (
                redis_adapter(&url, &ns, &args).await?,
                redis_baseline(&url, &ns, &args).await?,
            ),
            Backend::Rabbitmq => (
                rabbit_adapter(&url, &ns, &args).await?,
                rabbit_baseline(&url, &ns, &args).await?,
            ),
        };
        per_round.push((b / a * 1000.0).round() / 1000.0);
        best_adapter = best_adapter.min(a);
        best_base = best_base.min(b);
    }
    let n = args.messages as f64;
    let (adapter_rate, base_rate) = (n / best_adapter, n / best_base);
    let (backend, baseline) = match args.backend {
        Backend::Redis => (
            "redis",
            "plain redis-rs XADD / XREADGROUP COUNT / XACK per batch",
        ),
        Backend::Rabbitmq => (
            "rabbitmq",
            "plain lapin: persistent publish + confirm, prefetch, manual ack",
        ),
    };
    let out = serde_json::json!({
        "bench": "queue",
        "backend": backend,
        "server": url.masked(),
        "messages": args.messages,
        "producers": args.producers,
        "window": args.window,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "adapter": { "seconds": best_adapter, "messages_per_sec": adapter_rate.round() },
        "baseline": { "what": baseline, "seconds": best_base, "messages_per_sec": base_rate.round() },
        "ratio": (adapter_rate / base_rate * 1000.0).round() / 1000.0,
        "ratio_per_round": per_round,
        "target_ratio": TARGET_RATIO,
        "meets_target": adapter_rate / base_rate >= TARGET_RATIO,
    });
    println!("{out}");
    Ok(0)
}
