//! Redis Cluster, against three real masters started by the test (joined
//! with `redis-cli --cluster create`): the connection layer finds the
//! cluster from any node's URL, refuses a database other than 0 in one
//! line, sends commands and pipelines to the master of each key's slot,
//! scans every master, and opens blocking readers on the right master.

mod common;

use clusterops::adapters::redis_conn::{self, SharedConn};
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
