//! The inspector and `clusterops status`/`check` against three real nodes
//! plus hand-made state, as a read-only Redis ACL user, with garbage keys,
//! and with Redis down.

use crate::common;

use clusterops::adapters::lock::{self, LockBackend, RedisLock};
use clusterops::adapters::pubsub::{self, Payload, SubscribeOptions, SyncSignals};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions, RedisQueue, RetryPolicy};
use clusterops::adapters::worker_id;
use clusterops::config::{Config, SecretUrl};
use clusterops::inspect::{Inspector, Source};
use clusterops::node::{maintenance, registry};
use common::nodes::{TestCluster, eventually};
use common::{PrivateRedis, TestNs};
use serde_json::Value;
use std::time::Duration;

fn status_json(env_file: &std::path::Path, extra_env: &[(&str, &str)]) -> (i32, Value) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args(["status", "--json", "--env-file"]).arg(env_file);
    for var in clusterops::config::VARIABLES {
        cmd.env_remove(var);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

fn url(c: &TestCluster) -> SecretUrl {
    SecretUrl::parse(&c.ns.url, &["redis"]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_nodes_leases_locks_lag_backlog_and_dead_letters() {
    let c = TestCluster::new("inspect");
    let nodes = [
        c.start("in-a", "2").await,
        c.start("in-b", "2").await,
        c.start("in-c", "2").await,
    ];
    for n in &nodes {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    let ns = c.ns.namespace();
    // A held lock, by a process that is not a node.
    let locks = RedisLock::connect(&url(&c), ns.clone(), "batch-job")
        .await
        .unwrap();
    let guard = locks
        .try_acquire("nightly-report", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // Another client waits for it: the snapshot counts the waiter.
    let other = RedisLock::connect(&url(&c), ns.clone(), "batch-job-2")
        .await
        .unwrap();
    let waiter = {
        let other = other.clone();
        tokio::spawn(async move {
            other
                .acquire(
                    "nightly-report",
                    Duration::from_secs(30),
                    Duration::from_secs(60),
                )
                .await
        })
    };
    let queued = eventually(Duration::from_secs(10), || async {
        lock::read_waiters(&mut other.connection(), &ns, "nightly-report")
            .await
            .unwrap_or(0)
            == 1
    })
    .await;
    assert!(queued, "the waiter joined the lock's queue");
    // A dead node's stale lease.
    let mut conn = redis::Client::open(c.ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(worker_id::lease_key(&ns, 31))
        .arg(r#"{"node":"ghost","pid":7,"host":"gone","acquired_at_ms":1,"token":"t"}"#)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    // A lagging subscriber: it subscribes, stops, then 5 messages follow.
    let lagger = pubsub::RedisSignals::connect(&url(&c), ns.clone(), "lagger")
        .await
        .unwrap();
    let sub = lagger
        .subscribe("reports", SubscribeOptions::default())
        .await
        .unwrap();
    drop(sub);
    lagger.shutdown().await;
    let sender = pubsub::RedisSignals::connect(&url(&c), ns.clone(), "sender")
        .await
        .unwrap();
    for i in 0..5 {
        sender
            .publish("reports", Payload::Json(serde_json::json!({ "i": i })))
            .await
            .unwrap();
    }
    // A backlog of 7 and 2 dead letters.
    let opts = QueueOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
        ..QueueOptions::default()
    };
    let q = RedisQueue::connect(&url(&c), ns.clone(), "producer", opts)
        .await
        .unwrap();
    for i in 0..7 {
        q.publish("backlog", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    for i in 0..2 {
        q.publish("poison", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    let poison = q
        .subscribe(
            "poison",
            1,
            queue::handler(|_m| async { Err::<(), _>("bad input") }),
        )
        .await
        .unwrap();
    let dead = eventually(Duration::from_secs(10), || async {
        q.dead_letter_count("poison").await.unwrap_or(0) == 2
    })
    .await;
    assert!(dead);
    poison.shutdown().await.unwrap();

    let (code, snap) = status_json(&c.env_file, &[]);
    assert_eq!(code, 0);
    let nodes_json = snap["nodes"]["data"].as_array().unwrap();
    assert_eq!(nodes_json.len(), 3);
    for n in nodes_json {
        assert_eq!(n["health"]["http_status"], 200);
        assert_eq!(n["state"], "running");
        assert!(n["heartbeat_age_ms"].as_u64().unwrap() < 5000);
        assert!(n["config_drift"].as_array().unwrap().is_empty());
    }
    let leases = snap["leases"]["data"].as_array().unwrap();
    assert_eq!(leases.len(), 32);
    let held: Vec<&Value> = leases.iter().filter(|l| !l["holder"].is_null()).collect();
    assert_eq!(held.len(), 4);
    let ghost = &leases[31];
    assert_eq!(ghost["holder"], "ghost");
    assert_eq!(ghost["holder_live"], false);
    let locks_json = snap["locks"]["data"].as_array().unwrap();
    let report = locks_json
        .iter()
        .find(|l| l["name"] == "nightly-report")
        .unwrap();
    assert_eq!(report["holder"], "batch-job");
    assert_eq!(
        report["fencing_token"].as_u64(),
        Some(guard.fencing_token())
    );
    assert!(report["ttl_left_ms"].as_i64().unwrap() > 20_000);
    assert_eq!(report["waiters"], 1, "{report}");
    waiter.abort();
    let streams = snap["streams"]["data"].as_array().unwrap();
    let reports = streams.iter().find(|s| s["channel"] == "reports").unwrap();
    assert_eq!(reports["length"], 5);
    let lag = reports["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node_id"] == "lagger")
        .unwrap();
    assert_eq!(lag["lag"], 5);
    assert_eq!(lag["live"], false);
    let queues = snap["queues"]["data"].as_array().unwrap();
    let backlog = queues.iter().find(|q| q["name"] == "backlog").unwrap();
    assert_eq!(backlog["waiting"], 7);
    assert_eq!(backlog["dead_letters"], 0);
    let poison_json = queues.iter().find(|q| q["name"] == "poison").unwrap();
    assert_eq!(poison_json["dead_letters"], 2);
    let record_events = queues
        .iter()
        .find(|q| q["name"] == "record-events")
        .unwrap();
    assert_eq!(record_events["consumers"], 3);
    let servers = snap["servers"].as_array().unwrap();
    assert_eq!(servers[0]["kind"], "redis");
    assert!(servers[0]["version"].as_str().is_some());
    assert!(snap["round_trips"].as_u64().unwrap() > 0);
    // No secret anywhere (the env file has APP_KEY=test-app-key).
    assert!(!snap.to_string().contains("test-app-key"));

    // `check` warns about the stale lease; the human table names it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["check", "--env-file"])
        .arg(&c.env_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARN  stale-worker-ids") && text.contains("31 held by ghost"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_acl_user_gets_the_full_snapshot() {
    let c = TestCluster::new("acl");
    let nodes = [c.start("ro-a", "2").await, c.start("ro-b", "2").await];
    for n in &nodes {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    let locks = RedisLock::connect(&url(&c), c.ns.namespace(), "job")
        .await
        .unwrap();
    let guard = locks
        .try_acquire("held", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let user = common::ReadOnlyUser::create(&c.ns.url, &c.ns.name);
    let ro_url = user.url.clone();
    let vars: Vec<(&str, &str)> = [
        "CACHE_REDIS_URL",
        "PUBSUB_ADAPTER_REDIS_URL",
        "QUEUE_ADAPTER_REDIS_URL",
        "LOCK_ADAPTER_REDIS_URL",
        "REDIS_URL",
    ]
    .into_iter()
    .map(|v| (v, ro_url.as_str()))
    .collect();
    let (_, snap) = status_json(&c.env_file, &vars);
    drop(user);
    for source in [
        "nodes",
        "leases",
        "locks",
        "streams",
        "queues",
        "maintenance",
    ] {
        assert_eq!(snap[source]["status"], "ok", "{source}: {}", snap[source]);
    }
    assert_eq!(snap["nodes"]["data"].as_array().unwrap().len(), 2);
    assert_eq!(snap["locks"]["data"][0]["name"], "held");
    assert!(snap["servers"][0]["error"].is_null(), "{}", snap["servers"]);
    assert!(
        !snap.to_string().contains("ro-password"),
        "the password is masked"
    );
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_keys_are_reported_unreadable_and_the_rest_still_reads() {
    let ns = TestNs::new("garbage");
    let config = Config::all_redis(&ns.url, &ns.name).unwrap();
    let n = ns.namespace();
    let mut conn = redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let locks = RedisLock::connect(
        &SecretUrl::parse(&ns.url, &["redis"]).unwrap(),
        n.clone(),
        "ok-holder",
    )
    .await
    .unwrap();
    let guard = locks
        .try_acquire("good", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let set = |k: &str, v: &'static str| redis::cmd("SET").arg(k).arg(v).clone();
    let garbage = [
        lock::lock_key(&n, "bad"),
        worker_id::lease_key(&n, 3),
        registry::record_key(&n, "zombie"),
        pubsub::keys::stream_key(&n, "chan"),
        queue::stream_key(&n, "jobs"),
        maintenance::key(&n),
    ];
    let values = [
        "not a lock value",
        "{broken json",
        "[]",
        "i am not a stream",
        "nor a queue",
        "on",
    ];
    // Keys of the layout before hash tags, with values that would read.
    let old_layout = [n.key("lock:old"), n.key("signal:old"), n.key("queue:old")];
    for (key, value) in garbage.iter().zip(values) {
        let _: () = set(key, value).query_async(&mut conn).await.unwrap();
    }
    let _: () = set(&old_layout[0], "3|1700000000000|0123456789abcdef|n1")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in &old_layout[1..] {
        let _: () = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("seq")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg(registry::index_key(&n))
        .arg(1)
        .arg("zombie")
        .query_async(&mut conn)
        .await
        .unwrap();
    let snap = Inspector::new(config).snapshot().await;
    let keys: Vec<&str> = snap.unreadable.iter().map(|u| u.key.as_str()).collect();
    for expected in garbage.iter().chain(&old_layout) {
        assert!(
            keys.contains(&expected.as_str()),
            "{expected} missing from {keys:?}"
        );
    }
    for old in &old_layout {
        let u = snap.unreadable.iter().find(|u| &u.key == old).unwrap();
        assert!(
            u.reason.contains("not in the hash-tagged layout"),
            "{old}: {}",
            u.reason
        );
    }
    let flag = snap
        .unreadable
        .iter()
        .find(|u| u.key == maintenance::key(&n))
        .unwrap();
    assert!(flag.reason.contains("treats it as set"), "{}", flag.reason);
    let locks_read = snap.locks.ok().unwrap();
    assert_eq!(locks_read.len(), 1);
    assert_eq!(locks_read[0].name, "good");
    assert!(snap.leases.ok().unwrap()[3].unreadable.is_some());
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_reported_per_source_not_as_a_failure() {
    let mut redis = PrivateRedis::start();
    let config = Config::all_redis(&redis.url(), "down").unwrap();
    redis.kill();
    let started = std::time::Instant::now();
    let snap = Inspector::new(config).snapshot().await;
    assert!(started.elapsed() < Duration::from_secs(30));
    for (name, unavailable) in [
        ("nodes", matches!(snap.nodes, Source::Unavailable { .. })),
        ("leases", matches!(snap.leases, Source::Unavailable { .. })),
        ("locks", matches!(snap.locks, Source::Unavailable { .. })),
        (
            "streams",
            matches!(snap.streams, Source::Unavailable { .. }),
        ),
        ("queues", matches!(snap.queues, Source::Unavailable { .. })),
    ] {
        assert!(unavailable, "{name} should be unavailable");
    }
    if let Source::Unavailable { source, reason } = &snap.nodes {
        assert!(
            source.starts_with("REDIS_URL redis://127.0.0.1:"),
            "{source}"
        );
        assert!(!reason.is_empty());
    }
    assert!(snap.servers[0].error.is_some());
    let results =
        clusterops::inspect::checks::run(&Config::all_redis(&redis.url(), "down").unwrap(), &snap);
    assert_eq!(
        clusterops::inspect::checks::verdict(&snap, &results),
        clusterops::inspect::Verdict::Down
    );
}
