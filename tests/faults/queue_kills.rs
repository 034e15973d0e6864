//! The queue under kill -9: 10,000 messages through each of the Redis
//! Streams and RabbitMQ backends while consumer processes are killed in the
//! middle of their messages and restarted. Every handled delivery is logged
//! in PostgreSQL before the handler returns (so before the ack): nothing may
//! be lost; duplicates (deliveries logged twice because the ack died with
//! the process) are counted and reported.

use crate::common::{TestDb, TestNs, amqp_url};
use crate::harness::{Budget, Child, Report, Scenario};
use crate::procs::{self, Args, ChildProc, report_line};
use clusterops::adapters::queue::{
    MessageQueue, QueueOptions, RabbitQueue, RedisQueue, RetryPolicy, handler,
};
use clusterops::config::{Namespace, SecretUrl};
use rand::Rng;
use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "queue_kills",
    run,
};
/// The child role: one consumer process.
pub const CHILD: Child = Child {
    name: ROLE,
    run: child,
};
const ROLE: &str = "queue-consumer";

/// Messages per backend.
const MESSAGES: usize = 10_000;
/// Consumer processes, and handlers running at once in each.
const CONSUMERS: usize = 3;
const CONCURRENCY: usize = 4;
/// Concurrent publishers in the scenario process.
const PUBLISHERS: usize = 8;
/// One message in this many fails its first attempt (and is retried).
const FAIL_ONE_IN: usize = 50;
/// Time between two kills, drawn uniformly (ms).
const KILL_EVERY_MS: (u64, u64) = (300, 1000);
/// Redis: a dead consumer's messages go to another after this long.
const VISIBILITY: Duration = Duration::from_secs(2);
/// The scenario fails if the messages are not all handled by then.
const LIMIT: Duration = Duration::from_secs(180);

const SCHEMA: &str = "CREATE TABLE deliveries (seq BIGSERIAL PRIMARY KEY, backend TEXT NOT NULL, \
    msg_id TEXT NOT NULL, consumer TEXT NOT NULL, attempt INT NOT NULL); \
    CREATE INDEX ON deliveries (backend, msg_id)";

fn options() -> QueueOptions {
    QueueOptions {
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        },
        visibility_timeout: VISIBILITY,
        shutdown_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        reconnect_timeout: Duration::from_secs(10),
        ..QueueOptions::default()
    }
}

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| {
        let db = TestDb::create("faults_queue");
        db.query(SCHEMA);
        let rt = procs::runtime()?;
        let redis_ns = TestNs::new("faults-queue");
        let redis = rt.block_on(backend("redis", &redis_ns.url, &redis_ns.name, &db, report));
        // RabbitMQ names are prefixed with their own unique namespace.
        let amqp_ns = format!("t-faults-queue-{:08x}", rand::random::<u32>());
        let rabbit = rt.block_on(backend("rabbitmq", &amqp_url(), &amqp_ns, &db, report));
        redis.and(rabbit)
    })
}

