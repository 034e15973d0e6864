//! Scenario `redis_down`: three real `clusterops node` processes and a live
//! read-only console (in tmux, 80x24) on a private, persistent Redis; the
//! Redis is killed for 10 s and started again on the same port. The nodes
//! must say they are degraded, keep running, and recover by themselves
//! (registry, worker IDs, health); the console must show its banner and
//! drop it by itself.

use crate::common::PrivateRedis;
use crate::common::nodes::{HEARTBEAT_MS, NodeProc, TestCluster};
use crate::common::tmux::Tmux;
use crate::harness::{Budget, Report};
use clusterops::node::registry::{Registry, RegistryEntry};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clusterops");
const NODES: [&str; 3] = ["rd-1", "rd-2", "rd-3"];
/// How long Redis stays down.
const OUTAGE: Duration = Duration::from_secs(10);
/// How long the nodes and the console may take to notice or to recover.
const BOUND: Duration = Duration::from_secs(30);
/// What the console's trouble banner says.
const BANNER: &str = "fetch failed";

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    // The shared helpers panic on what they cannot do; a panic is a failure
    // of this scenario, not of the suite.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(scenario(report))
    }))
    .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&p))))
}

pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".into())
}

/// What one node answered at one moment.
#[derive(Debug, Clone)]
struct Seen {
    health: Option<(u16, String)>,
    degraded: Vec<String>,
    worker_id: Option<u64>,
    state: String,
}

async fn look(n: &NodeProc) -> Seen {
    let health = n.health().await;
    let status = n.status().await.unwrap_or_default();
    Seen {
        health,
        degraded: serde_json::from_value(status["degraded"].clone()).unwrap_or_default(),
        worker_id: status["worker_id"].as_u64(),
        state: status["state"]
            .as_str()
            .unwrap_or("unreachable")
            .to_string(),
    }
}

fn is_degraded(s: &Seen) -> bool {
    s.state == "running"
        && s.degraded
            .iter()
            .any(|d| d.starts_with("REDIS_URL unreachable"))
        && s.health
            .as_ref()
            .is_some_and(|(c, b)| *c == 200 && b.starts_with("degraded: REDIS_URL unreachable"))
}

fn is_healthy(s: &Seen) -> bool {
    s.state == "running"
        && s.degraded.is_empty()
        && s.worker_id.is_some()
        && s.health
            .as_ref()
            .is_some_and(|(c, b)| *c == 200 && b == "ok\n")
}

/// Processes that exited or logged a panic, by node.
fn casualties(nodes: &mut [NodeProc]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes.iter_mut() {
        if let Some(status) = n.exited() {
            out.push(format!("{} exited ({status})", n.node_id));
        }
        if n.log_text().contains("panicked") {
            out.push(format!("{} panicked:\n{}", n.node_id, n.log_text()));
        }
    }
    out
}

/// Live registry records on `url` as (node id, worker ID).
async fn registry(
    cluster: &TestCluster,
    url: &str,
) -> Result<BTreeMap<String, Option<u16>>, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let reg = Registry::new(
        cluster.ns.namespace(),
        Duration::from_millis(HEARTBEAT_MS * 3),
    );
    let entries = reg.read_all(&mut conn).await.map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            RegistryEntry::Live { record, .. } => Some((record.id.node_id, record.id.worker_id)),
            _ => None,
        })
        .collect())
}

/// The holder named by the lease key of `worker_id` on `url`.
async fn lease_holder(cluster: &TestCluster, url: &str, worker_id: u64) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let id = u8::try_from(worker_id).ok()?;
    let key = clusterops::adapters::worker_id::lease_key(&cluster.ns.namespace(), id);
    let value: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .ok()?;
    let holder: serde_json::Value = serde_json::from_str(&value?).ok()?;
    holder["node"].as_str().map(str::to_string)
}

/// The whole cluster is back: every node healthy on a distinct worker ID,
/// every one in the registry with that ID, and every lease key naming it.
async fn cluster_recovered(
    cluster: &TestCluster,
    url: &str,
    nodes: &[NodeProc],
) -> Result<(), String> {
    let mut ids = BTreeMap::new();
    for n in nodes {
        let s = look(n).await;
        if !is_healthy(&s) {
            return Err(format!("{} not healthy: {s:?}", n.node_id));
        }
        ids.insert(n.node_id.clone(), s.worker_id);
    }
    let distinct: std::collections::BTreeSet<_> = ids.values().collect();
    if distinct.len() != nodes.len() {
        return Err(format!("worker IDs not distinct: {ids:?}"));
    }
    let live = registry(cluster, url).await?;
    for (node, id) in &ids {
        let Some(id) = id else { continue };
        match live.get(node) {
            Some(Some(w)) if u64::from(*w) == *id => {}
            other => {
                return Err(format!(
                    "registry has {node} as {other:?}, status says {id}"
                ));
            }
        }
        let holder = lease_holder(cluster, url, *id).await;
        if holder.as_deref() != Some(node.as_str()) {
            return Err(format!(
                "lease of worker ID {id} names {holder:?}, not {node}"
            ));
        }
    }
    Ok(())
}

