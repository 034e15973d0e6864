//! `clusterops bench node`: requests per second and latency of the reference
//! node's cached read path (`GET /api/records/{id}`) across a real
//! three-node cluster, next to a baseline measured in the same run with the
//! same load against the nodes' health check (no app work, no cache).
//!
//! The bench owns everything it uses and removes it at the end, also after a
//! failure: a throw-away PostgreSQL database, a throw-away namespace on
//! Redis, a temporary folder (env file, shared storage, node logs) and the
//! node processes.

use super::node_load::{self, LoadReport, Target};
use clusterops::adapters::redis_conn::scan_page;
use clusterops::config::{Namespace, SecretUrl};
use clusterops::node::pg::pg_error_text as pg_error;
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, clap::Args)]
pub struct NodeBenchArgs {
    /// The Redis every adapter uses (a throw-away namespace is used and removed).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// A PostgreSQL URL allowed to CREATE and DROP DATABASE; the bench
    /// creates `bench_node_<random>` next to it and drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    db_admin_url: String,
    /// Node processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    /// Records created before the measurement (ids read round-robin).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    records: u32,
    /// Concurrent clients (each keeps one request in flight).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Seconds of load for each of the read path and the baseline.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
}

/// What the bench created, so that it can all be removed.
struct Resources {
    /// `bench_node_<hex>`, once created.
    db_name: Option<String>,
    /// The admin URL (to drop the database).
    admin_url: SecretUrl,
    redis_url: SecretUrl,
    /// Whether Redis answered (so there may be keys to delete).
    redis_used: bool,
    ns: Namespace,
    dir: PathBuf,
    nodes: Vec<NodeChild>,
}

struct NodeChild {
    id: String,
    addr: String,
    log: PathBuf,
    child: Child,
}

impl NodeChild {
    /// The last non-empty line of the node's log, for error messages.
    fn last_log_line(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "(no log output)".to_string())
    }
}

pub async fn run(args: NodeBenchArgs) -> color_eyre::eyre::Result<i32> {
    let admin_url = match SecretUrl::parse(&args.db_admin_url, &["postgres", "postgresql"]) {
        Ok(u) => u,
        Err(e) => return Ok(fail(&format!("--db-admin-url: {e}"))),
    };
    let redis_url = match clusterops::config::parse_redis_url(&args.redis_url) {
        Ok(u) => u,
        Err(e) => return Ok(fail(&format!("--redis-url: {e}"))),
    };
    let suffix = format!("{:08x}", rand::random::<u32>());
    let ns = match Namespace::new(&format!("bench-node-{suffix}")) {
        Ok(ns) => ns,
        Err(e) => return Ok(fail(&format!("namespace: {e}"))),
    };
    let mut res = Resources {
        db_name: None,
        admin_url,
        redis_url,
        redis_used: false,
        ns,
        dir: std::env::temp_dir().join(format!("clusterops-bench-node-{suffix}")),
        nodes: Vec::new(),
    };
    let outcome = tokio::select! {
        r = bench(&args, &suffix, &mut res) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let cleanup = res.cleanup().await;
    // One error line: the bench's failure, and the cleanup's if any.
    Ok(match (outcome, cleanup) {
        (Ok(report), Ok(())) => {
            println!("{report}");
            0
        }
        (Ok(report), Err(c)) => {
            println!("{report}");
            fail(&format!("cleanup: {c}"))
        }
        (Err(e), Ok(())) => fail(&e),
        (Err(e), Err(c)) => fail(&format!("{e} (cleanup: {c})")),
    })
}

fn fail(msg: &str) -> i32 {
    eprintln!("error: {}", msg.lines().next().unwrap_or(msg));
    1
}

async fn bench(
    args: &NodeBenchArgs,
    suffix: &str,
    res: &mut Resources,
) -> Result<serde_json::Value, String> {
    // Database.
    let db_name = format!("bench_node_{suffix}");
    let admin = admin_client(&res.admin_url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db_name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE {db_name}: {}", pg_error(&e)))?;
    res.db_name = Some(db_name.clone());
    drop(admin);
    let db_url = database_url(&res.admin_url, &db_name)?;

    // Redis reachable (a clearer error than three nodes failing).
    let mut conn = redis_client(&res.redis_url).await?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("Redis {}: {e}", res.redis_url))?;
    res.redis_used = true;

    // Env file and shared storage.
    let storage = res.dir.join("storage");
    std::fs::create_dir_all(&storage)
        .map_err(|e| format!("cannot create {}: {e}", storage.display()))?;
    let url = res.redis_url.expose();
    let env = format!(
        "CLUSTER_NAME={}\nCACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL={url}\n\
         PUBSUB_ADAPTER_REDIS_URL={url}\nQUEUE_ADAPTER=redis\nQUEUE_ADAPTER_REDIS_URL={url}\n\
         LOCK_ADAPTER_DEFAULT=redis\nLOCK_ADAPTER_REDIS_URL={url}\nREDIS_URL={url}\n\
         DB_URL={db_url}\nSTORAGE_PATH={}\nAPP_KEY=bench-{:016x}\n",
        res.ns.name(),
        storage.display(),
        rand::random::<u64>()
    );
    let env_file = res.dir.join("cluster.env");
    write_private(&env_file, &env)?;

    // Nodes.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    for i in 0..args.nodes {
        let node = spawn_node(&exe, &env_file, &res.dir, &format!("bench-{i}"))?;
        res.nodes.push(node);
    }
    let http = node_load::client(args.concurrency as usize)?;
    wait_healthy(&http, &mut res.nodes, Duration::from_secs(60)).await?;

    // Records, then one read of each through every node: the measured
    // reads hit the node-local cache (the shared cache behind it is warm).
    let addrs: Vec<String> = res.nodes.iter().map(|n| n.addr.clone()).collect();
    let ids = create_records(&http, &addrs, args.records).await?;
    for addr in &addrs {
        for id in &ids {
            node_load::get_ok(&http, &format!("http://{addr}/api/records/{id}")).await?;
        }
        node_load::get_ok(&http, &format!("http://{addr}/api/__health_check")).await?;
    }
    let before = cache_counters(&http, &addrs).await?;

    let duration = Duration::from_secs(args.duration);
    let conc = args.concurrency as usize;
    let baseline = node_load::drive(&http, Target::Health, &addrs, &ids, conc, duration).await;
    let reads = node_load::drive(&http, Target::Records, &addrs, &ids, conc, duration).await;
    let after = cache_counters(&http, &addrs).await?;
    if reads.requests == 0 || baseline.requests == 0 {
        return Err("no request completed: the nodes stopped answering".into());
    }
    Ok(report(args, &reads, &baseline, before, after))
}

