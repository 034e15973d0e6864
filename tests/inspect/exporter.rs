//! `clusterops exporter` against real nodes on the real Redis: the values
//! of /metrics, `promtool check metrics` on the body, a shared read for
//! concurrent scrapes, and Redis unreachable answering 200 with up 0.

use crate::common;

use clusterops::adapters::lock::{LockBackend, RedisLock};
use clusterops::adapters::queue::{MessageQueue, QueueOptions, RedisQueue};
use clusterops::adapters::worker_id;
use clusterops::config::SecretUrl;
use common::free_port;
use common::nodes::{TestCluster, eventually};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `clusterops exporter` process, killed on drop.
struct ExporterProc {
    child: Child,
    addr: String,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl ExporterProc {
    /// Start it on a free port with `env_file` and wait for /healthz.
    async fn start(env_file: &Path, cache_ms: u64) -> Self {
        Self::start_with(env_file, cache_ms, &[]).await
    }

    /// The same with more arguments.
    async fn start_with(env_file: &Path, cache_ms: u64, args: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
        cmd.args(["exporter", "--listen", &addr, "--cache-ms"])
            .arg(cache_ms.to_string())
            .args(args)
            .arg("--env-file")
            .arg(env_file);
        for var in clusterops::config::VARIABLES {
            cmd.env_remove(var);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let me = Self {
            child,
            addr,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .no_proxy()
                .build()
                .unwrap(),
        };
        let up = eventually(Duration::from_secs(20), || async {
            me.get("/healthz")
                .await
                .is_some_and(|(code, _)| code == 200)
        })
        .await;
        assert!(
            up,
            "the exporter did not answer /healthz: {}",
            me.log_text()
        );
        me
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .ok()?;
        Some((resp.status().as_u16(), resp.text().await.ok()?))
    }

    /// GET /metrics: must answer 200.
    async fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").await.expect("/metrics answers");
        assert_eq!(code, 200, "{body}");
        body
    }
}

impl Drop for ExporterProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample written exactly as `series`, if there is one.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// `promtool check metrics` on `body`: exit 0 and nothing printed.
fn promtool_accepts(body: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exporter_serves_a_live_cluster_and_promtool_accepts_it() {
    let c = TestCluster::new("exporter");
    let nodes = [
        c.start("ex-a", "2").await,
        c.start("ex-b", "2").await,
        c.start("ex-c", "2").await,
    ];
    for n in &nodes {
        n.wait_for_health(200, Duration::from_secs(10)).await;
    }
    let url = SecretUrl::parse(&c.ns.url, &["redis"]).unwrap();
    let ns = c.ns.namespace();
    // A held lock, and a second process waiting for it.
    let holder = RedisLock::connect(&url, ns.clone(), "batch-job")
        .await
        .unwrap();
    let guard = holder
        .try_acquire("nightly-report", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let waiter = RedisLock::connect(&url, ns.clone(), "second-job")
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        waiter
            .acquire(
                "nightly-report",
                Duration::from_secs(5),
                Duration::from_secs(60),
            )
            .await
    });
    // 5 jobs nobody consumes.
    let q = RedisQueue::connect(&url, ns.clone(), "producer", QueueOptions::default())
        .await
        .unwrap();
    for i in 0..5 {
        q.publish("exports", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    // Every free worker ID leased by a ghost: worker-id-capacity fails.
    let mut conn = redis::Client::open(c.ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for id in 0..worker_id::WORKER_IDS {
        let _: Option<String> = redis::cmd("SET")
            .arg(worker_id::lease_key(&ns, id))
            .arg(r#"{"node":"ghost","pid":7,"host":"gone","acquired_at_ms":1,"token":"t"}"#)
            .arg("PX")
            .arg(60_000)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    // As a read-only ACL user with a password: the password never shows.
    let user = common::ReadOnlyUser::create(&c.ns.url, &c.ns.name);
    let env = c.env_on_redis("exporter.env", &user.url);
    let exporter = ExporterProc::start(&env, 0).await;
    // The waiter registers in the lock's queue after its first attempt.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let body = exporter.metrics().await;
        let waiters = value(&body, "clusterops_lock_waiters{lock=\"nightly-report\"}");
        if waiters == Some(1.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "one waiter on nightly-report:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v = |series: &str| value(&body, series).unwrap_or_else(|| panic!("{series}:\n{body}"));
    assert_eq!(v("clusterops_up"), 1.0);
    assert_eq!(v("clusterops_nodes"), 3.0);
    for n in ["ex-a", "ex-b", "ex-c"] {
        assert_eq!(v(&format!("clusterops_node_up{{node=\"{n}\"}}")), 1.0);
        assert_eq!(
            v(&format!(
                "clusterops_node_state{{node=\"{n}\",state=\"running\"}}"
            )),
            1.0
        );
        assert!(
            v(&format!(
                "clusterops_node_heartbeat_age_seconds{{node=\"{n}\"}}"
            )) < 5.0
        );
        assert!(
            v(&format!(
                "clusterops_worker_ids_by_holder{{holder=\"{n}\"}}"
            )) == 1.0
        );
    }
    assert_eq!(v("clusterops_worker_ids_held"), 32.0);
    assert_eq!(v("clusterops_worker_ids_free"), 0.0);
    assert_eq!(v("clusterops_worker_ids_stale"), 29.0);
    assert_eq!(v("clusterops_worker_ids_by_holder{holder=\"ghost\"}"), 29.0);
    assert_eq!(
        v("clusterops_check_status{check=\"worker-id-capacity\"}"),
        2.0
    );
    assert_eq!(v("clusterops_check_status{check=\"same-version\"}"), 0.0);
    assert!(v("clusterops_locks_held") >= 1.0);
    assert!(
        v("clusterops_lock_hold_age_seconds{lock=\"nightly-report\",holder=\"batch-job\"}") < 60.0
    );
    let q = "{queue=\"exports\",backend=\"redis\"}";
    assert_eq!(v(&format!("clusterops_queue_waiting{q}")), 5.0);
    assert_eq!(v(&format!("clusterops_queue_dead_letters{q}")), 0.0);
    // The backlog as time: the oldest of the 5 waiting jobs, published
    // during this test; and the queue is not paused.
    let oldest = v(&format!("clusterops_queue_oldest_unhandled_age_seconds{q}"));
    assert!(
        (0.0..600.0).contains(&oldest),
        "oldest unhandled age {oldest}"
    );
    assert_eq!(v(&format!("clusterops_queue_paused{q}")), 0.0);
    assert_eq!(v("clusterops_verdict{verdict=\"degraded\"}"), 1.0);
    assert!(
        body.contains(&format!("server=\"redis://{}:***@", user.name)),
        "{body}"
    );
    assert!(!body.contains("ro-password"), "a password in the metrics");
    assert!(!body.contains("test-app-key"));
    promtool_accepts(&body);
    // Every family is in the operator guide's metric list.
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operator-guide.md"),
    )
    .unwrap();
    for family in body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            guide.contains(&format!("`{name}`")),
            "{name} is not in docs/operator-guide.md"
        );
    }

    guard.release().await.unwrap();
    let second = waiting.await.unwrap().unwrap();
    second.release().await.unwrap();
    drop(exporter);
    drop(user);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_scrapes_share_one_snapshot_read() {
    let c = TestCluster::new("exporter-share");
    let node = c.start("sh-a", "2").await;
    node.wait_for_health(200, Duration::from_secs(10)).await;
    // Cache 0: only scrapes that overlap share a read.
    let exporter = ExporterProc::start(&c.env_file, 0).await;
    let reads = |body: &str| value(body, "clusterops_exporter_snapshot_reads_total").unwrap();
    let before = reads(&exporter.metrics().await);
    let bodies = futures::future::join_all((0..8).map(|_| exporter.metrics())).await;
    let after = bodies.iter().map(|b| reads(b)).fold(0.0, f64::max);
    // Without sharing, 8 reads; they arrive within a few ms of each other.
    assert!(
        after - before <= 4.0,
        "8 concurrent scrapes took {} reads",
        after - before
    );
    // With a cache, scrapes within it reuse the snapshot.
    let cached = ExporterProc::start(&c.env_file, 60_000).await;
    let first = reads(&cached.metrics().await);
    for _ in 0..3 {
        assert_eq!(reads(&cached.metrics().await), first);
    }
    let scrapes = value(&cached.metrics().await, "clusterops_exporter_scrapes_total").unwrap();
    assert_eq!(scrapes, 5.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_unreachable_answers_200_with_up_0_and_counts_the_errors() {
    let c = TestCluster::new("exporter-down");
    // A port nothing listens on, with a password that must not show.
    let dead = format!("redis://:down-secret@127.0.0.1:{}/0", free_port());
    let env = c.env_on_redis("down.env", &dead);
    let exporter = ExporterProc::start(&env, 0).await;
    let first = exporter.metrics().await;
    let body = exporter.metrics().await;
    assert_eq!(value(&body, "clusterops_up"), Some(0.0), "{body}");
    assert_eq!(
        value(&body, "clusterops_source_up{source=\"nodes\"}"),
        Some(0.0)
    );
    let errors = value(
        &body,
        "clusterops_exporter_scrape_errors_total{source=\"nodes\"}",
    )
    .unwrap();
    assert!(errors >= 2.0, "one per read: {body}");
    assert!(
        value(
            &first,
            "clusterops_exporter_scrape_errors_total{source=\"nodes\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        value(
            &body,
            "clusterops_check_status{check=\"sources-reachable\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&body, "clusterops_verdict{verdict=\"down\"}"),
        Some(1.0)
    );
    assert!(!body.contains("down-secret"), "a password in the metrics");
    assert!(body.contains("server=\"redis://:***@127.0.0.1:"), "{body}");
    assert!(
        value(&body, "clusterops_nodes").is_none(),
        "no node facts without the registry"
    );
    promtool_accepts(&body);
    assert_eq!(exporter.get("/healthz").await.map(|r| r.0), Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_never_answers_is_abandoned_after_the_read_timeout() {
    let c = TestCluster::new("exporter-silent");
    // Accepts connections and never answers (a hung server, a black hole
    // behind a proxy).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/0", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let env = c.env_on_redis("silent.env", &url);
    let exporter = ExporterProc::start_with(&env, 0, &["--read-timeout", "1"]).await;
    let body = exporter.metrics().await;
    assert_eq!(value(&body, "clusterops_up"), Some(0.0), "{body}");
    assert_eq!(
        value(
            &body,
            "clusterops_exporter_scrape_errors_total{source=\"timeout\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        !body.contains("clusterops_cluster_info{"),
        "no snapshot, no cluster facts"
    );
    promtool_accepts(&body);
}
