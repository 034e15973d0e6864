//! Redis Sentinel, against a real master, replica and three sentinels
//! started by the test: the master found through the sentinels (with their
//! own password), followed after `SENTINEL FAILOVER` by the shared
//! connection and by whole nodes (queue consumers resume, health comes
//! back) without a restart, over plaintext and over TLS.

mod common;

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
    let failed_over = Instant::now();
    tokio::task::block_in_place(|| set.failover());
    // Writes may fail while the master moves (and while a worker ID whose
    // lease the new master lacks is re-acquired and quarantined); every
    // acknowledged one must be handled.
    let mut acknowledged = 10;
    let mut i = 10;
    while acknowledged < 30 && failed_over.elapsed() < Duration::from_secs(40) {
        if post(i).await.ok() == Some(201) {
            acknowledged += 1;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &nodes {
        let health = n.wait_for_health(200, Duration::from_secs(30)).await;
        assert!(health.starts_with("ok"), "{}: {health}", n.node_id);
    }
    let healthy_after = failed_over.elapsed();
    assert!(
        acknowledged == 30,
        "writes succeed again after a failover: {acknowledged} of {i}"
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
    println!(
        "nodes healthy again {healthy_after:?} after the failover; {acknowledged}/{i} writes acknowledged, all handled"
    );
    for n in &nodes {
        no_secret(&n.log_text());
    }
}
