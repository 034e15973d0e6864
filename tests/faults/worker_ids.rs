//! Worker IDs under kill -9: 40 rounds of killing a random `clusterops
//! node` process (and now and then one that is still starting) and starting
//! a new one, while clients create records
//! through every live node (each record id is a snowflake ID; `records.id`
//! is the primary key). Now and then a node is frozen (SIGSTOP) past its
//! lease TTL and resumed. No ID may repeat, and every killed node's worker-ID
//! lease must be free again within its TTL.

use crate::common::nodes::{LEASE_TTL_MS, NodeProc, TestCluster};
use crate::harness::{Budget, Report, Scenario};
use crate::procs;
use clusterops::adapters::worker_id::{HolderInfo, WORKER_IDS, lease_key};
use clusterops::config::Namespace;
use parking_lot::Mutex;
use rand::Rng;
use rand::seq::IndexedRandom;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "worker_ids",
    run,
};

/// Kill-and-start rounds.
const ROUNDS: usize = 40;
/// Nodes alive at the start (and, a round later, again).
const NODES: usize = 3;
/// Concurrent clients creating records.
const CLIENTS: usize = 4;
/// Lease-free time allowed beyond the TTL: polling every 5 ms, on a loaded
/// machine.
const MARGIN: Duration = Duration::from_millis(500);

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| procs::runtime()?.block_on(scenario(report)))
}

/// What the clients saw.
#[derive(Default)]
struct Load {
    ids: Mutex<Vec<i64>>,
    duplicate_errors: AtomicU64,
    /// 503 "no snowflake IDs": a node that fenced itself (lease lost).
    refused: AtomicU64,
    failed: AtomicU64,
}

/// One kill: how long its lease took to be free again.
struct Freed {
    worker_id: u8,
    took: Duration,
}

