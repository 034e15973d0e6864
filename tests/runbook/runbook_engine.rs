//! The runbook engine end to end on real state: the maintenance flag and the
//! runbook lock are Redis keys under a test namespace, the journal is
//! mirrored to a real stream, nodes are real processes started by the
//! process executor (a stand-in program that "migrates" a real PostgreSQL
//! database), each answering /api/status through a tiny HTTP server, and the
//! backup is a real pg_dump. The operator is scripted.

use crate::common;
use crate::runbook_support;

use axum::extract::State;
use axum::response::IntoResponse;
use clusterops::inspect::{CheckResult, CheckStatus};
use clusterops::runbook::config::ProcessConfig;
use clusterops::runbook::executor::process::ProcessExecutor;
use clusterops::runbook::journal::{self, Entry, Event, RunEnd, StepResult};
use clusterops::runbook::*;
use common::TestNs;
use parking_lot::Mutex;
use runbook_support::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

struct Setup {
    ns: TestNs,
    db: TestDb,
    _dir: tempfile::TempDir,
    cluster: Arc<TestCluster>,
    config: RunbookConfig,
    state_dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Kill every node process left (also when a test failed).
        for n in &self.cluster.nodes {
            if let Some(pf) = self.cluster.procs.running(&n.name) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pf.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn alice() -> Actor {
    Actor {
        user: "alice".to_string(),
        host: "ops1".to_string(),
    }
}

async fn status(
    State((cluster, name)): State<(Arc<TestCluster>, String)>,
) -> axum::response::Response {
    let st = tokio::task::spawn_blocking(move || cluster.status_of(&name))
        .await
        .unwrap();
    match st {
        Some(v) => axum::Json(v).into_response(),
        None => (axum::http::StatusCode::BAD_GATEWAY, "not running").into_response(),
    }
}

async fn health(
    State((cluster, name)): State<(Arc<TestCluster>, String)>,
) -> axum::response::Response {
    let st = tokio::task::spawn_blocking(move || cluster.status_of(&name))
        .await
        .unwrap();
    match st.as_ref().and_then(|v| v["state"].as_str()) {
        Some("running") => "ok\n".into_response(),
        Some(state) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{state}: flag set\n"),
        )
            .into_response(),
        None => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down\n").into_response(),
    }
}

/// A cluster of `n` nodes running version 1, a database at schema 1.
async fn setup(label: &str, n: usize, backup_url: Option<String>) -> Setup {
    let ns = TestNs::new(label);
    let db = TestDb::create(label);
    db.exec("CREATE TABLE app_schema (version text); INSERT INTO app_schema VALUES ('1'); CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100)");
    let dir = tempfile::tempdir().unwrap();
    let script = fake_node(dir.path(), Some(&db.name), false);
    let state_dir = dir.path().join("state");
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut toml = format!(
        "[cluster]\nname = \"{cluster}\"\nload_balancer = \"{lb}\"\n\n[executor]\nkind = \"process\"\nbinary = \"{bin}\"\nstop_timeout_s = 5\n\n",
        cluster = ns.name,
        lb = addrs[0],
        bin = script.display()
    );
    for (i, a) in addrs.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nname = \"app{}\"\nlisten = \"{a}\"\n\n",
            i + 1
        ));
    }
    toml.push_str(&format!(
        "[backup]\nkind = \"postgres\"\nurl = \"{}\"\n\n[[verify.smoke]]\npath = \"/api/status\"\nexpect_status = 200\nbody_contains = \"app_version\"\n\n\
         [timeouts]\ndrain_s = 10\nstop_s = 10\nfirst_node_s = 10\nnode_s = 10\nrestore_s = 10\npoll_ms = 50\n",
        backup_url.unwrap_or_else(|| db.url())
    ));
    let config = RunbookConfig::parse(&toml, "test").unwrap();
    let procs = ProcessExecutor::new(
        ProcessConfig {
            binary: script,
            args: vec!["node".to_string()],
            stop_timeout_s: 5,
        },
        config.nodes.clone(),
        state_dir.join(&ns.name).join("nodes"),
    );
    let client = redis::Client::open(ns.url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let cluster = Arc::new(TestCluster {
        ns: ns.namespace(),
        conn,
        procs,
        version_dir: dir.path().to_path_buf(),
        db: Some(db.name.clone()),
        nodes: (0..n)
            .map(|i| FakeNode {
                name: format!("app{}", i + 1),
                addr: addrs[i].clone(),
            })
            .collect(),
        preflight: Mutex::new(vec![
            CheckResult {
                id: "same-version".to_string(),
                status: CheckStatus::Pass,
                reason: "every node runs 1".to_string(),
            },
            CheckResult {
                id: "eviction-policy".to_string(),
                status: CheckStatus::Warn,
                reason: "test: allkeys-lru".to_string(),
            },
        ]),
        fail_preflight: AtomicU32::new(0),
        lock_ttl_ms: 30_000,
    });
    for (i, l) in listeners.into_iter().enumerate() {
        let app = axum::Router::new()
            .route("/api/status", axum::routing::get(status))
            .route("/api/__health_check", axum::routing::get(health))
            .with_state((cluster.clone(), format!("app{}", i + 1)));
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    let io = BufferIo::new();
    for s in cluster.procs.slots() {
        cluster.procs.start(&s, "1", &io).await.unwrap();
    }
    Setup {
        ns,
        db,
        _dir: dir,
        cluster,
        config,
        state_dir,
    }
}

impl Setup {
    async fn runbook(&self, op: Arc<ScriptedOperator>) -> Runbook {
        Runbook::new(
            self.config.clone(),
            self.cluster.clone(),
            op,
            self.state_dir.clone(),
        )
        .await
        .unwrap()
        .with_actor(alice())
    }

    fn journal(&self) -> Vec<Entry> {
        journal::read(&journal::journal_path(&self.state_dir, &self.ns.name)).unwrap()
    }

    fn versions(&self) -> Vec<Option<String>> {
        self.cluster
            .nodes
            .iter()
            .map(|n| self.cluster.procs.running(&n.name).map(|p| p.version))
            .collect()
    }

    fn stream_len(&self) -> usize {
        let client = redis::Client::open(self.ns.url.as_str()).unwrap();
        let mut c = client.get_connection().unwrap();
        redis::cmd("XLEN")
            .arg(journal::mirror_key(&self.ns.namespace()))
            .query::<usize>(&mut c)
            .unwrap()
    }
}

fn finished_steps(entries: &[Entry]) -> Vec<(StepKind, StepResult)> {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::StepFinished { step, result } => Some((*step, result.clone())),
            _ => None,
        })
        .collect()
}

