//! Redis Cluster, against three real masters started by the test (joined
//! with `redis-cli --cluster create`): the connection layer finds the
//! cluster from any node's URL, refuses a database other than 0 in one
//! line, sends commands and pipelines to the master of each key's slot,
//! scans every master, and opens blocking readers on the right master.

use crate::common;

use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::adapters::worker_id;
use clusterops::config::parse_redis_url;
use common::cluster::RedisCluster;

async fn connect(raw: &str) -> Result<SharedConn, redis_conn::ConnectError> {
    redis_conn::connect(&parse_redis_url(raw).expect("a valid URL")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn any_node_finds_the_cluster_and_keys_spread_over_every_master() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    for i in 0..3 {
        let conn = connect(&cluster.url(i)).await.expect("connect to a node");
        assert!(conn.is_cluster(), "node {i} is seen as a cluster node");
        assert!(!conn.is_replicated(), "no replicas: not replicated");
    }
    let mut conn = connect(&cluster.url(1)).await.expect("connect");
    // Single commands go to the key's master, whichever node the URL names.
    for i in 0..60 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .expect("SET on the key's master");
    }
    let masters: std::collections::BTreeSet<usize> = (0..60)
        .map(|i| cluster.master_of(&format!("k{i}")))
        .collect();
    assert_eq!(masters.len(), 3, "60 keys land on every master");

    // A pipeline over keys of different slots: split and put back in order.
    let mut pipe = redis::pipe();
    for i in 0..60 {
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    pipe.cmd("TIME");
    let mut replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.expect("pipeline");
    assert!(
        matches!(replies.pop(), Some(redis::Value::Array(_))),
        "TIME answered"
    );
    let values: Vec<i64> = replies
        .iter()
        .map(|v| redis::from_redis_value_ref(v).expect("an integer"))
        .collect();
    assert_eq!(values, (0..60).collect::<Vec<i64>>());

    // A SCAN loop written for one server sees the keys of every master.
    let mut cursor: u64 = 0;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("k*")
            .arg("COUNT")
            .arg(7)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 60, "{seen:?}");

    // A multi-key DEL across slots is split by the client.
    let deleted: i64 = redis::cmd("DEL")
        .arg(&["k0", "k1", "k2", "k3"])
        .query_async(&mut conn)
        .await
        .expect("DEL over several slots");
    assert_eq!(deleted, 4);

    // One connection per master, three of them.
    let each = conn.masters().await.expect("masters");
    assert_eq!(each.len(), 3);
    let shards = conn.shards().await.expect("shards");
    assert_eq!(shards.iter().map(|s| s.slot_count()).sum::<u32>(), 16384);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_other_than_0_is_one_line_naming_the_fix() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let url = cluster.url(0).replace("/0", "/3");
    let err = connect(&url).await.expect_err("database 3 on a cluster");
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("only database 0") && line.contains("remove /3"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocking_read_goes_to_the_master_of_its_key() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let mut conn = connect(&cluster.url(0)).await.expect("connect");
    for key in ["stream-a", "stream-b", "stream-c", "stream-d"] {
        let mut reader = conn.blocking(key).await.expect("blocking connection");
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("f")
            .arg("v")
            .query_async(&mut conn)
            .await
            .expect("XADD");
        let got: redis::Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(key)
            .arg("0")
            .query_async(&mut reader)
            .await
            .expect("XREAD on the key's master, not MOVED");
        assert!(
            matches!(got, redis::Value::Array(ref a) if !a.is_empty())
                || matches!(got, redis::Value::Map(_)),
            "{got:?}"
        );
    }
}

/// A connection opened while a shard has lost its replica (its master was
/// killed and the replica promoted, the old master not back yet) still
/// counts the cluster as replicated: its lease writes and publishes wait
/// for `WAIT 1` like every other connection's. It used to be decided by
/// every shard having a replica online at that moment, so a node started
/// during a failover skipped `WAIT` and the worker-ID quarantine for as
/// long as its connection lived.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_opened_while_a_shard_recovers_from_a_failover_is_replicated() {
    use std::time::{Duration, Instant};
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    // Writes on every shard, so that every replica has a replication
    // offset the other nodes hear of (Redis 7 lists a replica in `CLUSTER
    // SLOTS` only then): from here on, the old rule said replicated too.
    let mut writer = connect(&cluster.url(0)).await.expect("connect");
    for i in 0..30 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut writer)
            .await
            .expect("SET");
    }
    let start = Instant::now();
    loop {
        let before = connect(&cluster.url(0)).await.expect("connect");
        let shards = before.shards().await.expect("CLUSTER SLOTS");
        if shards.iter().all(|s| !s.replicas.is_empty()) {
            assert!(before.is_replicated(), "every shard has a replica");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "CLUSTER SLOTS never listed every replica: {shards:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let victim = tokio::task::block_in_place(|| cluster.master_of("some-key"));
    cluster.kill(victim);
    let start = Instant::now();
    while tokio::task::block_in_place(|| cluster.masters()).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no replica promoted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| cluster.wait_ok(Duration::from_secs(20)));
    let other = (0..cluster.nodes.len())
        .find(|&i| i != victim)
        .expect("another node");
    let during = connect(&cluster.url(other)).await.expect("connect");
    let shards = during.shards().await.expect("CLUSTER SLOTS");
    assert!(
        shards.iter().any(|s| s.replicas.is_empty()),
        "the promoted master has no replica yet: {shards:?}"
    );
    assert!(
        during.is_replicated(),
        "a cluster with replicas stays replicated while one shard recovers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_over_every_master_still_answers_after_a_failover() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    let mut conn = connect(&cluster.url(0)).await.expect("connect");
    let keys: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    for k in &keys {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(k)
            .query_async(&mut conn)
            .await
            .expect("SET");
    }
    let read = |conn: &mut SharedConn| {
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("GET").arg(k);
        }
        let mut c = conn.clone();
        async move { pipe.query_async::<Vec<Option<String>>>(&mut c).await }
    };
    // The first read learns the shard map and groups the reads by master.
    let before = read(&mut conn).await.expect("pipeline");
    assert_eq!(before.iter().flatten().count(), 30);
    // Let the writes reach the replicas, then kill a master: the kept map
    // names a dead node, and the pipeline falls back to per-slot routing.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let victim = cluster.master_of("p0");
    cluster.kill(victim);
    tokio::task::block_in_place(|| {
        cluster.wait_promoted(victim, std::time::Duration::from_secs(30))
    });
    let after = read(&mut conn).await.expect("pipeline after the failover");
    assert_eq!(after, before, "every value read back, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_id_master_is_found_again_when_the_old_master_is_back_as_a_replica() {
    // A connection opened before a failover asks the worker-ID slot's
    // master for its replication ID (INFO, routed by the client's slot map)
    // after the old master came back as a replica: it must reach the
    // promoted one within a few tries (a CI run had a node that never
    // issued IDs again after a failover; the cause is not established).
    use std::time::Duration;
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    let key = "{wid}:probe";
    let victim = cluster.master_of(key);
    let mut conn = connect(&cluster.url(victim)).await.expect("connect");
    let before = worker_id::master_replid(&mut conn, key)
        .await
        .expect("INFO")
        .expect("a master");
    tokio::task::block_in_place(|| {
        cluster.kill(victim);
        cluster.wait_promoted(victim, Duration::from_secs(30));
        cluster.restart(victim);
        cluster.wait_synced_replica(victim, Duration::from_secs(30));
    });
    let mut found = None;
    for _ in 0..5 {
        if let Ok(Some(id)) = worker_id::master_replid(&mut conn, key).await {
            found = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = found.expect("the new master's replication ID within 5 tries");
    assert_ne!(
        after, before,
        "the promoted replica's ID, not the old master's"
    );
}
