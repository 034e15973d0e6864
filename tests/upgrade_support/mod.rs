//! The upgrade end-to-end rig, shared by tests/runbook/upgrade_e2e.rs and the fault
//! suite: a cluster of three real `clusterops node` processes (started by the
//! runbook's own process executor) behind a real nginx, on PostgreSQL and the
//! shared Redis, a state directory and a generated runbook configuration;
//! `clusterops upgrade` runs as a child process. Kills every node and
//! runbook it started on drop.
#![allow(dead_code)]

use crate::common::nginx::Nginx;
use crate::common::nodes::TestCluster;
use clusterops::runbook::executor::process::{PidFile, ProcessExecutor};
use clusterops::runbook::{Decision, Executor, PromptKind, RunbookConfig, StepIo, StepKind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_clusterops");
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

pub struct NullIo;

#[async_trait::async_trait]
impl StepIo for NullIo {
    fn step(&self) -> StepKind {
        StepKind::RollbackStart
    }
    fn line(&self, _line: &str) {}
    fn bytes(&self, _written: u64) {}
    async fn ask(&self, _k: PromptKind, _m: String, _c: Vec<Decision>) -> Decision {
        Decision::Confirm
    }
}

/// One cluster under test: its env, three node ports, nginx, a state
/// directory and the runbook configuration. Kills every node it knows of
/// (pid files of the process executor) and the runbook on drop.
pub struct Rig {
    pub cluster: TestCluster,
    pub nginx: Nginx,
    pub state: tempfile::TempDir,
    pub config_path: PathBuf,
    pub addrs: Vec<String>,
    pub http: reqwest::Client,
    pub runbooks: Vec<Child>,
    /// Extra environment of every runbook process started from now on.
    pub runbook_env: Vec<(String, String)>,
}

impl Rig {
    /// `target_smoke`: the body the smoke check of /api/status must contain.
    pub async fn new(label: &str, smoke_body: &str) -> Self {
        let cluster = TestCluster::new(label);
        let addrs: Vec<String> = NODES
            .iter()
            .map(|_| format!("127.0.0.1:{}", crate::common::free_port()))
            .collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let nginx = Nginx::start(&refs, 1).await;
        let state = tempfile::tempdir().unwrap();
        let mut toml = format!(
            "[cluster]\nname = \"{ns}\"\nload_balancer = \"127.0.0.1:{port}\"\n\n\
             [executor]\nkind = \"process\"\nbinary = \"{BIN}\"\n\
             args = [\"node\", \"--heartbeat-ms\", \"300\", \"--lease-ttl-ms\", \"1500\", \"--drain-timeout\", \"2\"]\n\
             stop_timeout_s = 10\n\n",
            ns = cluster.ns.name,
            port = nginx.port
        );
        for (name, addr) in NODES.iter().zip(&addrs) {
            toml.push_str(&format!(
                "[[nodes]]\nname = \"{name}\"\nlisten = \"{addr}\"\nenv_file = \"{}\"\n\n",
                cluster.env_file.display()
            ));
        }
        toml.push_str(&format!(
            "[backup]\nkind = \"postgres\"\nurl = \"{}\"\n\n\
             [[verify.smoke]]\npath = \"/api/status\"\nbody_contains = \"{smoke_body}\"\n\n\
             [[verify.smoke]]\npath = \"/api/counters/smoke\"\nbody_contains = \"\\\"value\\\"\"\n\n\
             [timeouts]\ndrain_s = 20\nstop_s = 20\nfirst_node_s = 30\nnode_s = 30\nrestore_s = 20\npoll_ms = 100\n\n\
             [rollback]\nautomatic = true\n",
            cluster.db.url()
        ));
        let config_path = state.path().join("runbook.toml");
        std::fs::write(&config_path, &toml).unwrap();
        Self {
            cluster,
            nginx,
            state,
            config_path,
            addrs,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            runbooks: Vec::new(),
            runbook_env: Vec::new(),
        }
    }

    pub fn ns(&self) -> String {
        self.cluster.ns.name.clone()
    }

    pub fn pid_dir(&self) -> PathBuf {
        self.state.path().join(self.ns()).join("nodes")
    }

    pub fn journal(&self) -> PathBuf {
        self.state.path().join(self.ns()).join("journal.jsonl")
    }

    /// Start the three nodes on `version` with the runbook's own executor
    /// (so the runbook finds their pid files), and wait until they serve.
    pub async fn start_nodes(&self, version: &str) {
        let config = RunbookConfig::load(&self.config_path).unwrap();
        let clusterops::runbook::config::ExecutorConfig::Process(p) = config.executor.clone()
        else {
            panic!("process executor expected");
        };
        let ex = ProcessExecutor::new(p, config.nodes.clone(), self.pid_dir());
        for slot in ex.slots() {
            ex.start(&slot, version, &NullIo).await.unwrap();
        }
        for addr in &self.addrs {
            self.wait_status(addr, |s| s["state"] == "running" && s["worker_id"].is_u64())
                .await;
        }
        self.wait_lb(200).await;
    }

    pub async fn status(&self, addr: &str) -> Option<serde_json::Value> {
        let r = self
            .http
            .get(format!("http://{addr}/api/status"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn wait_status(&self, addr: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.status(addr).await;
            if last.as_ref().is_some_and(&ok) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{addr}: status never as expected; last {last:?}");
    }

    pub async fn lb_code(&self) -> Option<u16> {
        let r = self
            .http
            .get(self.nginx.url("/api/__health_check"))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    pub async fn wait_lb(&self, code: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.lb_code().await == Some(code) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx never answered {code}: {}", self.nginx.error_log());
    }

    /// Write `n` records through nginx.
    pub async fn write_records(&self, n: usize) {
        for i in 0..n {
            let r = self
                .http
                .post(self.nginx.url("/api/records"))
                .json(
                    &serde_json::json!({"name": format!("rec{i}"), "value": format!("value {i}")}),
                )
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "POST /api/records: {}", r.status());
        }
    }

    pub fn records(&self) -> String {
        self.cluster
            .db
            .query("SELECT id, name, value, revision FROM records ORDER BY id")
    }

    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--config".to_string(),
            self.config_path.display().to_string(),
            "--env-file".to_string(),
            self.cluster.env_file.display().to_string(),
            "--state-dir".to_string(),
            self.state.path().display().to_string(),
        ]);
        v
    }

    /// Start `clusterops upgrade <extra>` in the background; its output
    /// goes to `<state>/runbook-<i>.log`.
    pub fn spawn_runbook(&mut self, extra: &[&str]) -> usize {
        self.spawn_runbook_answering(extra, None)
    }

    /// Like `spawn_runbook`; with `answers`, its stdin is a pipe they are
    /// written to (more with `answer`).
    pub fn spawn_runbook_answering(&mut self, extra: &[&str], answers: Option<&str>) -> usize {
        let i = self.runbooks.len();
        let log =
            std::fs::File::create(self.state.path().join(format!("runbook-{i}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(self.args(extra))
            .envs(self.runbook_env.iter().map(|(k, v)| (k, v)))
            .stdin(if answers.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.runbooks.push(child);
        if let Some(text) = answers {
            self.answer(i, text);
        }
        i
    }

    /// Write answers to runbook `i`'s stdin.
    pub fn answer(&mut self, i: usize, text: &str) {
        use std::io::Write;
        let stdin = self.runbooks[i].stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn runbook_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.state.path().join(format!("runbook-{i}.log")))
            .unwrap_or_default()
    }

    /// Wait for runbook `i` to exit; its exit code.
    pub async fn wait_runbook(&mut self, i: usize, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.runbooks[i].try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the runbook did not finish; its output:\n{}",
                self.runbook_log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9_runbook(&mut self, i: usize) {
        let _ = self.runbooks[i].kill();
        let _ = self.runbooks[i].wait();
    }

    /// Run `clusterops <args>` to the end.
    pub fn run_cli(&self, args: &[String]) -> Output {
        Command::new(BIN).args(args).output().unwrap()
    }

    /// The journal's events as JSON values.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.journal())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until the journal has an event matching `ok`.
    /// Wait until `step` has journaled an output line containing `needle`.
    pub async fn wait_output(&self, step: &str, needle: &str) {
        self.wait_event(&format!("{step} output {needle:?}"), |e| {
            e["event"] == "output"
                && e["step"] == step
                && e["line"].as_str().is_some_and(|l| l.contains(needle))
        })
        .await;
    }

    pub async fn wait_event(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.events().iter().any(&ok) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the journal never showed {what}; runbook output:\n{}",
            self.runbook_log(0)
        );
    }

    /// Every node runs `version` with schema `version`, and the cluster serves.
    pub async fn assert_all_on(&self, version: &str) {
        for addr in &self.addrs {
            self.wait_status(addr, |s| {
                s["app_version"] == version
                    && s["schema_version"] == version
                    && s["state"] == "running"
            })
            .await;
        }
        self.wait_lb(200).await;
        assert!(!self.maintenance_set(), "maintenance is still set");
    }

    pub fn maintenance_set(&self) -> bool {
        self.cluster
            .ns
            .keys()
            .iter()
            .any(|k| k == &format!("{}:maintenance", self.ns()))
    }

    pub fn audit_json(&self) -> serde_json::Value {
        let out = self.run_cli(&[
            "audit".to_string(),
            "--state-dir".to_string(),
            self.state.path().display().to_string(),
            "--json".to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

pub fn kill_pid_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "pid")
            && let Ok(text) = std::fs::read_to_string(e.path())
            && let Ok(pf) = serde_json::from_str::<PidFile>(&text)
        {
            let pid = nix::unistd::Pid::from_raw(pf.pid);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in &mut self.runbooks {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_pid_files(&self.pid_dir());
    }
}

/// Polls the health check through nginx until stopped; the codes seen.
pub fn poll_lb(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<u16>> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(r) = http.get(&url).send().await {
                let code = r.status().as_u16();
                if seen.last() != Some(&code) {
                    seen.push(code);
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        seen
    })
}

pub fn step_names(run: &serde_json::Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let result = if s["result"].is_string() {
                s["result"].as_str().unwrap().to_string()
            } else {
                s["result"]["result"].as_str().unwrap_or("?").to_string()
            };
            (s["step"].as_str().unwrap().to_string(), result)
        })
        .collect()
}