fn decisions(entries: &[Entry]) -> Vec<(StepKind, PromptKind, Decision)> {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Decision {
                step,
                prompt,
                decision,
                ..
            } => Some((*step, *prompt, *decision)),
            _ => None,
        })
        .collect()
}

fn started_count(entries: &[Entry], kind: StepKind) -> usize {
    entries
        .iter()
        .filter(|e| matches!(&e.event, Event::StepStarted { step, .. } if *step == kind))
        .count()
}

fn outputs(entries: &[Entry]) -> String {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Output { line, .. } => Some(line.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_upgrade_runs_every_step_in_order_and_journals_it() {
    let s = setup("rbfull", 2, None).await;
    assert_eq!(
        s.versions(),
        vec![Some("1".to_string()), Some("1".to_string())]
    );
    let op = ScriptedOperator::new();
    let rb = s.runbook(op.clone()).await;

    let outcome = rb.run("2").await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );

    let entries = s.journal();
    let steps = finished_steps(&entries);
    assert_eq!(
        steps.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        StepKind::UPGRADE.to_vec(),
        "every step once, in order"
    );
    assert!(steps.iter().all(|(_, r)| *r == StepResult::Succeeded));
    assert_eq!(
        decisions(&entries),
        vec![
            (StepKind::Preflight, PromptKind::Warnings, Decision::Confirm),
            (StepKind::Verify, PromptKind::Verify, Decision::Confirm)
        ]
    );
    let Event::RunStarted {
        previous_version,
        by,
        ..
    } = &entries[0].event
    else {
        panic!("first entry: {:?}", entries[0]);
    };
    assert_eq!((previous_version.as_deref(), by), (Some("1"), &alice()));
    assert!(matches!(
        entries.last().unwrap().event,
        Event::RunFinished {
            outcome: RunEnd::Completed,
            ..
        }
    ));

    // The cluster: new version everywhere, schema migrated, traffic back.
    assert_eq!(
        s.versions(),
        vec![Some("2".to_string()), Some("2".to_string())]
    );
    assert_eq!(s.db.exec("SELECT version FROM app_schema"), "2");
    assert!(!s.cluster.maintenance_now());
    assert!(
        !s.ns.keys().contains(&s.cluster.lock_key()),
        "the lock is released"
    );

    // The backup is recorded with its checksum, and the file matches it.
    let rec = entries
        .iter()
        .find_map(|e| match &e.event {
            Event::Backup { record } => Some(record.clone()),
            _ => None,
        })
        .expect("a backup event");
    clusterops::runbook::backup::check_record(&rec)
        .await
        .unwrap();
    assert!(
        rec.file
            .starts_with(s.state_dir.join(&s.ns.name).join("backups"))
    );

    let out = outputs(&entries);
    for needle in [
        "WARN eviction-policy",
        "maintenance flag set by alice@ops1",
        "app1: SIGTERM sent",
        "every worker-ID lease is free",
        "pg_restore --list",
        "smoke: GET /api/status: 200 as expected",
        "maintenance flag cleared",
        "/api/__health_check: 200",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in:\n{out}");
    }
    // A console's view of the run: each step with its output and times.
    let view = clusterops::runbook::view::last_run(&entries).unwrap();
    assert_eq!(view.finished, Some(RunEnd::Completed));
    assert_eq!(view.steps.len(), 8);
    let backup_view = &view.steps[3];
    assert_eq!(backup_view.kind, StepKind::Backup);
    assert!(backup_view.description.contains("pg_dump -Fc"));
    assert!(backup_view.output.iter().any(|l| l.contains("sha256")));
    assert!(backup_view.started_at_ms.unwrap() <= backup_view.ended_at_ms.unwrap());
    assert_eq!(backup_view.result, Some(StepResult::Succeeded));
    // Every journal line reached the Redis stream, in order.
    assert_eq!(s.stream_len(), entries.len());
    let audit = audit::read(&s.state_dir).unwrap();
    assert_eq!(audit.runs.len(), 1);
    assert_eq!(audit.runs[0].outcome, Some(RunEnd::Completed));
    assert!(audit::format(&audit).contains("1 -> 2: completed"));
    assert!(
        op.progress
            .lock()
            .iter()
            .any(|p| matches!(p, Progress::Bytes { .. })),
        "backup progress shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_node_rolls_back_to_the_backup_and_the_previous_version() {
    let s = setup("rbback", 2, None).await;
    let op = ScriptedOperator::new();
    op.answer(PromptKind::Failure, Decision::Rollback);
    let rb = s.runbook(op.clone()).await;

    let outcome = rb.run("bad").await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::RolledBack { .. }),
        "{outcome:?}"
    );
    let failure = op
        .prompts
        .lock()
        .iter()
        .find(|p| p.kind == PromptKind::Failure)
        .cloned()
        .unwrap();
    assert_eq!(failure.step, StepKind::UpgradeFirst);
    assert!(failure.choices.contains(&Decision::Rollback));

    let entries = s.journal();
    let kinds: Vec<StepKind> = finished_steps(&entries).iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            StepKind::Preflight,
            StepKind::Drain,
            StepKind::StopNodes,
            StepKind::Backup,
            StepKind::UpgradeFirst,
            StepKind::RollbackStop,
            StepKind::RollbackRestore,
            StepKind::RollbackStart,
            StepKind::RollbackRestoreTraffic
        ]
    );
    assert!(entries.iter().any(|e| matches!(&e.event, Event::RollbackStarted { reason } if reason.contains("Upgrade one node failed"))));
    assert!(matches!(
        entries.last().unwrap().event,
        Event::RunFinished {
            outcome: RunEnd::RolledBack,
            ..
        }
    ));
    // The broken migration was undone by the restore; the old version runs.
    assert_eq!(s.db.exec("SELECT version FROM app_schema"), "1");
    assert_eq!(s.db.exec("SELECT count(*) FROM orders"), "100");
    assert_eq!(
        s.versions(),
        vec![Some("1".to_string()), Some("1".to_string())]
    );
    assert!(!s.cluster.maintenance_now());
    assert!(audit::format(&audit::read(&s.state_dir).unwrap()).contains("rolled back"));
    let view = clusterops::runbook::view::last_run(&entries).unwrap();
    assert_eq!(
        view.steps.len(),
        12,
        "the rollback steps are shown once it started"
    );
    assert!(matches!(
        view.steps[4].result,
        Some(StepResult::Failed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_skip_and_abort_are_recorded_and_abort_leaves_maintenance_on() {
    let s = setup(
        "rbdecide",
        1,
        Some("postgres://postgres@127.0.0.1:5432/rb_no_such_db".to_string()),
    )
    .await;
    s.cluster
        .fail_preflight
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let op = ScriptedOperator::new();
    op.answer(PromptKind::Failure, Decision::Retry); // preflight fails once
    op.answer(PromptKind::Failure, Decision::Skip); // the backup cannot work
    op.answer(PromptKind::Verify, Decision::Abort);
    let rb = s.runbook(op.clone()).await;

    let outcome = rb.run("2").await.unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Aborted {
            run_id: match &outcome {
                RunOutcome::Aborted { run_id, .. } => run_id.clone(),
                _ => String::new(),
            },
            at: Some(StepKind::Verify)
        }
    );
    let prompts = op.prompts.lock().clone();
    assert!(
        !prompts[0].choices.contains(&Decision::Rollback),
        "no rollback before the upgrade started"
    );
    let entries = s.journal();
    assert_eq!(
        decisions(&entries),
        vec![
            (StepKind::Preflight, PromptKind::Failure, Decision::Retry),
            (StepKind::Preflight, PromptKind::Warnings, Decision::Confirm),
            (StepKind::Backup, PromptKind::Failure, Decision::Skip),
            (StepKind::Verify, PromptKind::Verify, Decision::Abort),
        ]
    );
    let steps = finished_steps(&entries);
    assert!(
        matches!(&steps[0], (StepKind::Preflight, StepResult::Failed { error }) if error.contains("sources-reachable"))
    );
    assert_eq!(steps[1], (StepKind::Preflight, StepResult::Succeeded));
    assert!(steps.contains(&(StepKind::Backup, StepResult::Skipped)));
    assert_eq!(started_count(&entries, StepKind::Preflight), 2);
    assert!(matches!(
        entries.last().unwrap().event,
        Event::RunFinished {
            outcome: RunEnd::Aborted,
            ..
        }
    ));
    assert!(
        s.cluster.maintenance_now(),
        "abort leaves the cluster as it is"
    );
    assert!(
        !s.ns.keys().contains(&s.cluster.lock_key()),
        "the lock is released"
    );
    let text = audit::format(&audit::read(&s.state_dir).unwrap());
    for needle in [
        "retry at Preflight",
        "skip at Back up the database",
        "abort at Verify",
        "SKIPPED",
        "aborted",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    let _ = s.cluster.clear_maintenance().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_runbook_resumes_from_the_last_completed_step() {
    let s = setup("rbresume", 2, None).await;
    // First process: stops after the backup, on request.
    let rb = s.runbook(ScriptedOperator::new()).await;
    let outcome = rb.run_until("2", Some(StepKind::Backup)).await.unwrap();
    assert!(
        matches!(
            outcome,
            RunOutcome::Paused {
                after: StepKind::Backup,
                ..
            }
        ),
        "{outcome:?}"
    );
    let err = rb.run("3").await.unwrap_err();
    assert!(matches!(err, RunbookError::Unfinished { .. }), "{err}");
    assert!(err.to_string().contains("--resume"), "{err}");

    // Second process: resumes, then dies while the operator looks at Verify.
    let op = ScriptedOperator::new();
    *op.hang_on.lock() = Some(PromptKind::Verify);
    let rb2 = Arc::new(s.runbook(op.clone()).await);
    let task = {
        let rb2 = rb2.clone();
        tokio::spawn(async move { rb2.resume().await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !op.prompt_kinds().contains(&PromptKind::Verify) {
        assert!(std::time::Instant::now() < deadline, "never reached Verify");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    // ...and was killed while writing a line.
    let path = journal::journal_path(&s.state_dir, &s.ns.name);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":999,\"at_ms\":1,\"ru").unwrap();
    drop(f);
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();

    // Third process: the journal says what is wrong and how to go on.
    let rb3 = s.runbook(ScriptedOperator::new()).await;
    let err = rb3.resume().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("{} line {lines}", path.display()))
            && err.contains("--repair-journal"),
        "{err}"
    );
    assert_eq!(rb3.repair_journal().unwrap(), Some(lines));
    let outcome = rb3.resume().await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );

    let entries = s.journal();
    assert_eq!(
        started_count(&entries, StepKind::Preflight),
        1,
        "done steps are not repeated"
    );
    assert_eq!(started_count(&entries, StepKind::Backup), 1);
    assert_eq!(started_count(&entries, StepKind::UpgradeFirst), 1);
    assert_eq!(
        started_count(&entries, StepKind::Verify),
        2,
        "the step that was running runs again"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| matches!(e.event, Event::Backup { .. }))
            .count(),
        1,
        "one backup"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| matches!(e.event, Event::RunResumed { .. }))
            .count(),
        2
    );
    assert_eq!(
        s.versions(),
        vec![Some("2".to_string()), Some("2".to_string())]
    );
    assert!(!s.cluster.maintenance_now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operator_is_refused_with_the_holder_and_since_when() {
    let s = setup("rblock", 1, None).await;
    let client = redis::Client::open(s.ns.url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let since = clusterops::clock::now_ms() - 60_000;
    let held = serde_json::json!({"holder": "runbook 20240101-000000-beef by bob@ops2", "run_id": "other", "since_ms": since});
    redis::cmd("SET")
        .arg(s.cluster.lock_key())
        .arg(held.to_string())
        .arg("PX")
        .arg(30_000)
        .query::<()>(&mut c)
        .unwrap();

    let rb = s.runbook(ScriptedOperator::new()).await;
    let err = rb.run("2").await.unwrap_err();
    let RunbookError::Lock(LockAcquireError::Refused {
        holder, since_ms, ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (holder.as_str(), *since_ms),
        ("runbook 20240101-000000-beef by bob@ops2", since)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("bob@ops2") && msg.contains(&clusterops::clock::datetime(since)),
        "{msg}"
    );
    assert!(s.journal().is_empty(), "nothing was journaled");
    assert!(!s.cluster.maintenance_now(), "nothing was changed");
    assert_eq!(s.versions(), vec![Some("1".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_ends_a_crashed_run_even_with_a_truncated_journal() {
    let s = setup("rbabort", 1, None).await;
    let rb = s.runbook(ScriptedOperator::new()).await;
    rb.run_until("2", Some(StepKind::Drain)).await.unwrap();
    let path = journal::journal_path(&s.state_dir, &s.ns.name);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":").unwrap();
    drop(f);
    let outcome = rb.abort("operator gave up").await.unwrap();
    assert!(
        matches!(
            outcome,
            RunOutcome::Aborted {
                at: Some(StepKind::StopNodes),
                ..
            }
        ),
        "{outcome:?}"
    );
    let entries = s.journal();
    assert!(matches!(
        entries.last().unwrap().event,
        Event::RunFinished {
            outcome: RunEnd::Aborted,
            ..
        }
    ));
    assert!(matches!(
        rb.resume().await.unwrap_err(),
        RunbookError::NothingToResume { .. }
    ));
    let _ = s.cluster.clear_maintenance().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_too_large_for_the_clock_never_reaches_a_step() {
    let mut s = setup("rbhuge", 1, None).await;
    // Built in code, so `RunbookConfig::load`'s range check was skipped.
    s.config.timeouts.drain_s = 9_223_372_036_854_775_807;
    let rb = s.runbook(ScriptedOperator::new()).await;
    let err = rb.run("2").await.unwrap_err();
    assert!(matches!(err, RunbookError::Config(_)), "{err}");
    assert!(
        err.to_string()
            .contains("timeouts.drain_s = 9223372036854775807 is out of range"),
        "{err}"
    );
    assert!(!s.cluster.maintenance_now(), "the flag was never set");
    let path = journal::journal_path(&s.state_dir, &s.ns.name);
    assert!(!path.exists() || s.journal().is_empty(), "no run started");
    let err = rb.resume().await.unwrap_err();
    assert!(matches!(err, RunbookError::Config(_)), "{err}");
    assert_eq!(s.versions(), vec![Some("1".to_string())]);
}

/// The test cluster's process executor, recording each start the engine
/// asks for (a `command` executor would run its start command each time);
/// optionally interrupting the run right after the first start.
struct CountingStarts {
    cluster: Arc<TestCluster>,
    starts: Mutex<Vec<String>>,
    interrupt_after_start: Option<Interrupt>,
}

#[async_trait::async_trait]
impl Executor for CountingStarts {
    fn kind(&self) -> &'static str {
        "command"
    }
    fn slots(&self) -> Vec<NodeSlot> {
        self.cluster.procs.slots()
    }
    fn describe_stop(&self) -> String {
        self.cluster.procs.describe_stop()
    }
    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        self.cluster.procs.describe_start(slot, version)
    }
    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        self.cluster.procs.stop_all(io).await
    }
    async fn start(
        &self,
        slot: &NodeSlot,
        version: &str,
        io: &dyn StepIo,
    ) -> Result<(), ExecError> {
        self.starts.lock().push(format!("{}@{version}", slot.name));
        self.cluster.procs.start(slot, version, io).await?;
        if let Some(stop) = &self.interrupt_after_start {
            stop.trigger("SIGINT");
            // The step is dropped here, as at Ctrl-C between the start and
            // the wait for the node.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_does_not_start_again_a_node_already_up_on_the_version() {
    let s = setup("rbcheckfirst", 2, None).await;
    let stop = Interrupt::new();
    let first = Arc::new(CountingStarts {
        cluster: s.cluster.clone(),
        starts: Mutex::new(Vec::new()),
        interrupt_after_start: Some(stop.clone()),
    });
    let rb = Runbook::with_executor(
        s.config.clone(),
        s.cluster.clone(),
        ScriptedOperator::new(),
        first.clone(),
        s.state_dir.clone(),
    )
    .with_actor(alice())
    .with_interrupt(stop);
    let outcome = rb.run("2").await.unwrap();
    assert!(
        matches!(
            outcome,
            RunOutcome::Interrupted {
                at: Some(StepKind::UpgradeFirst),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(*first.starts.lock(), vec!["app1@2".to_string()]);
    // app1 keeps running (nodes are the cluster): wait until it is up and
    // migrated, as the resume's check will see it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let st = s.cluster.status_of("app1");
        if st
            .as_ref()
            .is_some_and(|v| v["app_version"] == "2" && v["schema_version"] == "2")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "app1 never up on 2: {st:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let second = Arc::new(CountingStarts {
        cluster: s.cluster.clone(),
        starts: Mutex::new(Vec::new()),
        interrupt_after_start: None,
    });
    let rb2 = Runbook::with_executor(
        s.config.clone(),
        s.cluster.clone(),
        ScriptedOperator::new(),
        second.clone(),
        s.state_dir.clone(),
    )
    .with_actor(alice());
    let outcome = rb2.resume().await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        *second.starts.lock(),
        vec!["app2@2".to_string()],
        "app1 was already up on 2: only app2 is started"
    );
    let out = outputs(&s.journal());
    assert!(
        out.contains("Upgrade one node did not finish (attempt 1): it runs again"),
        "{out}"
    );
    assert!(
        out.contains("app1 already runs 2 and is up (app1: state maintenance"),
        "{out}"
    );
    assert_eq!(
        s.versions(),
        vec![Some("2".to_string()), Some("2".to_string())]
    );
}

/// A second signal before the engine reached its safe point: the exit
/// happens right after `Interrupt::exit_now`, as in `clusterops upgrade`.
struct SecondSignalDuringStart {
    cluster: Arc<TestCluster>,
    stop: Interrupt,
}

#[async_trait::async_trait]
impl Executor for SecondSignalDuringStart {
    fn kind(&self) -> &'static str {
        "command"
    }
    fn slots(&self) -> Vec<NodeSlot> {
        self.cluster.procs.slots()
    }
    fn describe_stop(&self) -> String {
        self.cluster.procs.describe_stop()
    }
    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        self.cluster.procs.describe_start(slot, version)
    }
    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        self.cluster.procs.stop_all(io).await
    }
    async fn start(&self, _slot: &NodeSlot, _v: &str, io: &dyn StepIo) -> Result<(), ExecError> {
        io.line("starting app1 (slowly)");
        // Both signals land before the engine polls this step again.
        assert!(self.stop.trigger("SIGINT"));
        self.stop.exit_now("SIGINT");
        io.line("a line after the exit must not reach the journal");
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_journals_the_interruption_and_closes_the_journal() {
    let s = setup("rbsecond", 1, None).await;
    let stop = Interrupt::new();
    let exec = Arc::new(SecondSignalDuringStart {
        cluster: s.cluster.clone(),
        stop: stop.clone(),
    });
    let rb = Runbook::with_executor(
        s.config.clone(),
        s.cluster.clone(),
        ScriptedOperator::new(),
        exec,
        s.state_dir.clone(),
    )
    .with_actor(alice())
    .with_interrupt(stop);
    // The process would be gone by now; here the run goes on and finds its
    // journal closed.
    let _ = rb.run("2").await;
    let entries = s.journal();
    let Event::RunInterrupted { step, reason, by } = &entries.last().unwrap().event else {
        panic!("the journal does not end with the interruption: {entries:?}");
    };
    assert_eq!(*step, Some(StepKind::UpgradeFirst));
    assert_eq!(reason, "SIGINT, then SIGINT: exited at once");
    assert_eq!(by, &alice());
    assert_eq!(
        entries
            .iter()
            .filter(|e| matches!(e.event, Event::RunInterrupted { .. }))
            .count(),
        1
    );
    let out = outputs(&entries);
    assert!(out.contains("starting app1 (slowly)"), "{out}");
    assert!(!out.contains("after the exit"), "{out}");
    // The next process resumes from that journal.
    let rb2 = s.runbook(ScriptedOperator::new()).await;
    let outcome = rb2.resume().await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
}
