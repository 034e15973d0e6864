//! Whole nodes on a real Redis Cluster started by the test: every adapter
//! (cache, sync signals, queue, lock, worker IDs) on a 3-master cluster,
//! each node given a different node's URL; and a master killed under load
//! on a cluster with replicas, with no acknowledged record lost and no
//! snowflake ID issued twice.

use crate::common;

use common::cluster::RedisCluster;
use common::nodes::{NodeProc, TestCluster, eventually};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn post(n: &NodeProc, i: usize) -> Option<(u16, Option<i64>)> {
    let resp = n
        .http
        .post(n.url("/api/records"))
        .json(&json!({"name": format!("r{i}"), "value": format!("v{i}")}))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let id = resp
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["id"].as_i64());
    Some((status, id))
}

async fn read(n: &NodeProc, id: i64) -> Value {
    n.http
        .get(n.url(&format!("/api/records/{id}")))
        .send()
        .await
        .expect("GET record")
        .json()
        .await
        .expect("JSON")
}

fn spawn_on(c: &TestCluster, cluster: &RedisCluster, names: &[&str]) -> Vec<NodeProc> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let env = c.env_on_redis(&format!("{name}.env"), &cluster.url(i % 3));
            c.spawn_with_env(name, "2", &env)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_run_every_adapter_on_a_three_master_cluster() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let c = TestCluster::new("rc-nodes");
    let nodes = spawn_on(&c, &cluster, &["c1", "c2", "c3"]);
    for n in &nodes {
        n.wait_for_status(Duration::from_secs(30)).await;
        let health = n.wait_for_health(200, Duration::from_secs(30)).await;
        assert!(health.starts_with("ok"), "{}: {health}", n.node_id);
    }
    let mut workers = HashSet::new();
    for n in &nodes {
        let s = n.status().await.expect("status");
        workers.insert(s["worker_id"].as_u64().expect("a worker ID"));
    }
    assert_eq!(workers.len(), 3, "distinct worker IDs: {workers:?}");

    // Records written through every node, read through every node.
    let mut ids = Vec::new();
    for i in 0..30 {
        let (status, id) = post(&nodes[i % 3], i).await.expect("POST");
        assert_eq!(status, 201, "record {i} through {}", nodes[i % 3].node_id);
        ids.push(id.expect("an id"));
    }
    for (i, id) in ids.iter().enumerate() {
        let r = read(&nodes[(i + 1) % 3], *id).await;
        assert_eq!(r["value"], format!("v{i}"));
    }
    // Queued work: every record's event handled once.
    let done = eventually(Duration::from_secs(15), || async {
        c.db.query("SELECT count(*) FROM record_events") == "30"
    })
    .await;
    assert!(done, "{}", c.db.query("SELECT count(*) FROM record_events"));
    assert_eq!(
        c.db.query("SELECT count(*) FROM record_events WHERE deliveries <> 1"),
        "0"
    );
    // Updated through one node: the others drop their copies on the sync
    // signal (streams of several channels, spread over the shards).
    let id = ids[0];
    let resp = nodes[1]
        .http
        .put(nodes[1].url(&format!("/api/records/{id}")))
        .json(&json!({"value": "changed"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    for n in [&nodes[0], &nodes[2]] {
        let ok = eventually(Duration::from_secs(5), || async {
            read(n, id).await["value"] == "changed"
        })
        .await;
        assert!(ok, "{} still serves the old value", n.node_id);
    }
    // The lock serialises a counter across the nodes.
    let mut tasks = Vec::new();
    for n in &nodes {
        for _ in 0..5 {
            let http = n.http.clone();
            let url = n.url("/api/counters/hits/increment");
            tasks.push(tokio::spawn(async move {
                http.post(url).send().await.map(|r| r.status().as_u16())
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("increment"), 200);
    }
    let v: Value = nodes[2]
        .http
        .get(nodes[2].url("/api/counters/hits"))
        .send()
        .await
        .expect("GET counter")
        .json()
        .await
        .expect("JSON");
    assert_eq!(v["value"], 15, "no lost update");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_killed_under_load_loses_no_acknowledged_record_and_no_id_repeats() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    let c = TestCluster::new("rc-failover");
    let nodes = spawn_on(&c, &cluster, &["f1", "f2"]);
    for n in &nodes {
        n.wait_for_status(Duration::from_secs(30)).await;
        n.wait_for_health(200, Duration::from_secs(30)).await;
    }
    // Every shard has a replica: worker-ID leases wait out a quarantine on
    // a fresh namespace before IDs are issued (docs/snowflake.md).
    let first = Instant::now();
    while post(&nodes[0], 0).await.map(|r| r.0) != Some(201) {
        assert!(
            first.elapsed() < Duration::from_secs(20),
            "no record created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut acknowledged = 1usize;
    let mut ids = HashSet::new();
    // Kill the master that holds the worker-ID leases (one slot) while both
    // nodes keep writing.
    let lease_key = clusterops::adapters::worker_id::lease_key(&c.ns.namespace(), 0);
    let victim = cluster.master_of(&lease_key);
    let mut i = 1;
    let start = Instant::now();
    let mut killed_at = None;
    let mut last_refused = None;
    let mut in_a_row = 0;
    let mut restarted = false;
    while killed_at.is_none() || in_a_row < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "writes do not succeed again after the failover ({acknowledged} acknowledged)"
        );
        if killed_at.is_none() && start.elapsed() > Duration::from_secs(2) {
            cluster.kill(victim);
            killed_at = Some(Instant::now());
        }
        // Once its replica is promoted, the killed node comes back as that
        // one's replica (as a supervisor would restart it): until then the
        // shard has no replica to confirm lease writes and publishes
        // (`WAIT 1`), so nothing is acknowledged there.
        if killed_at.is_some()
            && !restarted
            && tokio::task::block_in_place(|| cluster.masters()).len() == 3
        {
            tokio::task::block_in_place(|| {
                cluster.wait_promoted(victim, Duration::from_secs(30));
                cluster.restart(victim);
            });
            restarted = true;
        }
        match post(&nodes[i % 2], i).await {
            Some((201, Some(id))) => {
                acknowledged += 1;
                assert!(ids.insert(id), "id {id} issued twice");
                if killed_at.is_some() {
                    in_a_row += 1;
                }
            }
            _ => {
                last_refused = killed_at.map(|k| k.elapsed());
                in_a_row = 0;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "cluster failover: {acknowledged}/{i} writes acknowledged; last refused {last_refused:?} after the kill"
    );
    let want = acknowledged.to_string();
    let handled = eventually(Duration::from_secs(30), || async {
        c.db.query("SELECT count(*) FROM record_events") == want
    })
    .await;
    assert!(
        handled,
        "{acknowledged} acknowledged records, {} handled",
        c.db.query("SELECT count(*) FROM record_events")
    );
}
