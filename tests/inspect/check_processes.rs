//! `process-capacity` on a registry written the way nodes under
//! `CLUSTER_MODE` write it (private namespace on the shared Redis): three
//! hosts, one of them declaring twelve processes, can start 36 nodes for
//! 32 worker IDs, and `check` warns naming the host; `status` shows each
//! node's `WORKER_MODE` and process slot, in text and JSON.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::clock::now_ms;
use clusterops::config::{WorkerMode, parse_redis_url};
use clusterops::node::registry::{NodeRecord, Registry};
use clusterops::node::supervisor::ProcessSlot;
use common::{TestNs, status_cli};
use std::time::Duration;

fn record(id: &str, host: &str, slot: Option<(u16, u16)>, mode: WorkerMode) -> NodeRecord {
    let now = now_ms();
    NodeRecord {
        node_id: id.into(),
        host: host.into(),
        http_addr: "127.0.0.1:9".into(),
        pid: 1,
        app_version: "2".into(),
        schema_version: None,
        worker_id: None,
        state: "running".into(),
        state_reason: "ready".into(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        config_fingerprint: "f".into(),
        config_parts: Default::default(),
        storage_shared: None,
        storage_reason: None,
        clock_offset: None,
        worker_mode: mode,
        process: slot.map(|(index, count)| ProcessSlot {
            index,
            count,
            shared_addr: format!("{host}:13000"),
        }),
    }
}

fn capacity(ns: &TestNs, env: &std::path::Path) -> serde_json::Value {
    let (_, out) = status_cli::run(&["check", "--json"], env, &[]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("check --json");
    let found = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "process-capacity"))
        .cloned();
    found.unwrap_or_else(|| panic!("no process-capacity for {}: {json}", ns.name))
}

#[tokio::test]
async fn hosts_times_processes_above_32_worker_ids_warns_and_status_shows_modes() {
    let ns = TestNs::new("proc-cap");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = status_cli::env_file(dir.path(), "c.env", &ns.name, &ns.url);
    let url = parse_redis_url(&ns.url).expect("url");
    let conn = redis_conn::connect(&url).await.expect("redis");
    let registry = Registry::new(ns.namespace(), Duration::from_secs(60));
    let write = |r: NodeRecord| {
        let (mut conn, registry) = (conn.clone(), registry.clone());
        async move { registry.heartbeat(&mut conn, &r).await.expect("heartbeat") }
    };
    write(record("big-0", "big", Some((0, 12)), WorkerMode::All)).await;
    write(record("big-1", "big", Some((1, 12)), WorkerMode::HttpOnly)).await;
    write(record("small", "small", None, WorkerMode::All)).await;
    let pass = capacity(&ns, &env);
    assert_eq!(pass["status"], "pass", "{pass}");
    assert!(
        pass["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("2 host(s) × up to 12 process(es) = 24 of 32"),
        "{pass}"
    );

    // A third host: 3 × 12 = 36 > 32.
    let topics = WorkerMode::Topics(vec!["record-events".into()]);
    write(record("other", "other", None, topics)).await;
    let warn = capacity(&ns, &env);
    assert_eq!(warn["status"], "warn", "{warn}");
    let reason = warn["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with(
            "3 host(s) × up to 12 processes (big) = 36 nodes, more than the 32 worker IDs"
        ),
        "{reason}"
    );

    let (_, json) = status_cli::run(&["status", "--json"], &env, &[]);
    let snap: serde_json::Value = serde_json::from_str(&json).expect("status --json");
    let nodes = snap["nodes"]["data"].as_array().expect("nodes").clone();
    let of = |id: &str| {
        nodes
            .iter()
            .find(|n| n["node_id"] == id)
            .cloned()
            .expect(id)
    };
    assert_eq!(of("big-1")["worker_mode"], "!");
    assert_eq!(of("big-1")["process"]["count"], 12);
    assert_eq!(of("other")["worker_mode"], "record-events");
    assert_eq!(of("small")["worker_mode"], "");
    let (_, text) = status_cli::run(&["status"], &env, &[]);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no {id} row: {text}"))
            .to_string()
    };
    assert!(
        row("big-1").contains(" http ") && row("big-1").contains("process #1 of 12 on big:13000"),
        "{text}"
    );
    assert!(row("other").contains("topics: record-events"), "{text}");
    assert!(row("small").contains(" all "), "{text}");
}
