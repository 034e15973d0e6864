//! Redis Sentinel, against a real master, replica and three sentinels
//! started by the test: the master found through the sentinels (with their
//! own password), followed after `SENTINEL FAILOVER` by the shared
//! connection and by whole nodes (queue consumers resume, health comes
//! back) without a restart, over plaintext and over TLS.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::config::parse_redis_url;
use common::nodes::TestCluster;
use common::topology::{Pki, Secrets, SentinelSet};
use serde_json::json;
use std::time::{Duration, Instant};

const DATA_PW: &str = "data-pw-7731";
const SENTINEL_PW: &str = "sentinel-pw-0442";

const SECRETS: Secrets<'static> = Secrets {
    data: Some(DATA_PW),
    sentinel: Some(SENTINEL_PW),
};

async fn connect(raw: &str) -> Result<redis_conn::SharedConn, redis_conn::ConnectError> {
    redis_conn::connect(&parse_redis_url(raw).expect("a valid URL")).await
}

fn no_secret(text: &str) {
    assert!(
        !text.contains(DATA_PW) && !text.contains(SENTINEL_PW),
        "a password shows: {text}"
    );
}

async fn set_get(conn: &mut redis_conn::SharedConn, key: &str, value: &str) -> String {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .expect("SET");
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_connection_follows_the_master_across_failovers() {
    let set = SentinelSet::start(None, SECRETS);
    let mut conn = connect(&set.url(0))
        .await
        .expect("connect through the sentinels");
    let first = set.master_port();
    assert_eq!(conn.server(), format!("127.0.0.1:{first}"));
    assert_eq!(set_get(&mut conn, "k", "before").await, "before");

    for round in 1..=2 {
        let new = tokio::task::block_in_place(|| set.failover());
        // The first command after the failover meets a killed connection
        // (or a replica) and moves to the new master by itself.
        let value = format!("after-{round}");
        assert_eq!(set_get(&mut conn, "k", &value).await, value);
        assert_eq!(conn.server(), format!("127.0.0.1:{new}"), "round {round}");
        let on_master = set.data_cli(new, &["GET", "k"]);
        assert_eq!(
            on_master.as_deref(),
            Some(value.as_str()),
            "the write is on the new master"
        );
    }
}

#[tokio::test]
async fn the_sentinels_have_their_own_password_and_a_wrong_one_is_one_line() {
    let set = SentinelSet::start(None, SECRETS);
    let url = set.url(0);
    let without = url.replace(&format!("?sentinel_password={SENTINEL_PW}"), "");
    assert_ne!(url, without);
    let started = Instant::now();
    let err = connect(&without)
        .await
        .expect_err("the sentinels require a password");
    let text = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("no sentinel named the master \"mymaster\""),
        "{text}"
    );
    assert!(text.contains("sentinel_password"), "{text}");
    no_secret(&text);

    let wrong_name = url.replace("#mymaster", "#other");
    let text = connect(&wrong_name)
        .await
        .expect_err("unknown master")
        .to_string();
    assert!(text.contains("knows no master named \"other\""), "{text}");
    no_secret(&text);

    let mut ok = connect(&url).await.expect("with both passwords");
    assert_eq!(set_get(&mut ok, "k", "v").await, "v");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_sentinel_is_skipped() {
    let mut set = SentinelSet::start(None, SECRETS);
    set.sentinels[0].kill();
    let mut conn = connect(&set.url(0)).await.expect("two sentinels answer");
    assert_eq!(set_get(&mut conn, "k", "v").await, "v");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_sentinels_and_data_nodes_with_a_private_ca() {
    let pki = Pki::new();
    let set = SentinelSet::start(Some(&pki), SECRETS);
    let url = set.url(0);
    assert!(url.starts_with("rediss-sentinel://"));
    let mut conn = connect(&url).await.expect("TLS through the sentinels");
    assert_eq!(set_get(&mut conn, "k", "tls").await, "tls");
    let new = tokio::task::block_in_place(|| set.failover());
    assert_eq!(set_get(&mut conn, "k", "tls-after").await, "tls-after");
    assert_eq!(conn.server(), format!("127.0.0.1:{new}"));

    let untrusted = url.replace(&pki.ca(), &pki.other_ca());
    let text = connect(&untrusted)
        .await
        .expect_err("untrusted")
        .to_string();
    assert!(text.contains("certificate not trusted"), "{text}");
    no_secret(&text);
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_keep_serving_and_consuming_across_a_failover() {
    let set = SentinelSet::start(None, SECRETS);
    let c = TestCluster::new("sentinel-nodes");
    let env = c.env_on_redis("sentinel.env", &set.url(0));
    let nodes = [
        c.spawn_with_env("s1", "1", &env),
        c.spawn_with_env("s2", "1", &env),
    ];
    for n in &nodes {
        n.wait_for_status(Duration::from_secs(30)).await;
        n.wait_for_health(200, Duration::from_secs(30)).await;
    }
    let post = |i: usize| {
        let n = &nodes[i % 2];
        let req = n
            .http
            .post(n.url("/api/records"))
            .json(&json!({"name": format!("r{i}"), "value": "v"}));
        async move { req.send().await.map(|r| r.status().as_u16()) }
    };
    // A fresh namespace on a Sentinel master: the first worker-ID leases
    // wait out the quarantine (one TTL and 1 s, docs/snowflake.md) before
    // records (snowflake ids) can be created.
    let first = Instant::now();
    while post(0).await.ok() != Some(201) {
        assert!(
            first.elapsed() < Duration::from_secs(15),
            "no record created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 1..10 {
        assert_eq!(post(i).await.ok(), Some(201));
    }
    // The failover runs on its own thread while both nodes keep taking
    // writes; some may be refused while the master moves, every
    // acknowledged one must be handled.
    let started = Instant::now();
    let failover = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let done = scope.spawn(|| set.failover());
            let rt = tokio::runtime::Handle::current();
            let mut acknowledged = 10;
            let mut last_refused: Option<Duration> = None;
            let mut i = 10;
            let mut settled_at: Option<Instant> = None;
            while settled_at.is_none_or(|t| t.elapsed() < Duration::from_secs(2)) {
                if settled_at.is_none() && done.is_finished() {
                    settled_at = Some(Instant::now());
                }
                if rt.block_on(post(i)).ok() == Some(201) {
                    acknowledged += 1;
                } else {
                    last_refused = Some(started.elapsed());
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (acknowledged, i, last_refused)
        })
    });
    let (mut acknowledged, posted, last_refused) = failover;
    // Writes succeed again: a node whose worker-ID lease the new master
    // lacks takes one again and waits out its quarantine first.
    let mut i = posted;
    let mut in_a_row = 0;
    let again = Instant::now();
    while in_a_row < 5 {
        assert!(
            again.elapsed() < Duration::from_secs(30),
            "writes do not succeed again"
        );
        if post(i).await.ok() == Some(201) {
            acknowledged += 1;
            in_a_row += 1;
        } else {
            in_a_row = 0;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &nodes {
        let health = n.wait_for_health(200, Duration::from_secs(30)).await;
        assert!(health.starts_with("ok"), "{}: {health}", n.node_id);
    }
    println!(
        "failover: {acknowledged}/{i} writes acknowledged; last refused write {last_refused:?} after SENTINEL FAILOVER"
    );
    let want = acknowledged.to_string();
    let handled = common::nodes::eventually(Duration::from_secs(30), || async {
        c.db.query("SELECT count(*) FROM record_events") == want
    })
    .await;
    assert!(
        handled,
        "{acknowledged} acknowledged records, {} handled",
        c.db.query("SELECT count(*) FROM record_events")
    );
    for n in &nodes {
        no_secret(&n.log_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_stays_renewed_and_fencing_tokens_keep_rising_across_a_failover() {
    use clusterops::adapters::lock::{LockBackend, RedisLock};
    let set = SentinelSet::start(None, SECRETS);
    let ns = common::TestNs::new("sentinel-lock");
    let url = parse_redis_url(&set.url(0)).expect("URL");
    let lock = RedisLock::connect(&url, ns.namespace(), "node-a")
        .await
        .expect("lock through the sentinels");
    // Longer than a failover takes: a lock whose TTL runs out while the
    // master moves is lost, as it should be.
    let ttl = Duration::from_secs(8);
    let acquired = Instant::now();
    let guard = lock
        .try_acquire("jobs", ttl)
        .await
        .expect("acquire")
        .expect("free");
    let mut last = guard.fencing_token();
    let new = tokio::task::block_in_place(|| set.failover());
    tokio::time::sleep(Duration::from_secs(4)).await;
    if let Err(e) = guard.check() {
        panic!("the lock is still held after the failover: {e}");
    }
    let key = clusterops::adapters::lock::lock_key(&ns.namespace(), "jobs");
    let pttl = set
        .data_cli(new, &["PTTL", &key])
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(-2);
    let unrenewed = ttl.saturating_sub(acquired.elapsed()).as_millis() as i64;
    assert!(
        pttl > unrenewed + 500,
        "the watchdog renewed on the new master: PTTL {pttl} ms, {unrenewed} ms without renewals"
    );
    guard.release().await.expect("release");
    // A counter lost with the old master (simulated on the new one): the
    // next token is still above every token handed out before.
    let fence = clusterops::adapters::lock::fence_key(&ns.namespace(), "jobs");
    set.data_cli(new, &["DEL", &fence])
        .expect("DEL on the new master");
    let g = lock
        .try_acquire("jobs", ttl)
        .await
        .expect("acquire")
        .expect("free");
    assert!(
        g.fencing_token() > last,
        "{} after {last}",
        g.fencing_token()
    );
    last = g.fencing_token();
    g.release().await.expect("release");
    let g = lock
        .try_acquire("jobs", ttl)
        .await
        .expect("acquire")
        .expect("free");
    assert!(g.fencing_token() > last);
    g.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_message_is_on_a_replica_before_publish_returns() {
    use clusterops::adapters::queue::{MessageQueue, QueueError, QueueOptions, RedisQueue};
    let mut set = SentinelSet::start(None, SECRETS);
    let ns = common::TestNs::new("sentinel-queue-wait");
    let url = parse_redis_url(&set.url(0)).expect("URL");
    let q = RedisQueue::connect(&url, ns.namespace(), "producer", QueueOptions::default())
        .await
        .expect("queue through the sentinels");
    let key = q.stream_key("jobs");
    for i in 0..20 {
        q.publish("jobs", format!("m{i}").as_bytes())
            .await
            .expect("publish");
    }
    let replica = set.replica_port();
    assert_eq!(
        set.data_cli(replica, &["XLEN", &key]).as_deref(),
        Some("20"),
        "every acknowledged message is already on the replica"
    );
    // A replica that cannot confirm: publish says so instead of claiming
    // the message is safe.
    set.data_server(replica).signal("-STOP");
    let started = Instant::now();
    let err = q.publish("jobs", b"unconfirmed").await;
    set.data_server(replica).signal("-CONT");
    match err {
        Err(e @ QueueError::NotReplicated { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("no replica confirmed") && text.contains(&key),
                "{text}"
            );
        }
        other => panic!("expected NotReplicated, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_message_is_lost_across_failovers() {
    use clusterops::adapters::queue::{MessageQueue, QueueOptions, RedisQueue, handler};
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let set = SentinelSet::start(None, SECRETS);
    let ns = common::TestNs::new("sentinel-queue");
    let url = parse_redis_url(&set.url(0)).expect("URL");
    let consumer = RedisQueue::connect(&url, ns.namespace(), "consumer", QueueOptions::default())
        .await
        .expect("consumer");
    let producer = RedisQueue::connect(&url, ns.namespace(), "producer", QueueOptions::default())
        .await
        .expect("producer");
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s2 = seen.clone();
    let sub = consumer
        .subscribe(
            "jobs",
            4,
            handler(move |msg| {
                let seen = s2.clone();
                async move {
                    seen.lock()
                        .map_err(|e| e.to_string())?
                        .insert(String::from_utf8_lossy(&msg.payload).to_string());
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .expect("subscribe");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut acked, mut failed, mut i) = (Vec::new(), 0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("m{i}");
                match producer.publish("jobs", body.as_bytes()).await {
                    Ok(_) => acked.push(body),
                    Err(_) => failed += 1,
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..2 {
        tokio::task::block_in_place(|| set.failover());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, failed) = publisher.await.expect("publisher");
    assert!(acked.len() > 50, "messages published: {}", acked.len());
    let all_seen = common::nodes::eventually(Duration::from_secs(30), || {
        let seen = seen.clone();
        let acked = acked.clone();
        async move {
            let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
            acked.iter().all(|m| seen.contains(m))
        }
    })
    .await;
    let lost = {
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        acked.iter().filter(|m| !seen.contains(*m)).count()
    };
    println!(
        "2 failovers: {} messages acknowledged, {failed} publishes refused, {lost} lost",
        acked.len()
    );
    assert!(
        all_seen && lost == 0,
        "{lost} acknowledged messages never handled"
    );
    sub.shutdown().await.expect("shutdown");
}
