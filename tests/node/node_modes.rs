//! `CLUSTER_MODE` and `WORKER_MODE` on real `clusterops node` processes:
//! a supervisor runs two processes on one host, each with its own registry
//! record, worker ID and address, sharing the `--listen` port; a killed
//! process is restarted, SIGTERM stops them all, and a process that keeps
//! dying makes the supervisor give up. An HTTP-only node handles no queue
//! job while a topic node does; a node listing another topic handles none;
//! an idle node (`-`) is out of the load balancer's rotation.

use crate::common;

use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::config::parse_redis_url;
use clusterops::node::registry::{NodeRecord, Registry, RegistryEntry};
use clusterops::node::state::NodeState;
use common::nodes::{TestCluster, eventually};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

async fn registry_conn(cluster: &TestCluster) -> (SharedConn, Registry) {
    let url = parse_redis_url(&cluster.ns.url).expect("redis url");
    let conn = redis_conn::connect(&url).await.expect("redis");
    let registry = Registry::new(cluster.ns.namespace(), Duration::from_secs(1));
    (conn, registry)
}

async fn records(conn: &mut SharedConn, registry: &Registry) -> Vec<NodeRecord> {
    registry
        .read_all(conn)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            RegistryEntry::Live { record, .. } => Some(*record),
            RegistryEntry::Unreadable { .. } => None,
        })
        .collect()
}

async fn health_of(http: &reqwest::Client, addr: &str) -> Option<u16> {
    let resp = http
        .get(format!("http://{addr}/api/__health_check"))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// Poll `probe` every 100 ms until it gives something or `within` passes.
async fn until<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Both processes registered, running, answering 200 at their own address.
async fn two_running(
    conn: &mut SharedConn,
    registry: &Registry,
    http: &reqwest::Client,
) -> Option<Vec<NodeRecord>> {
    let mut found = records(conn, registry).await;
    found.sort_by(|a, b| a.id.node_id.cmp(&b.id.node_id));
    if found.len() != 2
        || found
            .iter()
            .any(|r| r.id.state != NodeState::Running || r.id.worker_id.is_none())
    {
        return None;
    }
    for r in &found {
        if health_of(http, &r.id.http_addr).await != Some(200) {
            return None;
        }
    }
    Some(found)
}

#[tokio::test]
async fn cluster_mode_runs_processes_with_their_own_records_and_restarts_a_killed_one() {
    let cluster = TestCluster::new("cluster-mode");
    let env = cluster.env_variant("two.env", &[("CLUSTER_MODE", "2")]);
    let mut supervisor =
        cluster.spawn_with_args("web", "2", &env, &[], &["--process-port-base", "0"]);
    let (mut conn, registry) = registry_conn(&cluster).await;
    let probe = || {
        let (mut conn, registry, http) = (conn.clone(), registry.clone(), supervisor.http.clone());
        async move { two_running(&mut conn, &registry, &http).await }
    };
    let first = until(Duration::from_secs(40), probe).await;
    let first =
        first.unwrap_or_else(|| panic!("two processes running; log:\n{}", supervisor.log_text()));
    let ids: Vec<&str> = first.iter().map(|r| r.id.node_id.as_str()).collect();
    assert_eq!(ids, ["web-0", "web-1"]);
    assert_eq!(first[0].id.host, first[1].id.host, "one host");
    assert_ne!(
        first[0].id.worker_id, first[1].id.worker_id,
        "a worker ID each"
    );
    assert_ne!(
        first[0].id.http_addr, first[1].id.http_addr,
        "an address each"
    );
    assert_ne!(first[0].id.pid, first[1].id.pid);
    for (i, r) in first.iter().enumerate() {
        let slot = r.process.as_ref().expect("a process slot in the record");
        assert_eq!((usize::from(slot.index), slot.count), (i, 2));
        assert_eq!(
            slot.shared_addr, supervisor.addr,
            "the shared --listen address"
        );
    }
    // The shared address (SO_REUSEPORT) answers for the host.
    assert_eq!(
        supervisor
            .wait_for_health(200, Duration::from_secs(5))
            .await,
        "ok\n"
    );

    // Kill process 0: the supervisor starts it again, as a new process
    // with a new record (pid) and a worker-ID lease.
    let killed = first[0].id.pid;
    let killed_at = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill process 0");
    let probe = || {
        let (mut conn, registry, http) = (conn.clone(), registry.clone(), supervisor.http.clone());
        async move {
            two_running(&mut conn, &registry, &http)
                .await
                .filter(|r| r[0].id.pid != killed)
        }
    };
    let again = until(Duration::from_secs(40), probe).await;
    let again =
        again.unwrap_or_else(|| panic!("process 0 restarted; log:\n{}", supervisor.log_text()));
    println!(
        "CLUSTER_MODE: process 0 killed, running again with a worker ID and answering 200 after {} ms",
        killed_at.elapsed().as_millis()
    );
    assert_eq!(again[1].id.pid, first[1].id.pid, "process 1 kept running");
    assert_ne!(again[0].id.worker_id, again[1].id.worker_id);
    let log = supervisor.log_text();
    assert!(
        log.contains("process died (killed by signal 9); restarting it"),
        "{log}"
    );
    assert!(log.contains("process restarted"), "{log}");

    // SIGTERM: every process drains and removes its record; exit 0.
    let pids = [again[0].id.pid, again[1].id.pid];
    assert_eq!(supervisor.terminate(), Some(0), "{}", supervisor.log_text());
    assert!(
        records(&mut conn, &registry).await.is_empty(),
        "records removed"
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} stopped"
        );
    }
    let log = supervisor.log_text();
    assert_eq!(log.matches("node stopped").count(), 2, "{log}");
}

