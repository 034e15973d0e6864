//! Real `clusterops node` processes for tests: a cluster environment (its
//! own namespace on the shared Redis, its own PostgreSQL database, its own
//! shared storage folder) and nodes started, stopped and killed on demand.

use super::{TestDb, TestNs, free_port, redis_url};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Heartbeat interval of test nodes (the record lives three of these).
pub const HEARTBEAT_MS: u64 = 300;
/// Worker-ID lease TTL of test nodes.
pub const LEASE_TTL_MS: u64 = 1500;

/// One cluster's environment.
pub struct TestCluster {
    pub ns: TestNs,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub env_file: PathBuf,
}

impl TestCluster {
    pub fn new(label: &str) -> Self {
        let ns = TestNs::new(label);
        let db = TestDb::create(label);
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let url = redis_url();
        let env = format!(
            "CLUSTER_NAME={}\nCACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL={url}\nPUBSUB_ADAPTER_REDIS_URL={url}\n\
             QUEUE_ADAPTER=redis\nQUEUE_ADAPTER_REDIS_URL={url}\nLOCK_ADAPTER_DEFAULT=redis\nLOCK_ADAPTER_REDIS_URL={url}\n\
             REDIS_URL={url}\nDB_URL={}\nSTORAGE_PATH={}\nAPP_KEY=test-app-key\n",
            ns.name,
            db.url(),
            storage.display()
        );
        let env_file = dir.path().join("cluster.env");
        std::fs::write(&env_file, env).expect("env file");
        Self {
            ns,
            db,
            dir,
            env_file,
        }
    }

    /// Start a node and wait until it answers its status endpoint.
    pub async fn start(&self, node_id: &str, version: &str) -> NodeProc {
        let node = self.spawn(node_id, version);
        node.wait_for_status(Duration::from_secs(30)).await;
        node
    }

    /// Start a node without waiting.
    pub fn spawn(&self, node_id: &str, version: &str) -> NodeProc {
        self.spawn_with_env(node_id, version, &self.env_file)
    }

    /// An env file like the cluster's with some lines replaced (`KEY=value`).
    pub fn env_variant(&self, name: &str, overrides: &[(&str, &str)]) -> PathBuf {
        let text = std::fs::read_to_string(&self.env_file).expect("env file");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| {
                !overrides
                    .iter()
                    .any(|(k, _)| l.starts_with(&format!("{k}=")))
            })
            .map(str::to_string)
            .collect();
        lines.extend(overrides.iter().map(|(k, v)| format!("{k}={v}")));
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("env file");
        path
    }

    /// An env file like the cluster's with every Redis URL on `url` (a
    /// private server the test may stop and start).
    pub fn env_on_redis(&self, name: &str, url: &str) -> PathBuf {
        let keys = [
            "CACHE_REDIS_URL",
            "PUBSUB_ADAPTER_REDIS_URL",
            "QUEUE_ADAPTER_REDIS_URL",
            "LOCK_ADAPTER_REDIS_URL",
            "REDIS_URL",
        ];
        let overrides: Vec<(&str, &str)> = keys.iter().map(|k| (*k, url)).collect();
        self.env_variant(name, &overrides)
    }

    /// Start a node with another env file, without waiting.
    pub fn spawn_with_env(
        &self,
        node_id: &str,
        version: &str,
        env_file: &std::path::Path,
    ) -> NodeProc {
        self.spawn_with_process_env(node_id, version, env_file, &[])
    }

    /// Start a node with another env file and variables set in the
    /// process's environment (e.g. libfaketime's), without waiting.
    pub fn spawn_with_process_env(
        &self,
        node_id: &str,
        version: &str,
        env_file: &std::path::Path,
        process_env: &[(&str, &str)],
    ) -> NodeProc {
        self.spawn_with_args(node_id, version, env_file, process_env, &[])
    }

    /// [`TestCluster::spawn_with_process_env`] with more `node` options
    /// (e.g. `--process-port-base 0` under CLUSTER_MODE).
    pub fn spawn_with_args(
        &self,
        node_id: &str,
        version: &str,
        env_file: &std::path::Path,
        process_env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> NodeProc {
        let port = free_port();
        let log_path = self.dir.path().join(format!("{node_id}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let log2 = log.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_clusterops"))
            .args([
                "node",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--node-id",
                node_id,
            ])
            .args([
                "--app-version",
                version,
                "--heartbeat-ms",
                &HEARTBEAT_MS.to_string(),
            ])
            .args([
                "--lease-ttl-ms",
                &LEASE_TTL_MS.to_string(),
                "--drain-timeout",
                "5",
            ])
            .args(extra_args)
            .arg("--env-file")
            .arg(env_file)
            .env("RUST_LOG", "info")
            .envs(process_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("the clusterops binary runs");
        NodeProc {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            node_id: node_id.to_string(),
            log: log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }
}

/// One node process, killed on drop if still running.
pub struct NodeProc {
    child: Option<Child>,
    pub addr: String,
    pub node_id: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl NodeProc {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn status(&self) -> Option<serde_json::Value> {
        let resp = self.http.get(self.url("/api/status")).send().await.ok()?;
        resp.json().await.ok()
    }

    /// Status code and body of the health check; `None` if unreachable.
    pub async fn health(&self) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(self.url("/api/__health_check"))
            .send()
            .await
            .ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.unwrap_or_default()))
    }

    pub async fn wait_for_status(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.status().await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "node {} did not start; log:\n{}",
            self.node_id,
            self.log_text()
        );
    }

    /// Wait until the health check answers `code`.
    pub async fn wait_for_health(&self, code: u16, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.health().await;
            if let Some((c, body)) = &last
                && *c == code
            {
                return body.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "node {}: health never {code} (last {last:?}); log:\n{}",
            self.node_id,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// How the process ended, if it has (`None`: still running).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Poll `check` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