async fn scenario(report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let cluster = TestCluster::new("faults-wid");
    let redis = redis::Client::open(cluster.ns.url.as_str()).map_err(|e| e.to_string())?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis: {e}"))?;
    let ttl = Duration::from_millis(LEASE_TTL_MS);
    let ns = cluster.ns.namespace();

    let mut nodes: Vec<NodeProc> = Vec::new();
    let mut started_nodes = 0usize;
    for _ in 0..NODES {
        nodes.push(cluster.start(&format!("w{started_nodes}"), "2").await);
        started_nodes += 1;
    }
    let addrs: Arc<Mutex<Vec<String>>> =
        Arc::new(Mutex::new(nodes.iter().map(|n| n.addr.clone()).collect()));
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(create_records(addrs.clone(), load.clone(), stop.clone())))
        .collect();

    let mut pollers = Vec::new();
    let mut kills_without_lease = 0u64;
    let mut rng = rand::rng();
    let mut kills_while_starting = 0u64;
    let mut frozen: Vec<Frozen> = Vec::new();
    let mut freezes = 0u64;
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        resume_due(&mut frozen, &addrs, Instant::now());
        // A frozen node is never killed (it is resumed by its pid).
        let unfrozen: Vec<usize> = (0..nodes.len())
            .filter(|i| !frozen.iter().any(|f| f.pid == nodes[*i].pid()))
            .collect();
        let Some(&at) = unfrozen.choose(&mut rng) else {
            continue;
        };
        let victim = nodes.swap_remove(at);
        addrs.lock().retain(|a| *a != victim.addr);
        match kill(&mut conn, &ns, victim).await? {
            Some(poller) => pollers.push(poller),
            None => kills_without_lease += 1,
        }
        // Now and then a node killed while it starts (it may or may not
        // hold a lease yet).
        if rng.random_bool(0.25) {
            let node = cluster.spawn(&format!("w{started_nodes}"), "2");
            started_nodes += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            kills_while_starting += 1;
            match kill(&mut conn, &ns, node).await? {
                Some(poller) => pollers.push(poller),
                None => kills_without_lease += 1,
            }
        }
        // Now and then freeze a live node (SIGSTOP) for two lease TTLs, as
        // a long pause would: its lease expires meanwhile, and after it is
        // resumed it must not issue an ID under the lease it lost.
        // The clients leave it alone meanwhile (they would all end up
        // waiting on it); three requests sent right after the freeze are
        // handled when it wakes up.
        if frozen.is_empty() && nodes.len() >= 2 && rng.random_bool(0.2) {
            let node = &nodes[rng.random_range(0..nodes.len())];
            procs::signal(node.pid(), nix::sys::signal::Signal::SIGSTOP);
            addrs.lock().retain(|a| *a != node.addr);
            tokio::spawn(zombie_requests(node.addr.clone(), load.clone()));
            frozen.push(Frozen {
                pid: node.pid(),
                addr: node.addr.clone(),
                resume_at: Instant::now() + 2 * ttl,
            });
            freezes += 1;
        }
        // Start one (sometimes two, while few are alive) new nodes.
        let starts = if nodes.len() < NODES && rng.random_bool(0.5) {
            2
        } else {
            1
        };
        for _ in 0..starts {
            let node = cluster.start(&format!("w{started_nodes}"), "2").await;
            started_nodes += 1;
            addrs.lock().push(node.addr.clone());
            nodes.push(node);
        }
    }
    // Resume the frozen node, a little more load on the last nodes, then
    // stop the clients.
    if let Some(f) = frozen.first() {
        tokio::time::sleep_until(f.resume_at.into()).await;
    }
    resume_due(&mut frozen, &addrs, Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.map_err(|e| format!("client task: {e}"))?;
    }
    let mut freed = Vec::new();
    for p in pollers {
        freed.push(p.await.map_err(|e| format!("lease poller: {e}"))??);
    }
    drop(nodes);

    let ids = std::mem::take(&mut *load.ids.lock());
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    let rows = cluster.db.query("SELECT count(*) FROM records");
    let worker_ids_used = cluster
        .db
        .query("SELECT count(DISTINCT (id >> 16) & 31) FROM records");
    let reused = cluster.db.query(
        "SELECT count(*) FROM (SELECT (id >> 16) & 31 FROM records GROUP BY 1 \
         HAVING count(DISTINCT created_by) > 1) s",
    );
    let in_db: HashSet<i64> = cluster
        .db
        .query("SELECT id FROM records")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let missing = distinct.iter().filter(|id| !in_db.contains(id)).count();
    let min_took = freed.iter().map(|f| f.took).min().unwrap_or_default();
    let max_took = freed.iter().map(|f| f.took).max().unwrap_or_default();
    let mean_took =
        freed.iter().map(|f| f.took.as_secs_f64()).sum::<f64>() / freed.len().max(1) as f64;
    let late: Vec<String> = freed
        .iter()
        .filter(|f| f.took > ttl + MARGIN)
        .map(|f| format!("worker {} after {:?}", f.worker_id, f.took))
        .collect();
    let duplicates = ids.len() - distinct.len();

    report.figure("rounds", ROUNDS);
    report.figure("nodes_started", started_nodes);
    report.figure("kills", ROUNDS as u64 + kills_while_starting);
    report.figure("kills_while_starting", kills_while_starting);
    report.figure("freezes", freezes);
    report.figure("ids", ids.len());
    report.figure("duplicate_ids", duplicates);
    report.figure(
        "duplicate_key_errors",
        load.duplicate_errors.load(Ordering::Relaxed),
    );
    report.figure(
        "ids_refused_by_fenced_node",
        load.refused.load(Ordering::Relaxed),
    );
    report.figure("failed_requests", load.failed.load(Ordering::Relaxed));
    report.figure("records_in_db", &rows);
    report.figure("worker_ids_used", &worker_ids_used);
    report.figure("worker_ids_reused_by_another_node", &reused);
    report.figure("lease_ttl_ms", LEASE_TTL_MS);
    report.figure("leases_measured", freed.len());
    report.figure("kills_without_lease", kills_without_lease);
    report.figure("lease_freed_min_ms", min_took.as_millis());
    report.figure("lease_freed_max_ms", max_took.as_millis());
    report.figure("lease_freed_mean_ms", format!("{:.0}", mean_took * 1000.0));
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    if duplicates > 0 || load.duplicate_errors.load(Ordering::Relaxed) > 0 {
        return Err("a snowflake ID was issued twice".into());
    }
    if missing > 0 {
        return Err(format!(
            "{missing} ids answered 201 are not in the records table"
        ));
    }
    if ids.is_empty() || freed.is_empty() {
        return Err("no ids were created or no lease was measured".into());
    }
    if !late.is_empty() {
        return Err(format!(
            "leases freed later than the TTL ({ttl:?}) + {MARGIN:?}: {}",
            late.join(", ")
        ));
    }
    Ok(())
}

