//! Stream trimming against real Redis: a sync-signal stream keeps every
//! entry after the slowest recorded cursor (a slow reader that restarts
//! misses nothing) and shrinks once it caught up; a `:cursors` key of
//! another type stops trimming, not publishing; a queue stream is trimmed
//! only below its group's pending and undelivered entries.

use crate::common;

use clusterops::adapters::pubsub::{
    RedisSignals, RedisSignalsOptions, SubscribeOptions, SyncSignals,
};
use clusterops::adapters::queue::REDIS_GROUP;
use clusterops::adapters::redis_conn::SharedConn;
use clusterops::config::parse_redis_url;
use clusterops::node::janitor::Janitor;
use common::TestNs;
use common::janitor::{connect, idle, register};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn queue_streams_are_trimmed_only_below_pending_and_undelivered_entries() {
    let t = TestNs::new("janitor-trim");
    let ns = t.namespace();
    let mut conn = connect(&t.url).await;
    register(&mut conn, &ns, "sweeper").await;
    let key = clusterops::adapters::queue::stream_key(&ns, "jobs");
    let other = clusterops::adapters::queue::stream_key(&ns, "nogroup");
    let mut ids = Vec::new();
    for i in 0..10 {
        let id: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("id")
            .arg(i)
            .arg("attempt")
            .arg(1)
            .arg("payload")
            .arg("p")
            .query_async(&mut conn)
            .await
            .expect("XADD");
        ids.push(id);
        let _: String = redis::cmd("XADD")
            .arg(&other)
            .arg("*")
            .arg("id")
            .arg(i)
            .arg("attempt")
            .arg(1)
            .arg("payload")
            .arg("p")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(REDIS_GROUP)
        .arg("0")
        .query_async(&mut conn)
        .await
        .expect("group");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(REDIS_GROUP)
        .arg("w-0")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("read 5");
    // Acknowledged without being deleted (what a consumer deleted with
    // entries pending leaves behind): only those below the oldest pending go.
    let ack = |which: &[String]| {
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&key).arg(REDIS_GROUP).arg(which);
        cmd
    };
    let _: i64 = ack(&[ids[0].clone(), ids[1].clone(), ids[3].clone()])
        .query_async(&mut conn)
        .await
        .expect("XACK");
    let mut janitor = Janitor::new(
        "sweeper",
        ns.clone(),
        conn.clone(),
        Some(conn.clone()),
        None,
        idle(60_000),
    );
    let first_ids = |c: &SharedConn, k: String| {
        let mut c = c.clone();
        async move {
            let v: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query_async(&mut c)
                .await
                .expect("XRANGE");
            v.into_iter().map(|(id, _)| id).collect::<Vec<String>>()
        }
    };
    let sweep = janitor.sweep().await.expect("sweep").queues.expect("q");
    assert_eq!(sweep.trimmed, 2);
    assert_eq!(first_ids(&conn, key.clone()).await, ids[2..].to_vec());
    // Everything delivered is acknowledged: the undelivered stay.
    let _: i64 = ack(&ids[2..5]).query_async(&mut conn).await.expect("XACK");
    let sweep = janitor.sweep().await.expect("sweep").queues.expect("q");
    assert_eq!(sweep.trimmed, 3);
    assert_eq!(first_ids(&conn, key.clone()).await, ids[5..].to_vec());
    assert_eq!(
        first_ids(&conn, other.clone()).await.len(),
        10,
        "a stream without a group is never trimmed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_live_reader_misses_nothing_and_the_stream_shrinks_once_it_caught_up() {
    let t = TestNs::new("janitor-slow-reader");
    let ns = t.namespace();
    let url = parse_redis_url(&t.url).expect("url");
    let options = RedisSignalsOptions {
        keep_recent: Duration::ZERO,
        ..RedisSignalsOptions::default()
    };
    let reader = RedisSignals::connect_with(&url, ns.clone(), "slow", options.clone())
        .await
        .expect("signals");
    let mut sub = reader
        .subscribe("events", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let publisher = RedisSignals::connect_with(&url, ns.clone(), "pub", options.clone())
        .await
        .expect("signals");
    // More than the old fixed bound (MAXLEN ~ 10000) while the reader is
    // busy with the first message.
    const N: u64 = 12_000;
    publisher
        .publish("events", serde_json::json!(0).into())
        .await
        .expect("publish");
    let first = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("first delivered")
        .expect("open");
    assert_eq!(first.payload, serde_json::json!(0).into());
    // Its cursor is written (before the unfinished first message).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 1..N {
        publisher
            .publish("events", serde_json::json!(i).into())
            .await
            .expect("publish");
    }
    let mut conn = connect(&t.url).await;
    let key = clusterops::adapters::pubsub::redis::stream_key(&ns, "events");
    let len: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert!(len >= N, "the slow reader's entries are all kept: {len}");
    // The reader restarts (its local queue is lost) and resumes at its
    // cursor: every message is read again from Redis.
    drop(sub);
    reader.shutdown().await;
    let reader = RedisSignals::connect_with(&url, ns.clone(), "slow", options.clone())
        .await
        .expect("signals");
    let mut sub = reader
        .subscribe("events", SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Message 0 counted as handled when its subscription was dropped.
    let mut next = 1u64;
    while next < N {
        let s = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("no gap in the messages")
            .expect("open");
        let clusterops::adapters::pubsub::Payload::Json(v) = s.payload else {
            panic!("a JSON payload");
        };
        let n = v.as_u64().expect("a number");
        assert!(n <= next, "message {next} was missed (got {n})");
        if n == next {
            next += 1;
        }
    }
    // Caught up: its cursor moves and the next publishes trim the stream
    // (every 16th publish trims; `XTRIM MINID ~` removes at most 10,000
    // entries per call).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in N..N + 40 {
        publisher
            .publish("events", serde_json::json!(i).into())
            .await
            .expect("publish");
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert!(len < 500, "trimmed to what the reader needs: {len}");
    reader.shutdown().await;
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursors_key_of_another_type_stops_trimming_not_publishing() {
    let t = TestNs::new("janitor-bad-cursors");
    let ns = t.namespace();
    let url = parse_redis_url(&t.url).expect("url");
    let mut conn = connect(&t.url).await;
    let ckey = clusterops::adapters::pubsub::redis::cursors_key(&ns, "events");
    let _: () = redis::cmd("SET")
        .arg(&ckey)
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let options = RedisSignalsOptions {
        keep_recent: Duration::ZERO,
        ..RedisSignalsOptions::default()
    };
    let publisher = RedisSignals::connect_with(&url, ns.clone(), "pub", options)
        .await
        .expect("signals");
    for i in 0..300 {
        publisher
            .publish("events", serde_json::json!(i).into())
            .await
            .expect("publishing still works");
    }
    let key = clusterops::adapters::pubsub::redis::stream_key(&ns, "events");
    let len: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(len, 300, "readers unknown: nothing trimmed");
    publisher.shutdown().await;
}
