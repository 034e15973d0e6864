//! Real node processes against the real Redis and PostgreSQL: membership,
//! worker IDs, cache invalidation by sync signal, queued work, maintenance,
//! crash and clean shutdown.

use crate::common;

use clusterops::adapters::worker_id;
use clusterops::node::maintenance::{self, MaintenanceFlag};
use clusterops::node::registry::{Registry, RegistryEntry};
use common::nodes::{HEARTBEAT_MS, LEASE_TTL_MS, TestCluster, eventually};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

async fn redis(c: &TestCluster) -> redis::aio::MultiplexedConnection {
    redis::Client::open(c.ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn live_ids(c: &TestCluster) -> Vec<String> {
    let reg = Registry::new(c.ns.namespace(), Duration::from_millis(HEARTBEAT_MS * 3));
    let mut conn = redis(c).await;
    reg.read_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            RegistryEntry::Live { record, .. } => Some(record.id.node_id),
            _ => None,
        })
        .collect()
}

async fn lease_holders(c: &TestCluster) -> Vec<(u8, String)> {
    let mut conn = redis(c).await;
    let mut out = Vec::new();
    for id in 0u8..32 {
        let v: Option<String> = redis::cmd("GET")
            .arg(worker_id::lease_key(&c.ns.namespace(), id))
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(v) = v {
            let holder: Value = serde_json::from_str(&v).unwrap();
            out.push((id, holder["node"].as_str().unwrap_or("").to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_register_with_distinct_worker_ids_and_share_records() {
    let c = TestCluster::new("three");
    let a = c.start("node-a", "2").await;
    let b = c.start("node-b", "2").await;
    let d = c.start("node-c", "2").await;
    for n in [&a, &b, &d] {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    let mut workers = HashSet::new();
    for n in [&a, &b, &d] {
        let s = n.status().await.unwrap();
        assert_eq!(s["state"], "running");
        assert_eq!(s["schema_version"], "2");
        workers.insert(s["worker_id"].as_u64().expect("a worker ID"));
    }
    assert_eq!(workers.len(), 3, "distinct worker IDs");
    let mut ids = live_ids(&c).await;
    ids.sort();
    assert_eq!(ids, vec!["node-a", "node-b", "node-c"]);

    // Written through A, read through B and C.
    let created: Value = a
        .http
        .post(a.url("/api/records"))
        .json(&json!({"name": "greeting", "value": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    assert!(id > 0 && id < (1i64 << 53));
    for n in [&a, &b, &d] {
        let r: Value = n
            .http
            .get(n.url(&format!("/api/records/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["value"], "hello", "{}", n.node_id);
    }
    // Updated through B: A and C drop their node-local copies on the sync
    // signal and serve the new value.
    let resp = b
        .http
        .put(b.url(&format!("/api/records/{id}")))
        .json(&json!({"value": "bonjour"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for n in [&a, &d] {
        let ok = eventually(Duration::from_secs(3), || async {
            let r: Value = n
                .http
                .get(n.url(&format!("/api/records/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["value"] == "bonjour"
        })
        .await;
        assert!(ok, "{} still serves the old value", n.node_id);
    }
    let metrics = a
        .http
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clusterops_signals_received_total{node=\"node-a\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("clusterops_signals_received_total{node=\"node-a\"} 0"),
        "A got the signal"
    );
    // A missing record is a 404, not an error.
    let resp = a
        .http
        .get(a.url("/api/records/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_work_is_handled_once_across_the_cluster_and_the_lock_serialises_counters() {
    let c = TestCluster::new("work");
    let nodes = [
        c.start("w1", "2").await,
        c.start("w2", "2").await,
        c.start("w3", "2").await,
    ];
    for n in &nodes {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    for i in 0..30 {
        let n = &nodes[i % 3];
        let resp = n
            .http
            .post(n.url("/api/records"))
            .json(&json!({"name": format!("r{i}"), "value": "v"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let done = eventually(Duration::from_secs(10), || async {
        c.db.query("SELECT count(*) FROM record_events") == "30"
    })
    .await;
    assert!(
        done,
        "30 events handled, got {}",
        c.db.query("SELECT count(*) FROM record_events")
    );
    assert_eq!(
        c.db.query("SELECT count(*) FROM record_events WHERE deliveries <> 1"),
        "0",
        "each handled once"
    );

    // 3 nodes x 10 concurrent increments of one counter under the lock.
    let mut tasks = Vec::new();
    for n in &nodes {
        for _ in 0..10 {
            let http = n.http.clone();
            let url = n.url("/api/counters/hits/increment");
            tasks.push(tokio::spawn(async move {
                http.post(url).send().await.map(|r| r.status().as_u16())
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let v: Value = nodes[0]
        .http
        .get(nodes[0].url("/api/counters/hits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], 30, "no lost update");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_maintenance_flag_turns_every_node_503_within_one_heartbeat() {
    let c = TestCluster::new("maint");
    let nodes = [c.start("m1", "2").await, c.start("m2", "2").await];
    for n in &nodes {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    let mut conn = redis(&c).await;
    let flag = MaintenanceFlag {
        by: "ops@test".into(),
        reason: "upgrading to v3".into(),
        since_ms: 1,
    };
    maintenance::set(&mut conn, &c.ns.namespace(), &flag)
        .await
        .unwrap();
    for n in &nodes {
        let body = n
            .wait_for_health(503, Duration::from_millis(HEARTBEAT_MS * 2))
            .await;
        assert!(
            body.contains("maintenance") && body.contains("upgrading to v3"),
            "{body}"
        );
        let resp = n.http.get(n.url("/api/records/1")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("Down for maintenance") && page.contains("upgrading to v3"),
            "{page}"
        );
        assert_eq!(n.status().await.unwrap()["state"], "maintenance");
    }
    maintenance::clear(&mut conn, &c.ns.namespace())
        .await
        .unwrap();
    for n in &nodes {
        n.wait_for_health(200, Duration::from_millis(HEARTBEAT_MS * 2))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_disappears_and_its_worker_id_can_be_taken_again() {
    let c = TestCluster::new("kill");
    let mut victim = c.start("victim", "2").await;
    victim.wait_for_health(200, Duration::from_secs(10)).await;
    let worker = victim.status().await.unwrap()["worker_id"]
        .as_u64()
        .unwrap() as u8;
    victim.kill9();
    let gone = eventually(Duration::from_millis(HEARTBEAT_MS * 3 + 1000), || async {
        live_ids(&c).await.is_empty()
    })
    .await;
    assert!(gone, "registry record expired within its TTL");
    let freed = eventually(Duration::from_millis(LEASE_TTL_MS + 1000), || async {
        lease_holders(&c).await.is_empty()
    })
    .await;
    assert!(freed, "lease expired within its TTL");
    // Occupy every other slot so the only free ID is the victim's.
    let mut conn = redis(&c).await;
    for id in (0u8..32).filter(|i| *i != worker) {
        let _: () = redis::cmd("SET")
            .arg(worker_id::lease_key(&c.ns.namespace(), id))
            .arg(json!({"node": format!("squatter-{id}"), "pid": 1, "host": "h", "acquired_at_ms": 1, "token": "x"}).to_string())
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let heir = c.start("heir", "2").await;
    heir.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(
        heir.status().await.unwrap()["worker_id"].as_u64(),
        Some(u64::from(worker))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_frees_the_lease_and_the_registry_record_at_once() {
    let c = TestCluster::new("term");
    let mut n = c.start("leaver", "2").await;
    n.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(live_ids(&c).await, vec!["leaver"]);
    assert_eq!(lease_holders(&c).await.len(), 1);
    assert_eq!(n.terminate(), Some(0), "clean exit; log:\n{}", n.log_text());
    // Checked right away: well before any TTL could explain it.
    assert!(live_ids(&c).await.is_empty());
    assert!(lease_holders(&c).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_its_own_storage_folder_reports_storage_not_shared() {
    let c = TestCluster::new("storage");
    let a = c.start("st-a", "2").await;
    let elsewhere = c.dir.path().join("not-shared");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let env = c.env_variant(
        "other.env",
        &[("STORAGE_PATH", elsewhere.to_str().unwrap())],
    );
    let b = c.spawn_with_env("st-b", "2", &env);
    b.wait_for_status(Duration::from_secs(30)).await;
    let ok = eventually(Duration::from_secs(5), || async {
        let s = b.status().await.unwrap();
        s["storage_shared"] == false
            && s["storage_reason"]
                .as_str()
                .unwrap_or("")
                .contains("cannot see the marker of st-a")
    })
    .await;
    assert!(ok, "{:?}", b.status().await);
    let ok = eventually(Duration::from_secs(5), || async {
        a.status().await.unwrap()["storage_shared"] == false
    })
    .await;
    assert!(ok, "A cannot see B's marker either");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_its_redis_reports_degraded_and_recovers_by_itself() {
    let c = TestCluster::new("degraded");
    let mut redis = common::PrivateRedis::start_persistent();
    let env = c.env_on_redis("private.env", &redis.url());
    let n = c.spawn_with_env("dg-1", "2", &env);
    n.wait_for_status(Duration::from_secs(30)).await;
    assert_eq!(
        n.wait_for_health(200, Duration::from_secs(10)).await,
        "ok\n"
    );
    assert_eq!(n.status().await.unwrap()["degraded"], json!([]));

    redis.kill();
    // Still serving (200), but saying what is missing.
    let ok = eventually(Duration::from_secs(10), || async {
        let s = n.status().await.unwrap();
        let d: Vec<String> = serde_json::from_value(s["degraded"].clone()).unwrap();
        d.iter().any(|l| l.starts_with("REDIS_URL unreachable"))
            && d.iter().any(|l| l.starts_with("no worker ID"))
            && s["worker_id"].is_null()
            && s["state"] == "running"
    })
    .await;
    assert!(ok, "{:?}", n.status().await);
    let (code, body) = n.health().await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.starts_with("degraded: REDIS_URL unreachable"),
        "{body}"
    );

    redis.restart();
    let ok = eventually(Duration::from_secs(15), || async {
        let s = n.status().await.unwrap();
        s["degraded"] == json!([]) && s["worker_id"].is_u64()
    })
    .await;
    assert!(ok, "{:?}\n{}", n.status().await, n.log_text());
    assert_eq!(n.health().await.unwrap(), (200, "ok\n".to_string()));
    assert!(!n.log_text().contains("panicked"));
}