async fn scenario(report: &mut Report) -> Result<(), String> {
    let cluster = TestCluster::new("redis_down");
    let mut redis = PrivateRedis::start_persistent();
    let url = redis.url();
    let env = cluster.env_on_redis("private.env", &url);
    let mut nodes: Vec<NodeProc> = NODES
        .iter()
        .map(|id| cluster.spawn_with_env(id, "2", &env))
        .collect();
    for n in &nodes {
        n.wait_for_status(BOUND).await;
    }
    let settle = Instant::now();
    while let Err(e) = cluster_recovered(&cluster, &url, &nodes).await {
        if settle.elapsed() > BOUND {
            return Err(format!("the cluster never came up: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids_before: Vec<Option<u64>> = {
        let mut v = Vec::new();
        for n in &nodes {
            v.push(look(n).await.worker_id);
        }
        v
    };

    // The console, live and read-only, in a real terminal.
    let tmux = Tmux::start(80, 24);
    tmux.wait_for(&["sh>"]);
    let console_log = cluster.dir.path().join("console.log");
    tmux.type_text(&format!(
        "{BIN} console --env-file {} --read-only --refresh 500ms --log-file {}; echo EXITED:$?",
        env.display(),
        console_log.display()
    ));
    tmux.key("Enter");
    tmux.wait_until(BOUND, |s| {
        s.contains("1 Overview") && s.contains("read-only") && !s.contains(BANNER)
    })
    .map_err(|s| format!("the console never showed the cluster:\n{s}"))?;
    // The nodes as the console sees them.
    tmux.key("2");
    tmux.wait_until(BOUND, |s| NODES.iter().all(|n| s.contains(n)))
        .map_err(|s| format!("the console's Nodes view never listed the three nodes:\n{s}"))?;
    tmux.key("1");

    // Redis goes away.
    let down_at = Instant::now();
    redis.kill();
    let mut degraded_ms: BTreeMap<String, u128> = BTreeMap::new();
    let mut banner_ms = None;
    let mut answers_during = 0u32;
    let mut unanswered: Vec<String> = Vec::new();
    let mut first_degraded: Option<Seen> = None;
    while down_at.elapsed() < OUTAGE {
        for n in &nodes {
            let s = look(n).await;
            match s.health {
                Some(_) => answers_during += 1,
                None => unanswered.push(format!(
                    "{} at {} ms",
                    n.node_id,
                    down_at.elapsed().as_millis()
                )),
            }
            if is_degraded(&s) && !degraded_ms.contains_key(&n.node_id) {
                degraded_ms.insert(n.node_id.clone(), down_at.elapsed().as_millis());
                first_degraded.get_or_insert(s);
            }
        }
        if banner_ms.is_none() && tmux.screen().contains(BANNER) {
            banner_ms = Some(down_at.elapsed().as_millis());
        }
        let dead = casualties(&mut nodes);
        if !dead.is_empty() {
            return Err(format!("during the outage: {}", dead.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let screen_down = tmux.screen();
    if degraded_ms.len() != NODES.len() {
        let mut now = Vec::new();
        for n in &nodes {
            now.push(format!("{}: {:?}", n.node_id, look(n).await));
        }
        return Err(format!(
            "not every node reported degraded within {OUTAGE:?}: {degraded_ms:?}; now {}",
            now.join("; ")
        ));
    }
    if !unanswered.is_empty() {
        return Err(format!(
            "health checks went unanswered during the outage: {}",
            unanswered.join(", ")
        ));
    }
    let Some(banner_ms) = banner_ms else {
        return Err(format!(
            "the console never showed its banner:\n{screen_down}"
        ));
    };
    if let Some(s) = &first_degraded {
        let body = s.health.as_ref().map_or("", |h| h.1.trim());
        report.figure("degraded_answer", format!("{body:?}"));
    }

    // Redis comes back: same port, same data directory.
    redis.restart();
    let up_at = Instant::now();
    let mut node_ms: BTreeMap<String, u128> = BTreeMap::new();
    let mut cluster_ms = None;
    let mut console_ms = None;
    let mut last_err = String::new();
    while up_at.elapsed() < BOUND && (cluster_ms.is_none() || console_ms.is_none()) {
        for n in &nodes {
            if !node_ms.contains_key(&n.node_id) && is_healthy(&look(n).await) {
                node_ms.insert(n.node_id.clone(), up_at.elapsed().as_millis());
            }
        }
        if cluster_ms.is_none() {
            match cluster_recovered(&cluster, &url, &nodes).await {
                Ok(()) => cluster_ms = Some(up_at.elapsed().as_millis()),
                Err(e) => last_err = e,
            }
        }
        if console_ms.is_none() {
            let s = tmux.screen();
            if !s.contains(BANNER) && s.contains("1 Overview") {
                console_ms = Some(up_at.elapsed().as_millis());
            }
        }
        let dead = casualties(&mut nodes);
        if !dead.is_empty() {
            return Err(format!("after the restart: {}", dead.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.figure("outage_s", OUTAGE.as_secs());
    report.figure(
        "degraded_after_ms",
        degraded_ms.values().max().copied().unwrap_or(0),
    );
    report.figure("banner_after_ms", banner_ms);
    report.figure("health_answers_during_outage", answers_during);
    report.figure(
        "nodes_healthy_after_ms",
        node_ms.values().max().copied().unwrap_or(0),
    );
    if let Some(ms) = cluster_ms {
        report.figure("cluster_recovered_after_ms", ms);
    }
    if let Some(ms) = console_ms {
        report.figure("console_recovered_after_ms", ms);
    }
    let Some(_) = cluster_ms else {
        return Err(format!(
            "the cluster did not recover within {BOUND:?} of the restart: {last_err}\nlog of {}:\n{}",
            nodes[0].node_id,
            nodes[0].log_text()
        ));
    };
    let Some(_) = console_ms else {
        return Err(format!(
            "the console kept its banner {BOUND:?} after the restart:\n{}",
            tmux.screen()
        ));
    };
    first_write_after(&nodes, report).await?;
    let mut ids_after = Vec::new();
    for n in &nodes {
        ids_after.push(look(n).await.worker_id);
    }
    let ids = |v: &[Option<u64>]| {
        v.iter()
            .map(|id| id.map_or("none".to_string(), |i| i.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    report.figure(
        "worker_ids",
        format!("{}->{}", ids(&ids_before), ids(&ids_after)),
    );

    // The console lists the three nodes again.
    tmux.key("2");
    tmux.wait_until(BOUND, |s| {
        NODES.iter().all(|n| s.contains(n)) && !s.contains(BANNER)
    })
    .map_err(|s| format!("after the restart the console's Nodes view lacks a node:\n{s}"))?;

    // Quit the console; it and the nodes end well.
    tmux.key("q");
    tmux.wait_until(Duration::from_secs(10), |s| s.contains("EXITED:0"))
        .map_err(|s| format!("the console did not quit cleanly:\n{s}"))?;
    let console_text = std::fs::read_to_string(&console_log).unwrap_or_default();
    if console_text.contains("panicked") {
        return Err(format!("the console panicked:\n{console_text}"));
    }
    let mut heartbeat_failures = 0u64;
    for n in &nodes {
        heartbeat_failures += metric(n, "clusterops_heartbeat_failures_total").await;
    }
    report.figure("heartbeat_failures", heartbeat_failures);
    for n in &mut nodes {
        if let Some(code) = n.terminate()
            && code != 0
        {
            return Err(format!(
                "{} exited {code} on SIGTERM:\n{}",
                n.node_id,
                n.log_text()
            ));
        }
    }
    let dead = casualties(&mut nodes);
    if !dead.is_empty() {
        return Err(dead.join("; "));
    }
    Ok(())
}

async fn metric(n: &NodeProc, name: &str) -> u64 {
    let Ok(resp) = n.http.get(n.url("/metrics")).send().await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The first write after the outage, through the first node: it is stored,
/// its sync signal reaches the two other nodes and its follow-up work is
/// handled, like any write before the outage (the connections it uses sat
/// idle through the outage).
async fn first_write_after(nodes: &[NodeProc], report: &mut Report) -> Result<(), String> {
    const SIGNALS: &str = "clusterops_signals_received_total";
    const HANDLED: &str = "clusterops_queue_handled_total";
    let mut signals_before = Vec::new();
    let mut handled_before = 0;
    for n in nodes {
        signals_before.push(metric(n, SIGNALS).await);
        handled_before += metric(n, HANDLED).await;
    }
    let resp = nodes[0]
        .http
        .post(nodes[0].url("/api/records"))
        .json(&serde_json::json!({"name": "after-outage", "value": "v"}))
        .send()
        .await
        .map_err(|e| format!("POST /api/records after the outage: {e}"))?;
    let code = resp.status();
    if !code.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "the first write after the outage answered {code}: {body}"
        ));
    }
    let started = Instant::now();
    loop {
        let mut signals = Vec::new();
        let mut handled = 0;
        for n in nodes {
            signals.push(metric(n, SIGNALS).await);
            handled += metric(n, HANDLED).await;
        }
        let others_signalled = signals[1..]
            .iter()
            .zip(&signals_before[1..])
            .all(|(now, before)| now > before);
        if others_signalled && handled > handled_before {
            report.figure("first_write_propagated_ms", started.elapsed().as_millis());
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "the first write after the outage did not propagate within 10 s: \
                 signals received {signals_before:?} -> {signals:?}, \
                 queue handled {handled_before} -> {handled}\nlog of {}:\n{}",
                nodes[0].node_id,
                nodes[0].log_text()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
