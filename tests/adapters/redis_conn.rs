//! The adapters' shared Redis connection across a Redis restart: a
//! connection left idle while the server went away and came back sends its
//! next command without an error (it used to fail once with `broken pipe`,
//! losing the first sync signal, cache invalidation or queued message).

use crate::common;

use clusterops::adapters::pubsub::{Payload, RedisSignals, SubscribeOptions, SyncSignals};
use clusterops::adapters::redis_conn;
use clusterops::config::SecretUrl;
use common::{PrivateRedis, TestNs};
use std::time::Duration;

fn url(raw: &str) -> SecretUrl {
    SecretUrl::parse(raw, &["redis"]).unwrap()
}

#[tokio::test]
async fn an_idle_shared_connection_sends_its_first_command_after_a_restart() {
    let mut server = PrivateRedis::start_persistent();
    let mut conn = redis_conn::connect(&url(&server.url())).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("before")
        .query_async(&mut conn)
        .await
        .unwrap();
    server.restart();
    let got: Result<String, _> = redis::cmd("GET").arg("k").query_async(&mut conn).await;
    assert_eq!(
        got.unwrap(),
        "before",
        "the first command after the restart"
    );
    let piped: Result<(String,), _> = redis::pipe()
        .cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await;
    assert_eq!(piped.unwrap().0, "before");

    // While the server is down, commands still fail (fast), and the next
    // one after it is back works.
    server.kill();
    let down: Result<String, _> = redis::cmd("GET").arg("k").query_async(&mut conn).await;
    assert!(down.is_err());
    server.restart();
    let got: Result<String, _> = redis::cmd("GET").arg("k").query_async(&mut conn).await;
    assert_eq!(got.unwrap(), "before");
}

#[tokio::test]
async fn the_first_sync_signal_after_a_restart_is_published_and_received() {
    let mut server = PrivateRedis::start_persistent();
    let ns = TestNs::on("conn-restart", &server.url());
    let a = RedisSignals::connect(&url(&server.url()), ns.namespace(), "a")
        .await
        .unwrap();
    let b = RedisSignals::connect(&url(&server.url()), ns.namespace(), "b")
        .await
        .unwrap();
    let mut sub = b
        .subscribe("records", SubscribeOptions::default())
        .await
        .unwrap();
    a.publish("records", Payload::Json(serde_json::json!({"i": 0})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();

    server.restart();
    a.publish("records", Payload::Json(serde_json::json!({"i": 1})))
        .await
        .expect("the first publish after the restart");
    let signal = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("received within 10 s")
        .unwrap();
    assert_eq!(signal.payload, Payload::Json(serde_json::json!({"i": 1})));
}