#[tokio::test]
async fn processes_stop_when_their_supervisor_is_killed() {
    let cluster = TestCluster::new("cluster-mode-orphans");
    let env = cluster.env_variant("two.env", &[("CLUSTER_MODE", "2")]);
    let mut supervisor =
        cluster.spawn_with_args("orphan", "2", &env, &[], &["--process-port-base", "0"]);
    let (conn, registry) = registry_conn(&cluster).await;
    let probe = || {
        let (mut conn, registry, http) = (conn.clone(), registry.clone(), supervisor.http.clone());
        async move { two_running(&mut conn, &registry, &http).await }
    };
    let up = until(Duration::from_secs(40), probe)
        .await
        .unwrap_or_else(|| panic!("two processes running; log:\n{}", supervisor.log_text()));
    supervisor.kill9();
    let gone = eventually(Duration::from_secs(10), || async {
        up.iter()
            .all(|r| !std::path::Path::new(&format!("/proc/{}", r.id.pid)).exists())
    })
    .await;
    assert!(
        gone,
        "the processes stopped; log:\n{}",
        supervisor.log_text()
    );
    let log = supervisor.log_text();
    assert_eq!(
        log.matches("the CLUSTER_MODE supervisor is gone: stopping")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("node stopped").count(),
        2,
        "a clean stop: {log}"
    );
}

#[tokio::test]
async fn a_supervisor_whose_processes_keep_dying_gives_up_with_exit_1() {
    let cluster = TestCluster::new("cluster-mode-dying");
    // Nothing listens on port 1: every process fails at start-up.
    let env = cluster.env_variant(
        "dying.env",
        &[
            ("CLUSTER_MODE", "2"),
            ("DB_URL", "postgres://postgres@127.0.0.1:1/nothing"),
        ],
    );
    let mut supervisor =
        cluster.spawn_with_args("dying", "2", &env, &[], &["--process-port-base", "0"]);
    let ended = eventually(Duration::from_secs(60), || {
        let done = supervisor.exited();
        async move { done.is_some() }
    })
    .await;
    let log = supervisor.log_text();
    assert!(ended, "the supervisor gave up; log:\n{log}");
    assert_eq!(supervisor.exited().and_then(|s| s.code()), Some(1), "{log}");
    assert!(log.contains("died 5 times in a row"), "{log}");
    assert!(
        log.contains("restart_in_ms=500") && log.contains("restart_in_ms=4000"),
        "{log}"
    );
}