fn report(
    args: &NodeBenchArgs,
    reads: &LoadReport,
    baseline: &LoadReport,
    before: (u64, u64),
    after: (u64, u64),
) -> serde_json::Value {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            (a / b * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    };
    let mut out = reads.to_json();
    let mut base = baseline.to_json();
    merge(&mut base, json!({ "path": "GET /api/__health_check" }));
    merge(
        &mut out,
        json!({
            "bench": "node",
            "path": "GET /api/records/{id}",
            "nodes": args.nodes,
            "concurrency": args.concurrency,
            "records": args.records,
            "cache_hits": after.0.saturating_sub(before.0),
            "cache_misses": after.1.saturating_sub(before.1),
            "baseline": base,
            "ratio": ratio(reads.requests_per_s(), baseline.requests_per_s()),
            "ratio_p50": ratio(reads.percentile_ms(0.50), baseline.percentile_ms(0.50)),
            "ratio_p99": ratio(reads.percentile_ms(0.99), baseline.percentile_ms(0.99)),
        }),
    );
    out
}

/// Add `extra`'s fields to `into` (both JSON objects).
fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(e)) = (into.as_object_mut(), extra) {
        o.extend(e);
    }
}

/// The admin connection, with the URL's `sslmode` and certificates honoured
/// as the nodes honour `DB_URL`'s.
async fn admin_client(url: &SecretUrl) -> Result<tokio_postgres::Client, String> {
    clusterops::node::pg::connect(url)
        .await
        .map_err(|e| e.to_string().replacen("DB_URL", "--db-admin-url", 1))
}

/// The admin URL with the database name replaced.
fn database_url(admin: &SecretUrl, db_name: &str) -> Result<String, String> {
    let mut u =
        url::Url::parse(admin.expose()).map_err(|e| format!("--db-admin-url {admin}: {e}"))?;
    u.set_path(&format!("/{db_name}"));
    Ok(u.to_string())
}

async fn redis_client(
    url: &SecretUrl,
) -> Result<clusterops::adapters::redis_conn::SharedConn, String> {
    clusterops::adapters::redis_conn::connect(url)
        .await
        .map_err(|e| e.to_string())
}