/// A node stopped with SIGSTOP, to be resumed at `resume_at`.
struct Frozen {
    pid: u32,
    addr: String,
    resume_at: Instant,
}

/// Resume (SIGCONT) the frozen nodes whose time has come and give them back
/// to the clients.
fn resume_due(frozen: &mut Vec<Frozen>, addrs: &Mutex<Vec<String>>, now: Instant) {
    frozen.retain(|f| {
        if f.resume_at <= now {
            procs::signal(f.pid, nix::sys::signal::Signal::SIGCONT);
            addrs.lock().push(f.addr.clone());
            false
        } else {
            true
        }
    });
}

/// Kill -9 `victim` and, when it held a worker-ID lease, return a task that
/// measures how long the lease takes to be free again.
async fn kill(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &Namespace,
    mut victim: NodeProc,
) -> Result<Option<tokio::task::JoinHandle<Result<Freed, String>>>, String> {
    // The lease the victim holds right now (read just before the kill).
    let held = lease_of(conn, ns, victim.pid()).await?;
    victim.kill9();
    let killed_at = Instant::now();
    Ok(held.map(|(worker_id, key, value)| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let took = wait_until_changed(conn, &key, &value, killed_at).await;
            took.map(|took| Freed { worker_id, took })
        })
    }))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client")
}

/// Clients: create records through a random live node until stopped.
async fn create_records(addrs: Arc<Mutex<Vec<String>>>, load: Arc<Load>, stop: Arc<AtomicBool>) {
    let http = http_client();
    while !stop.load(Ordering::Acquire) {
        let Some(addr) = addrs.lock().choose(&mut rand::rng()).cloned() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        create_one(&http, &addr, &load).await;
    }
}

/// Requests sent to a node right after it was frozen: the node handles
/// them when it is resumed, after its lease has expired.
async fn zombie_requests(addr: String, load: Arc<Load>) {
    let http = http_client();
    let requests = (0..3).map(|_| create_one(&http, &addr, &load));
    futures::future::join_all(requests).await;
}

/// One `POST /api/records`, its outcome counted in `load`.
async fn create_one(http: &reqwest::Client, addr: &str, load: &Load) {
    let resp = http
        .post(format!("http://{addr}/api/records"))
        .json(&serde_json::json!({"name": "fault", "value": "x"}))
        .send()
        .await;
    let Ok(resp) = resp else {
        // The node was killed under the request.
        load.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let created = resp.status() == reqwest::StatusCode::CREATED;
    let body = resp.text().await.unwrap_or_default();
    if created
        && let Some(id) = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_i64())
    {
        load.ids.lock().push(id);
    } else if body.contains("duplicate key") {
        load.duplicate_errors.fetch_add(1, Ordering::Relaxed);
    } else if body.contains("snowflake") {
        load.refused.fetch_add(1, Ordering::Relaxed);
    } else {
        load.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The worker-ID lease the process `pid` holds: (id, key, value), read in
/// one pipeline over the 32 lease keys.
async fn lease_of(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &Namespace,
    pid: u32,
) -> Result<Option<(u8, String, String)>, String> {
    let mut pipe = redis::pipe();
    for id in 0..WORKER_IDS {
        pipe.get(lease_key(ns, id));
    }
    let slots: Vec<Option<String>> = pipe
        .query_async(conn)
        .await
        .map_err(|e| format!("redis: {e}"))?;
    for (id, value) in (0..WORKER_IDS).zip(slots) {
        if let Some(value) = value
            && HolderInfo::parse(&value).is_some_and(|h| h.pid == pid)
        {
            return Ok(Some((id, lease_key(ns, id), value)));
        }
    }
    Ok(None)
}

/// Poll `key` every 5 ms until it no longer holds `value`; the time since
/// `since`. Gives up (an error) after a minute.
async fn wait_until_changed(
    mut conn: redis::aio::MultiplexedConnection,
    key: &str,
    value: &str,
    since: Instant,
) -> Result<Duration, String> {
    loop {
        let now: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        if now.as_deref() != Some(value) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > Duration::from_secs(60) {
            return Err(format!("{key} still held by a killed node after 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
