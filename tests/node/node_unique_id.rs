//! A duplicate `--node-id`: the second process refuses to start (one line
//! naming the live holder, exit 2) and the first keeps running, its
//! storage marker intact (`check`'s `shared-storage` still passes).

use crate::common;

use clusterops::node::registry::{NodeRecord, Registry};
use common::nodes::TestCluster;
use std::time::{Duration, Instant};

fn check_json(c: &TestCluster) -> (Option<i32>, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["check", "--json", "--env-file"])
        .arg(&c.env_file)
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code(), json)
}

fn status_of<'a>(json: &'a serde_json::Value, id: &str) -> &'a str {
    json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {id} in {json}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_with_a_live_nodes_id_exits_2_and_the_first_keeps_its_marker() {
    let c = TestCluster::new("dupid");
    let app1 = c.start("app1", "2").await;
    let app2 = c.start("app2", "2").await;
    app1.wait_for_health(200, Duration::from_secs(20)).await;
    app2.wait_for_health(200, Duration::from_secs(20)).await;
    let marker = c.dir.path().join("storage/.clusterops/nodes/app1");
    let marker_before = std::fs::read_to_string(&marker).expect("app1's marker");

    // The duplicate: same id, another port.
    let mut dup = c.spawn("app1", "2");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = dup.exited() {
            break s;
        }
        if Instant::now() > deadline {
            dup.terminate();
            panic!(
                "the duplicate app1 is still running; log:\n{}",
                dup.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = dup.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {log}"));
    println!("duplicate refused: {line}");
    assert!(line.contains("\"app1\""), "{line}");
    assert!(line.contains(&app1.addr), "{line}");
    assert!(line.contains(&format!("pid {}", app1.pid())), "{line}");
    assert!(line.contains("on host "), "{line}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{log}"
    );

    // The first one is untouched: running, its marker as it wrote it, and
    // after a few heartbeats every node still sees every marker.
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some(marker_before.as_str())
    );
    tokio::time::sleep(Duration::from_millis(4 * common::nodes::HEARTBEAT_MS + 200)).await;
    let body = app1.wait_for_health(200, Duration::from_secs(5)).await;
    assert_eq!(body.trim(), "ok");
    let status = app1.status().await.expect("app1 answers");
    assert_eq!(status["pid"], app1.pid());
    let (_, json) = check_json(&c);
    assert_eq!(status_of(&json, "shared-storage"), "pass", "{json}");
    assert_eq!(status_of(&json, "nodes-healthy"), "pass", "{json}");
}

fn record(id: &str, host: &str, pid: u32) -> NodeRecord {
    let now = clusterops::clock::now_ms();
    NodeRecord {
        node_id: id.into(),
        host: host.into(),
        http_addr: "127.0.0.1:9".into(),
        pid,
        app_version: "2".into(),
        schema_version: Some("2".into()),
        worker_id: None,
        state: "running".into(),
        state_reason: "ready".into(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        config_fingerprint: "x".into(),
        config_parts: Default::default(),
        storage_shared: None,
        storage_reason: None,
        clock_offset: None,
        worker_mode: Default::default(),
        process: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_left_by_a_dead_process_on_this_host_does_not_block_a_restart() {
    let c = TestCluster::new("dupid-dead");
    let mut conn = redis::Client::open(c.ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let registry = Registry::new(c.ns.namespace(), Duration::from_secs(60));
    let host = clusterops::clock::hostname().unwrap_or_default();
    // A pid that is surely gone: a child that has exited and been reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    registry
        .heartbeat(&mut conn, &record("app1", &host, gone.id()))
        .await
        .unwrap();
    // Like a node killed with SIGKILL and restarted at once (systemd's
    // Restart=on-failure): its record still lives, its process does not.
    let again = c.start("app1", "2").await;
    again.wait_for_health(200, Duration::from_secs(20)).await;
    assert!(
        again.log_text().contains("taking it over"),
        "{}",
        again.log_text()
    );

    // The same record from another host is a live node as far as this
    // host can tell: refused.
    registry
        .heartbeat(&mut conn, &record("app9", "elsewhere", 1))
        .await
        .unwrap();
    let mut dup = c.spawn("app9", "2");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dup.exited().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = dup.exited().and_then(|s| s.code());
    assert_eq!(code, Some(2), "{}", dup.log_text());
    assert!(
        dup.log_text().contains("pid 1 on host elsewhere"),
        "{}",
        dup.log_text()
    );
}
