//! Shared helpers of the runbook tests: a scripted operator, a step output
//! buffer, a throw-away PostgreSQL database, a stand-in node program, and a
//! `ClusterOps` backed by real state (Redis keys under a test namespace,
//! real processes started by the process executor, the real database).
#![allow(dead_code)]

use clusterops::config::Namespace;
use clusterops::inspect::{CheckResult, CheckStatus};
use clusterops::runbook::executor::process::ProcessExecutor;
use clusterops::runbook::journal;
use clusterops::runbook::*;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Answers prompts from per-kind queues; when a queue is empty: confirm,
/// except failures (abort). Records every prompt and progress event.
#[derive(Default)]
pub struct ScriptedOperator {
    answers: Mutex<BTreeMap<String, VecDeque<Decision>>>,
    /// Never answer prompts of this kind (to crash a run while it waits).
    pub hang_on: Mutex<Option<PromptKind>>,
    pub prompts: Mutex<Vec<Prompt>>,
    pub progress: Mutex<Vec<Progress>>,
}

impl ScriptedOperator {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn answer(&self, kind: PromptKind, decision: Decision) {
        self.answers
            .lock()
            .entry(format!("{kind:?}"))
            .or_default()
            .push_back(decision);
    }

    pub fn prompt_kinds(&self) -> Vec<PromptKind> {
        self.prompts.lock().iter().map(|p| p.kind).collect()
    }
}

#[async_trait::async_trait]
impl Operator for ScriptedOperator {
    async fn confirm(&self, prompt: &Prompt) -> Decision {
        self.prompts.lock().push(prompt.clone());
        if *self.hang_on.lock() == Some(prompt.kind) {
            futures::future::pending::<()>().await;
        }
        let queued = self
            .answers
            .lock()
            .get_mut(&format!("{:?}", prompt.kind))
            .and_then(|q| q.pop_front());
        queued.unwrap_or(match prompt.kind {
            PromptKind::Failure => Decision::Abort,
            _ => Decision::Confirm,
        })
    }

    fn progress(&self, event: &Progress) {
        self.progress.lock().push(event.clone());
    }
}

/// A `StepIo` collecting lines and answering every question with `answer`.
pub struct BufferIo {
    pub lines: Mutex<Vec<String>>,
    pub asked: Mutex<Vec<String>>,
    pub answer: Decision,
}

impl BufferIo {
    pub fn new() -> Self {
        Self::answering(Decision::Confirm)
    }

    pub fn answering(answer: Decision) -> Self {
        Self {
            lines: Mutex::new(Vec::new()),
            asked: Mutex::new(Vec::new()),
            answer,
        }
    }

    pub fn text(&self) -> String {
        self.lines.lock().join("\n")
    }
}

#[async_trait::async_trait]
impl StepIo for BufferIo {
    fn step(&self) -> StepKind {
        StepKind::StopNodes
    }
    fn line(&self, line: &str) {
        self.lines.lock().push(line.to_string());
    }
    fn bytes(&self, _written: u64) {}
    async fn ask(&self, _kind: PromptKind, message: String, _choices: Vec<Decision>) -> Decision {
        self.asked.lock().push(message);
        self.answer
    }
}

/// A throw-away PostgreSQL database on 127.0.0.1:5432 (dropped on drop).
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create(label: &str) -> Self {
        let name = format!("rb_{label}_{:08x}", rand::random::<u32>());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub fn exec(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Run SQL with psql; returns the unaligned, tuples-only output.
pub fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A stand-in for `clusterops node`: records its version, "migrates" the
/// schema in the real database (version `bad`: writes a broken schema and
/// exits 3), then sleeps. `ignore_term`: traps SIGTERM (to test SIGKILL).
pub fn fake_node(dir: &Path, db: Option<&str>, ignore_term: bool) -> PathBuf {
    let migrate = match db {
        Some(db) => format!(
            "if [ \"$version\" = bad ]; then\n  psql -X -q -h 127.0.0.1 -U postgres -d {db} -c \"UPDATE app_schema SET version = 'bad-partial'\"\n  echo 'migration failed' >&2\n  exit 3\nfi\n\
             psql -X -q -h 127.0.0.1 -U postgres -d {db} -c \"UPDATE app_schema SET version = '$version' WHERE version < '$version'\" || exit 4\n"
        ),
        None => String::new(),
    };
    let wait = if ignore_term {
        "trap '' TERM\nwhile :; do sleep 1; done\n"
    } else {
        "exec sleep 300\n"
    };
    let script = format!(
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    --app-version) version=$2; shift 2;;\n    --node-id) node=$2; shift 2;;\n    *) shift;;\n  esac\ndone\n\
         echo \"$version\" > \"{dir}/$node.version\"\n{migrate}{wait}",
        dir = dir.display()
    );
    let path = dir.join("fake-node.sh");
    std::fs::write(&path, script).unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

/// A node the test cluster knows: name, and the address of the tiny HTTP
/// server answering its /api/status and health check.
pub struct FakeNode {
    pub name: String,
    pub addr: String,
}

/// `ClusterOps` over real state: the maintenance flag and the runbook lock
/// are Redis keys under a test namespace, the journal is mirrored with
/// XADD, nodes are the real processes the process executor started (their
/// version from the file the stand-in writes), and the schema version is
/// read from the real database.
pub struct TestCluster {
    pub ns: Namespace,
    pub conn: redis::aio::ConnectionManager,
    pub procs: ProcessExecutor,
    pub version_dir: PathBuf,
    pub db: Option<String>,
    pub nodes: Vec<FakeNode>,
    /// Preflight results; the first `fail_preflight` calls add a failure.
    pub preflight: Mutex<Vec<CheckResult>>,
    pub fail_preflight: AtomicU32,
    pub lock_ttl_ms: u64,
}