async fn create_records(node: &common::nodes::NodeProc, n: usize) {
    for i in 0..n {
        let mut created = false;
        for _ in 0..50 {
            let resp = node
                .http
                .post(node.url("/api/records"))
                .json(&json!({"name": format!("r{i}"), "value": "v"}))
                .send()
                .await
                .expect("POST /api/records");
            if resp.status() == 201 {
                created = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(created, "record {i} created on {}", node.node_id);
    }
}

fn handlers(cluster: &TestCluster) -> BTreeSet<String> {
    cluster
        .db
        .query("SELECT DISTINCT handled_by FROM record_events")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn only_nodes_whose_worker_mode_lists_the_topic_handle_its_jobs() {
    let cluster = TestCluster::new("worker-mode");
    let web_env = cluster.env_variant("web.env", &[("WORKER_MODE", "!")]);
    let jobs_env = cluster.env_variant("jobs.env", &[("WORKER_MODE", "record-events")]);
    let mail_env = cluster.env_variant("mail.env", &[("WORKER_MODE", "mail,report:build")]);
    let web = cluster.spawn_with_env("web", "2", &web_env);
    web.wait_for_status(Duration::from_secs(30)).await;
    web.wait_for_health(200, Duration::from_secs(20)).await;
    let mail = cluster.spawn_with_env("mail", "2", &mail_env);
    let mut jobs = cluster.spawn_with_env("jobs", "2", &jobs_env);
    for node in [&mail, &jobs] {
        node.wait_for_status(Duration::from_secs(30)).await;
        node.wait_for_health(200, Duration::from_secs(20)).await;
    }
    let status = web.status().await.expect("status");
    assert_eq!(status["worker_mode"], "!");
    let status = mail.status().await.expect("status");
    assert_eq!(status["worker_mode"], "mail,report:build");
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("no consumer for: mail, report:build"),
        "{warnings}"
    );

    // Jobs published through the HTTP-only node are handled by the topic
    // node alone (three consumers would share them otherwise).
    create_records(&web, 12).await;
    let all = eventually(Duration::from_secs(20), || async {
        cluster.db.query("SELECT count(*) FROM record_events") == "12"
    })
    .await;
    assert!(all, "12 events handled; jobs log:\n{}", jobs.log_text());
    assert_eq!(handlers(&cluster), BTreeSet::from(["jobs".to_string()]));

    // Without the topic node, nobody handles them: they wait.
    assert_eq!(jobs.terminate(), Some(0));
    create_records(&web, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.db.query("SELECT count(*) FROM record_events"), "12");

    // `status` shows each node's mode.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["status", "--env-file"])
        .arg(&cluster.env_file)
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row for {id}: {text}"))
            .to_string()
    };
    assert!(row("web").contains(" http "), "{text}");
    assert!(
        row("mail").contains(" topics ") && row("mail").contains("topics: mail,report:build"),
        "{text}"
    );
}

#[tokio::test]
async fn an_idle_node_answers_503_to_the_load_balancer_and_keeps_its_worker_id() {
    let cluster = TestCluster::new("worker-mode-idle");
    let env = cluster.env_variant("idle.env", &[("WORKER_MODE", "-")]);
    let idle = cluster.spawn_with_env("idle", "2", &env);
    idle.wait_for_status(Duration::from_secs(30)).await;
    let body = idle.wait_for_health(503, Duration::from_secs(20)).await;
    assert!(body.starts_with("idle: WORKER_MODE=-"), "{body}");
    let resp = idle
        .http
        .post(idle.url("/api/records"))
        .json(&json!({"name": "x", "value": "v"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 503);
    let status = idle.status().await.expect("status");
    assert_eq!(status["state"], "running");
    assert_eq!(status["worker_mode"], "-");
    assert!(status["worker_id"].is_u64(), "{status}");

    // `check` does not count it as unhealthy.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["check", "--json", "--env-file"])
        .arg(&cluster.env_file)
        .output()
        .expect("check runs");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("check --json prints JSON");
    let healthy = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "nodes-healthy"))
        .cloned()
        .expect("nodes-healthy");
    assert_eq!(healthy["status"], "pass", "{healthy}");
}
