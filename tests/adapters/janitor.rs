//! The janitor against real Redis (the shared server, and a private Redis
//! Cluster): consumers and sync-signal cursors of dead nodes are removed
//! once idle and owning nothing; live nodes' are kept; an entry a dead
//! consumer still owns is never dropped; one node sweeps per period.
//! Stream trimming: tests/adapters/stream_trimming.rs.

use crate::common;

use clusterops::adapters::pubsub::{RedisSignals, SubscribeOptions, SyncSignals};
use clusterops::adapters::queue::{MessageQueue, REDIS_GROUP, RedisQueue, handler};
use clusterops::adapters::redis_conn::SharedConn;
use clusterops::config::{Namespace, parse_redis_url};
use clusterops::node::janitor::{Janitor, JanitorError, JanitorOptions, claim_key};
use clusterops::node::metrics::Metrics;
use common::TestNs;
use common::cluster::RedisCluster;
use common::janitor::{
    connect, consume_then_crash, consumers, idle, queue_options, register, wait_for,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_nodes_idle_consumer_is_removed_and_a_live_nodes_is_kept() {
    let t = TestNs::new("janitor-consumers");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    register(&mut conn, &ns, "sweeper").await;
    register(&mut conn, &ns, "live").await;
    consume_then_crash(&t.url, &ns, "dead", "jobs", 3).await;
    consume_then_crash(&t.url, &ns, "live", "jobs", 2).await;
    let key = clusterops::adapters::queue::stream_key(&ns, "jobs");
    let before = consumers(&mut conn, &key).await;
    assert_eq!(before, vec![("dead-0".into(), 0), ("live-0".into(), 0)]);

    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        Some(conn.clone()),
        None,
        idle(60_000),
    );
    // Not idle long enough yet: kept.
    let sweep = janitor.sweep().await.expect("sweep");
    assert!(sweep.queues.expect("queue swept").removed.is_empty());
    assert_eq!(consumers(&mut conn, &key).await.len(), 2);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        Some(conn.clone()),
        None,
        idle(300),
    );
    let metrics = Metrics::default();
    let sweep = janitor
        .tick(&metrics)
        .await
        .expect("tick")
        .expect("claimed");
    let removed: Vec<String> = sweep
        .queues
        .expect("queue swept")
        .removed
        .into_iter()
        .map(|r| r.consumer)
        .collect();
    assert_eq!(removed, vec!["dead-0".to_string()]);
    assert_eq!(
        consumers(&mut conn, &key).await,
        vec![("live-0".into(), 0)],
        "the live node's idle consumer stays"
    );
    assert_eq!(metrics.janitor_consumers_removed.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.janitor_sweeps.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_owning_entries_is_kept_until_they_are_reclaimed() {
    let t = TestNs::new("janitor-pending");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    register(&mut conn, &ns, "sweeper").await;
    let key = clusterops::adapters::queue::stream_key(&ns, "jobs");
    // The dead node read two messages and died before acknowledging them.
    let url = parse_redis_url(&t.url).expect("url");
    let q = RedisQueue::connect(&url, ns.clone(), "pub", queue_options())
        .await
        .expect("queue");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(REDIS_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    let ids = [
        q.publish("jobs", b"a").await.expect("publish"),
        q.publish("jobs", b"b").await.expect("publish"),
    ];
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(REDIS_GROUP)
        .arg("dead-0")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("the dead node's read");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        Some(conn.clone()),
        None,
        idle(100),
    );
    let sweep = janitor.sweep().await.expect("sweep").queues.expect("queue");
    assert!(sweep.removed.is_empty(), "{sweep:?}");
    assert_eq!(sweep.kept_pending, 1);
    assert_eq!(sweep.trimmed, 0, "pending entries are not trimmed");
    assert_eq!(consumers(&mut conn, &key).await, vec![("dead-0".into(), 2)]);

    // A live consumer reclaims and handles both; then the dead one goes.
    register(&mut conn, &ns, "live").await;
    let live = RedisQueue::connect(&url, ns.clone(), "live", queue_options())
        .await
        .expect("queue");
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s = seen.clone();
    let sub = live
        .subscribe(
            "jobs",
            2,
            handler(move |m| {
                let s = s.clone();
                async move {
                    s.lock().push(m.id);
                    Ok::<(), String>(())
                }
            }),
        )
        .await
        .expect("subscribe");
    wait_for(
        "both reclaimed and handled",
        Duration::from_secs(15),
        async || seen.lock().len() >= 2,
    )
    .await;
    let mut got = seen.lock().clone();
    got.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(got, want, "the dead consumer's entries were delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sweep = janitor.sweep().await.expect("sweep").queues.expect("queue");
    let removed: Vec<String> = sweep.removed.into_iter().map(|r| r.consumer).collect();
    assert_eq!(removed, vec!["dead-0".to_string()]);
    assert_eq!(consumers(&mut conn, &key).await, vec![("live-0".into(), 0)]);
    sub.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_cursors_are_removed_and_live_ones_kept() {
    let t = TestNs::new("janitor-cursors");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    register(&mut conn, &ns, "sweeper").await;
    register(&mut conn, &ns, "live").await;
    let url = parse_redis_url(&t.url).expect("url");
    let mut nodes = Vec::new();
    for id in ["live", "dead"] {
        let s = RedisSignals::connect(&url, ns.clone(), id)
            .await
            .expect("signals");
        let sub = s
            .subscribe("events", SubscribeOptions::default())
            .await
            .expect("subscribe");
        nodes.push((s, sub));
    }
    let publisher = RedisSignals::connect(&url, ns.clone(), "pub")
        .await
        .expect("signals");
    publisher
        .publish("events", serde_json::json!(1).into())
        .await
        .expect("publish");
    for (_, sub) in &mut nodes {
        let got = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await;
        assert!(matches!(got, Ok(Some(_))), "delivered");
    }
    // The dead node stops (its final cursor is written), and stays away.
    let (dead, _) = nodes.pop().expect("dead node");
    dead.shutdown().await;
    let ckey = clusterops::adapters::pubsub::redis::cursors_key(&ns, "events");
    let fields = |c: &mut SharedConn| {
        let mut c = c.clone();
        let ckey = ckey.clone();
        async move {
            let mut f: Vec<String> = redis::cmd("HKEYS")
                .arg(&ckey)
                .query_async(&mut c)
                .await
                .expect("HKEYS");
            f.sort();
            f
        }
    };
    wait_for("both cursors written", Duration::from_secs(5), async || {
        fields(&mut conn).await == vec!["dead", "live"]
    })
    .await;

    // Unseen for less than the threshold: kept.
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        None,
        Some(conn.clone()),
        idle(60_000),
    );
    let sweep = janitor.sweep().await.expect("sweep");
    assert!(sweep.cursors.expect("cursors swept").removed.is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        None,
        Some(conn.clone()),
        idle(300),
    );
    let metrics = Metrics::default();
    let sweep = janitor.tick(&metrics).await.expect("tick").expect("claim");
    let removed: Vec<(String, String)> = sweep
        .cursors
        .expect("cursors swept")
        .removed
        .into_iter()
        .map(|r| (r.channel, r.node))
        .collect();
    assert_eq!(removed, vec![("events".to_string(), "dead".to_string())]);
    assert_eq!(
        fields(&mut conn).await,
        vec!["live"],
        "a live node's cursor stays, however long unchanged"
    );
    assert_eq!(metrics.janitor_cursors_removed.load(Ordering::SeqCst), 1);
    for (s, _) in nodes {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_node_sweeps_per_period_and_an_unregistered_node_removes_nothing() {
    let t = TestNs::new("janitor-claim");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    let make = |id: &str| {
        Janitor::new(
            id,
            ns.clone(),
            conn.clone(),
            Some(conn.clone()),
            Some(conn.clone()),
            idle(0),
        )
    };
    let (mut a, mut b) = (make("a"), make("b"));
    assert!(a.claim().await.expect("claim"));
    assert!(!b.claim().await.expect("claim"), "the period is a's");
    let holder: String = redis::cmd("GET")
        .arg(claim_key(&ns))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(holder, "a");
    assert!(claim_key(&ns).ends_with(&format!(":janitor:{{{}}}", ns.name())));

    // A consumer and a cursor of a node nobody lists as alive.
    consume_then_crash(&t.url, &ns, "gone", "jobs", 1).await;
    let ckey = clusterops::adapters::pubsub::redis::cursors_key(&ns, "events");
    let _: () = redis::cmd("HSET")
        .arg(&ckey)
        .arg("gone")
        .arg(r#"{"id":"1-0","seq":1,"at_ms":1}"#)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    // The sweeper itself is not in the registry: liveness unknown.
    let err = a.sweep().await.expect_err("refused");
    assert!(matches!(err, JanitorError::NotRegistered(_)), "{err}");
    let key = clusterops::adapters::queue::stream_key(&ns, "jobs");
    assert_eq!(consumers(&mut conn, &key).await.len(), 1);

    register(&mut conn, &ns, "a").await;
    let sweep = a.sweep().await.expect("sweep");
    assert_eq!(sweep.queues.expect("q").removed.len(), 1);
    assert_eq!(sweep.cursors.expect("c").removed.len(), 1);
    assert!(consumers(&mut conn, &key).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_janitor_works_on_a_redis_cluster() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let url = cluster.url(0);
    let ns = Namespace::new("janitor-cluster").expect("ns");
    let mut conn = connect(&url).await;
    register(&mut conn, &ns, "sweeper").await;
    // Queues and channels spread over the masters.
    let queues: Vec<String> = (0..6).map(|i| format!("jobs-{i}")).collect();
    for q in &queues {
        consume_then_crash(&url, &ns, "dead", q, 1).await;
    }
    let parsed = parse_redis_url(&url).expect("url");
    let channels: Vec<String> = (0..6).map(|i| format!("events-{i}")).collect();
    let dead = RedisSignals::connect(&parsed, ns.clone(), "dead")
        .await
        .expect("signals");
    let mut subs = Vec::new();
    for c in &channels {
        subs.push(
            dead.subscribe(c, SubscribeOptions::default())
                .await
                .expect("subscribe"),
        );
    }
    dead.shutdown().await;
    let masters: std::collections::BTreeSet<usize> = queues
        .iter()
        .map(|q| cluster.master_of(&clusterops::adapters::queue::stream_key(&ns, q)))
        .collect();
    assert!(masters.len() > 1, "queues on several masters");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        Some(conn.clone()),
        Some(conn.clone()),
        idle(300),
    );
    let metrics = Metrics::default();
    let sweep = janitor.tick(&metrics).await.expect("tick").expect("claim");
    assert_eq!(sweep.queues.expect("q").removed.len(), queues.len());
    assert_eq!(sweep.cursors.expect("c").removed.len(), channels.len());
    for q in &queues {
        let key = clusterops::adapters::queue::stream_key(&ns, q);
        assert!(consumers(&mut conn, &key).await.is_empty(), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_nodes_sweep_on_their_own_schedule() {
    let t = TestNs::new("janitor-schedule");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    for id in ["a", "b"] {
        register(&mut conn, &ns, id).await;
    }
    consume_then_crash(&t.url, &ns, "dead", "jobs", 1).await;
    let ckey = clusterops::adapters::pubsub::redis::cursors_key(&ns, "events");
    let _: () = redis::cmd("HSET")
        .arg(&ckey)
        .arg("dead")
        .arg(r#"{"id":"1-0","seq":1,"at_ms":1,"seen_ms":1}"#)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let options = JanitorOptions {
        every: Duration::from_millis(200),
        consumer_idle: Duration::from_millis(100),
        cursor_idle: Duration::from_millis(100),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut metrics = Vec::new();
    for id in ["a", "b"] {
        let m = Arc::new(Metrics::default());
        let j = Janitor::new(
            id,
            ns.clone(),
            conn.clone(),
            Some(conn.clone()),
            Some(conn.clone()),
            options,
        );
        tokio::spawn(j.run_counting(m.clone(), stop.clone()));
        metrics.push(m);
    }
    let key = clusterops::adapters::queue::stream_key(&ns, "jobs");
    wait_for("the janitor's sweep", Duration::from_secs(10), async || {
        let left: u64 = redis::cmd("HLEN")
            .arg(&ckey)
            .query_async(&mut conn.clone())
            .await
            .expect("HLEN");
        left == 0 && consumers(&mut conn.clone(), &key).await.is_empty()
    })
    .await;
    // Let a few more periods pass: nothing is removed twice.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = stop_tx.send(true);
    let sum = |f: fn(&Metrics) -> &AtomicU64| -> u64 {
        metrics.iter().map(|m| f(m).load(Ordering::SeqCst)).sum()
    };
    assert_eq!(sum(|m| &m.janitor_consumers_removed), 1);
    assert_eq!(sum(|m| &m.janitor_cursors_removed), 1);
    let sweeps = sum(|m| &m.janitor_sweeps);
    // The removals were counted once, by whichever node swept; the sweeps
    // go on every period.
    assert!(sweeps >= 2, "{sweeps} sweeps");
}