async fn connect(
    kind: &str,
    url: &str,
    ns: &str,
    node_id: &str,
) -> Result<Arc<dyn MessageQueue>, String> {
    let ns = Namespace::new(ns)?;
    Ok(match kind {
        "redis" => {
            let url = SecretUrl::parse(url, &["redis"])?;
            Arc::new(
                RedisQueue::connect(&url, ns, node_id, options())
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        _ => {
            let url = SecretUrl::parse(url, &["amqp"])?;
            Arc::new(
                RabbitQueue::connect(&url, ns, node_id, options())
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
    })
}

/// One backend: consumers up, publish while killing, wait for every message.
async fn backend(
    kind: &str,
    url: &str,
    ns: &str,
    db: &TestDb,
    report: &mut Report,
) -> Result<(), String> {
    let started = Instant::now();
    let queue = format!("faults-{:08x}", rand::random::<u32>());
    let spawn = |slot: usize, generation: u32| {
        let label = format!("{kind}-c{slot}g{generation}");
        ChildProc::spawn(
            ROLE,
            &procs::args(&[
                ("kind", kind.to_string()),
                ("url", url.to_string()),
                ("ns", ns.to_string()),
                ("queue", queue.clone()),
                ("db", db.url()),
                ("label", label.clone()),
            ]),
            &label,
        )
    };
    let mut generation = [0u32; CONSUMERS];
    let mut consumers: Vec<ChildProc> = (0..CONSUMERS)
        .map(|i| spawn(i, 0))
        .collect::<Result<_, _>>()?;
    for c in &consumers {
        c.wait_for_line("ready", Duration::from_secs(30))?;
    }

    let producer = connect(kind, url, ns, "publisher").await?;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (producer, queue) = (producer.clone(), queue.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (p..MESSAGES).step_by(PUBLISHERS) {
                    let id = producer
                        .publish(&queue, n.to_string().as_bytes())
                        .await
                        .map_err(|e| format!("publish: {e}"))?;
                    ids.push(id);
                }
                Ok::<_, String>(ids)
            })
        })
        .collect();

    let pg = procs::pg(&db.url()).await?;
    let mut rng = rand::rng();
    let mut kills = 0u64;
    let mut next_kill = Instant::now() + kill_gap(&mut rng);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let handled = distinct(&pg, kind).await?;
        if handled >= MESSAGES as i64 {
            break;
        }
        if started.elapsed() > LIMIT {
            return Err(format!(
                "{kind}: only {handled} of {MESSAGES} messages handled within {LIMIT:?}"
            ));
        }
        if Instant::now() >= next_kill {
            let slot = rng.random_range(0..CONSUMERS);
            consumers[slot].kill9();
            kills += 1;
            generation[slot] += 1;
            consumers[slot] = spawn(slot, generation[slot])?;
            next_kill = Instant::now() + kill_gap(&mut rng);
        }
    }
    let consumed_at = started.elapsed();
    let mut published = HashSet::new();
    for p in publishers {
        published.extend(p.await.map_err(|e| format!("publisher: {e}"))??);
    }
    // Let the survivors handle what the last kills left behind (RabbitMQ:
    // requeued at once; Redis: reclaimed after the visibility timeout), so
    // the duplicates are all counted and nothing is left for the check.
    drained(&producer, &queue, kind).await?;
    for c in consumers.iter_mut() {
        c.ask_to_stop();
    }
    for c in consumers.iter_mut() {
        if c.wait_exit(Duration::from_secs(20)).is_none() {
            return Err(format!("{kind}: consumer {} did not stop", c.label));
        }
    }
    let rows = pg
        .query(
            "SELECT msg_id, count(*) FROM deliveries WHERE backend = $1 GROUP BY msg_id",
            &[&kind],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut delivered = HashSet::new();
    let mut deliveries = 0i64;
    for row in &rows {
        delivered.insert(row.get::<_, String>(0));
        deliveries += row.get::<_, i64>(1);
    }
    // A consumer process that logged a message someone logged again later
    // was killed between its handler and the ack: a kill mid-message.
    let mid_message: i64 = pg
        .query_one(
            "SELECT count(DISTINCT d.consumer) FROM deliveries d WHERE d.backend = $1 AND EXISTS \
             (SELECT 1 FROM deliveries e WHERE e.backend = $1 AND e.msg_id = d.msg_id AND e.seq > d.seq)",
            &[&kind],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let retried: i64 = pg
        .query_one(
            "SELECT count(DISTINCT msg_id) FROM deliveries WHERE backend = $1 AND attempt > 1",
            &[&kind],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let lost = published.difference(&delivered).count();
    let unknown = delivered.difference(&published).count();
    let duplicates = deliveries - delivered.len() as i64;
    let dead = producer
        .dead_letter_count(&queue)
        .await
        .map_err(|e| e.to_string())?;
    let stats = producer.stats(&queue).await.map_err(|e| e.to_string())?;
    producer
        .delete_queue(&queue)
        .await
        .map_err(|e| e.to_string())?;

    report.figure(&format!("{kind}_published"), published.len());
    report.figure(&format!("{kind}_handled"), delivered.len());
    report.figure(&format!("{kind}_lost"), lost);
    report.figure(&format!("{kind}_duplicates"), duplicates);
    report.figure(&format!("{kind}_handled_after_retry"), retried);
    report.figure(&format!("{kind}_kills"), kills);
    report.figure(&format!("{kind}_kills_mid_message"), mid_message);
    report.figure(&format!("{kind}_dead_letters"), dead);
    report.figure(
        &format!("{kind}_seconds"),
        format!("{:.1}", consumed_at.as_secs_f64()),
    );

    if published.len() != MESSAGES {
        return Err(format!(
            "{kind}: {} distinct ids for {MESSAGES} publishes",
            published.len()
        ));
    }
    if lost > 0 || unknown > 0 {
        return Err(format!(
            "{kind}: {lost} messages lost, {unknown} delivered that were never published"
        ));
    }
    if dead > 0 || stats.waiting > 0 {
        return Err(format!(
            "{kind}: {dead} dead letters, {} still waiting",
            stats.waiting
        ));
    }
    if kills == 0 {
        return Err(format!("{kind}: no consumer was killed while consuming"));
    }
    Ok(())
}

/// Wait until the queue shows nothing waiting and nothing in flight twice
/// in a row, 300 ms apart (at most 60 s).
async fn drained(q: &Arc<dyn MessageQueue>, queue: &str, kind: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 2 {
        let stats = q.stats(queue).await.map_err(|e| e.to_string())?;
        if stats.waiting == 0 && stats.in_flight.unwrap_or(0) == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
        if Instant::now() > deadline {
            return Err(format!("{kind}: the queue did not drain: {stats:?}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

fn kill_gap(rng: &mut impl Rng) -> Duration {
    Duration::from_millis(rng.random_range(KILL_EVERY_MS.0..=KILL_EVERY_MS.1))
}

/// Distinct messages handled on `kind` so far.
async fn distinct(pg: &tokio_postgres::Client, kind: &str) -> Result<i64, String> {
    pg.query_one(
        "SELECT count(DISTINCT msg_id) FROM deliveries WHERE backend = $1",
        &[&kind],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| e.to_string())
}

/// The `queue-consumer` role: one subscription whose handler logs each
/// delivery, then works 0 to 3 ms (the window a kill lands in before the
/// ack); one message in `FAIL_ONE_IN` fails its first attempt. Stops
/// gracefully when the scenario closes its stdin.
pub fn child(args: &[String]) -> ExitCode {
    let result = Args::parse(args).and_then(|a| procs::runtime()?.block_on(consume(&a)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue-consumer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn consume(a: &Args) -> Result<(), String> {
    let kind = a.str("kind")?.to_string();
    let label = a.str("label")?.to_string();
    let stop = procs::stop_flag();
    let q = connect(&kind, a.str("url")?, a.str("ns")?, &label).await?;
    let pg = Arc::new(procs::pg(a.str("db")?).await?);
    pg.batch_execute("SET synchronous_commit = off")
        .await
        .map_err(|e| e.to_string())?;
    let log = pg
        .prepare(
            "INSERT INTO deliveries (backend, msg_id, consumer, attempt) VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(|e| e.to_string())?;
    let (k, l) = (kind.clone(), label.clone());
    let sub = q
        .subscribe(
            a.str("queue")?,
            CONCURRENCY,
            handler(move |msg| {
                let (pg, log, kind, label) = (pg.clone(), log.clone(), k.clone(), l.clone());
                async move {
                    // One message in FAIL_ONE_IN fails its first attempt:
                    // the retry path runs under the kills too.
                    let n: usize = msg.text().and_then(|t| t.parse().ok()).unwrap_or(1);
                    if n.is_multiple_of(FAIL_ONE_IN) && msg.attempt == 1 {
                        return Err("planned failure of a first attempt".to_string());
                    }
                    let attempt = i32::try_from(msg.attempt).unwrap_or(i32::MAX);
                    pg.execute(&log, &[&kind, &msg.id, &label, &attempt])
                        .await
                        .map_err(|e| e.to_string())?;
                    let work = rand::rng().random_range(0..=3);
                    tokio::time::sleep(Duration::from_millis(work)).await;
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
    report_line("ready");
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sub.shutdown().await.map_err(|e| e.to_string())
}