impl TestCluster {
    pub fn maintenance_key(&self) -> String {
        self.ns.key("maintenance")
    }

    pub fn lock_key(&self) -> String {
        self.ns.key("runbook:lock")
    }

    pub fn maintenance_now(&self) -> bool {
        let client = redis::Client::open(crate::common::redis_url()).unwrap();
        let mut c = client.get_connection().unwrap();
        redis::cmd("EXISTS")
            .arg(self.maintenance_key())
            .query::<i64>(&mut c)
            .unwrap()
            == 1
    }

    fn schema(&self) -> Option<String> {
        self.db
            .as_ref()
            .map(|db| psql(db, "SELECT version FROM app_schema"))
    }

    /// The live node's status, as its /api/status would say.
    pub fn status_of(&self, name: &str) -> Option<serde_json::Value> {
        let idx = self.nodes.iter().position(|n| n.name == name)?;
        self.procs.running(name)?;
        let version =
            std::fs::read_to_string(self.version_dir.join(format!("{name}.version"))).ok()?;
        let state = if self.maintenance_now() {
            "maintenance"
        } else {
            "running"
        };
        Some(serde_json::json!({
            "node_id": name,
            "app_version": version.trim(),
            "schema_version": self.schema(),
            "worker_id": idx,
            "state": state,
            "state_reason": state,
            "http_addr": self.nodes[idx].addr,
        }))
    }
}

#[async_trait::async_trait]
impl ClusterOps for TestCluster {
    async fn preflight(&self) -> Result<Vec<CheckResult>, ClusterError> {
        let mut out = self.preflight.lock().clone();
        if self
            .fail_preflight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            out.push(CheckResult {
                id: "sources-reachable".to_string(),
                status: CheckStatus::Fail,
                reason: "test: Redis unreachable".to_string(),
            });
        }
        Ok(out)
    }

    async fn set_maintenance(&self, by: &str, reason: &str) -> Result<(), ClusterError> {
        let flag = serde_json::json!({"by": by, "reason": reason, "since_ms": clusterops::clock::now_ms()});
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(self.maintenance_key())
            .arg(flag.to_string())
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| ClusterError::new(e.to_string()))
    }

    async fn clear_maintenance(&self) -> Result<bool, ClusterError> {
        let mut c = self.conn.clone();
        let n: i64 = redis::cmd("DEL")
            .arg(self.maintenance_key())
            .query_async(&mut c)
            .await
            .map_err(|e| ClusterError::new(e.to_string()))?;
        Ok(n > 0)
    }

    async fn maintenance_set(&self) -> Result<bool, ClusterError> {
        let mut c = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.maintenance_key())
            .query_async(&mut c)
            .await
            .map_err(|e| ClusterError::new(e.to_string()))?;
        Ok(n == 1)
    }

    async fn node_states(&self) -> Result<Vec<NodeReport>, ClusterError> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if let Some(v) = self.status_of(&n.name) {
                out.push(NodeReport {
                    node_id: n.name.clone(),
                    state: v["state"].as_str().unwrap_or("").to_string(),
                    app_version: v["app_version"].as_str().unwrap_or("").to_string(),
                    schema_version: v["schema_version"].as_str().map(str::to_string),
                    worker_id: v["worker_id"].as_u64().map(|w| w as u16),
                    http_addr: n.addr.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn leases_held(&self) -> Result<Vec<HeldLease>, ClusterError> {
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| self.procs.running(&n.name).is_some())
            .map(|(i, n)| HeldLease {
                worker_id: i as u16,
                holder: n.name.clone(),
            })
            .collect())
    }

    async fn acquire_runbook_lock(
        &self,
        request: &LockRequest,
    ) -> Result<Box<dyn RunbookLockGuard>, LockAcquireError> {
        let mut c = self.conn.clone();
        let value = serde_json::json!({"holder": request.holder(), "run_id": request.run_id, "since_ms": clusterops::clock::now_ms()}).to_string();
        let fail =
            |e: redis::RedisError| LockAcquireError::Failed(ClusterError::new(e.to_string()));
        let set: Option<String> = redis::cmd("SET")
            .arg(self.lock_key())
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(self.lock_ttl_ms)
            .query_async(&mut c)
            .await
            .map_err(fail)?;
        if set.is_none() {
            let held: Option<String> = redis::cmd("GET")
                .arg(self.lock_key())
                .query_async(&mut c)
                .await
                .map_err(fail)?;
            let held: serde_json::Value =
                serde_json::from_str(held.as_deref().unwrap_or("{}")).unwrap_or_default();
            // The same run may take its own lock back (resume after a crash).
            if held["run_id"].as_str() != Some(request.run_id.as_str()) {
                return Err(LockAcquireError::refused(
                    held["holder"].as_str().unwrap_or("?"),
                    held["since_ms"].as_u64().unwrap_or(0),
                ));
            }
            redis::cmd("SET")
                .arg(self.lock_key())
                .arg(&value)
                .arg("PX")
                .arg(self.lock_ttl_ms)
                .query_async::<()>(&mut c)
                .await
                .map_err(fail)?;
        }
        Ok(Box::new(TestLockGuard {
            conn: self.conn.clone(),
            key: self.lock_key(),
        }))
    }

    async fn mirror_journal(&self, line: &str) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        journal::mirror_to_redis(&mut c, &self.ns, line)
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::new(e.to_string()))
    }
}

pub struct TestLockGuard {
    conn: redis::aio::ConnectionManager,
    key: String,
}

#[async_trait::async_trait]
impl RunbookLockGuard for TestLockGuard {
    async fn release(self: Box<Self>) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL")
            .arg(&self.key)
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| ClusterError::new(e.to_string()))
    }
}