/// Write a file readable by its owner only (it holds the URLs).
fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn spawn_node(
    exe: &std::path::Path,
    env_file: &std::path::Path,
    dir: &std::path::Path,
    id: &str,
) -> Result<NodeChild, String> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let log = dir.join(format!("{id}.log"));
    let out =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let child = Command::new(exe)
        .args(["node", "--listen", &addr, "--node-id", id])
        .args(["--drain-timeout", "5"])
        .arg("--env-file")
        .arg(env_file)
        .env("RUST_LOG", "warn,clusterops=info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    Ok(NodeChild {
        id: id.to_string(),
        addr,
        log,
        child,
    })
}

/// Wait until every node's health check answers 200; fail at once when a
/// node exits.
async fn wait_healthy(
    http: &reqwest::Client,
    nodes: &mut [NodeChild],
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    for node in nodes.iter_mut() {
        let url = format!("http://{}/api/__health_check", node.addr);
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!(
                    "node {} exited ({status}) before it was healthy: {}",
                    node.id,
                    node.last_log_line()
                ));
            }
            let last = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    let code = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    format!("{code} {}", body.lines().next().unwrap_or(""))
                }
                Err(_) => "no answer".to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} not healthy within {} s (health check: {last}; log: {})",
                    node.id,
                    within.as_secs(),
                    node.last_log_line()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn create_records(
    http: &reqwest::Client,
    addrs: &[String],
    count: u32,
) -> Result<Vec<i64>, String> {
    let mut ids = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let url = format!("http://{}/api/records", addrs[i % addrs.len()]);
        let resp = http
            .post(&url)
            .json(&json!({ "name": format!("bench-{i}"), "value": "x".repeat(64) }))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let code = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("POST {url}: {code}, not JSON: {e}"))?;
        let Some(id) = body.get("id").and_then(serde_json::Value::as_i64) else {
            return Err(format!("POST {url}: {code} {body}"));
        };
        ids.push(id);
    }
    Ok(ids)
}

/// Cache hits and misses summed over the nodes (from `/metrics`).
async fn cache_counters(http: &reqwest::Client, addrs: &[String]) -> Result<(u64, u64), String> {
    let (mut hits, mut misses) = (0, 0);
    for addr in addrs {
        let url = format!("http://{addr}/metrics");
        let text = http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        hits += metric(&text, "clusterops_cache_hits_total");
        misses += metric(&text, "clusterops_cache_misses_total");
    }
    Ok((hits, misses))
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

impl Resources {
    /// Stop the nodes (SIGTERM, then SIGKILL after 15 s), drop the database,
    /// delete the namespace's keys and the temporary folder. Every step runs;
    /// the errors are joined.
    async fn cleanup(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        for node in &self.nodes {
            if let Some(pid) = node.child.id() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            match tokio::time::timeout(Duration::from_secs(15), node.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => problems.push(format!(
                    "node {} exited with {status}: {}",
                    node.id,
                    node.last_log_line()
                )),
                Ok(Err(e)) => problems.push(format!("node {}: {e}", node.id)),
                Err(_) => {
                    let _ = node.child.kill().await;
                    problems.push(format!("node {} ignored SIGTERM for 15 s: killed", node.id));
                }
            }
        }
        self.nodes.clear();
        if let Some(db) = self.db_name.take() {
            let dropped = async {
                let admin = admin_client(&self.admin_url).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .await
                    .map_err(|e| format!("DROP DATABASE {db}: {}", pg_error(&e)))
            };
            if let Err(e) = dropped.await {
                problems.push(e);
            }
        }
        if self.redis_used
            && let Err(e) = self.delete_keys().await
        {
            problems.push(e);
        }
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            problems.push(format!("cannot remove {}: {e}", self.dir.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// SCAN MATCH `ns:*` and DEL, in batches.
    async fn delete_keys(&self) -> Result<(), String> {
        let mut conn = redis_client(&self.redis_url).await?;
        let pattern = self.ns.pattern("*");
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_page(&mut conn, cursor, &pattern, 1000)
                .await
                .map_err(|e| format!("SCAN {pattern}: {e}"))?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe(); // one DEL per key: different slots
                for key in &keys {
                    pipe.cmd("DEL").arg(key).ignore();
                }
                let _: () = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| format!("DEL {} keys of {pattern}: {e}", keys.len()))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
