//! The guided upgrade in `clusterops demo`, driven through the console's
//! components (no terminal): U, the version offered, Enter, the plan, y,
//! the runbook's questions answered in their dialogs, until the run ends;
//! then what the demo nodes run, the journal and the backup. One upgrade
//! completes; one to a `-broken` version fails verification and rolls back.

use crate::console_support::{key, screen, type_str};
use clusterops::console::action::Action;
use clusterops::console::app::{App, AppOptions, Mode};
use clusterops::console::run_feed::RunFeed;
use clusterops::console::runbook_driver::RunDriver;
use clusterops::console::theme::Theme;
use clusterops::demo::upgrade::{HINT, journal_path};
use clusterops::demo::{DEMO_VERSION, DemoCluster, SEED_RECORDS};
use clusterops::inspect::Snapshot;
use clusterops::inspect::source::SnapshotSource;
use clusterops::runbook::backup::DbKind;
use clusterops::runbook::journal::{self, StepResult};
use clusterops::runbook::view::{RunStatus, RunView, last_run};
use clusterops::runbook::{Actor, Decision, PromptKind, StepKind};
use crossterm::event::KeyCode;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn press(app: &mut App, code: KeyCode) {
    app.press(key(code));
}

struct Demo {
    cluster: DemoCluster,
    app: App,
    outbox: tokio::sync::mpsc::UnboundedReceiver<Action>,
    feed: RunFeed,
    state: tempfile::TempDir,
}

/// The demo and a console on it, as `clusterops demo` wires them, with
/// the first snapshot of three serving nodes shown.
async fn demo() -> Demo {
    let state = tempfile::tempdir().unwrap();
    let cluster = DemoCluster::start().await.unwrap();
    let up = cluster.upgrade().unwrap();
    let driver = RunDriver::new(up.config, up.cluster, state.path().to_path_buf())
        .with_executor(up.executor)
        .with_store_backup(up.store)
        .with_suggested_version()
        .with_actor(Actor {
            user: "dana".into(),
            host: "laptop".into(),
        });
    let (tx, outbox) = tokio::sync::mpsc::unbounded_channel();
    let options = AppOptions {
        read_only: false,
        theme: Theme::default_colors(),
        source_label: "demo".into(),
        refresh: Duration::from_secs(1),
    };
    let mut app = App::new(options, None, tx, Arc::new(tokio::sync::Notify::new()));
    app.set_runbook_driver(Arc::new(driver));
    app.set_runbook_hint(HINT);
    let mut feed = RunFeed::new(None, Some(journal_path(state.path())));
    let pane = feed.fetch().await;
    app.dispatch(Some(Action::RunFetched(Box::new(pane))));
    let mut d = Demo {
        cluster,
        app,
        outbox,
        feed,
        state,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = d.snapshot().await;
        let nodes = snap.nodes.ok().cloned().unwrap_or_default();
        let serving = nodes.len() == 3 && nodes.iter().all(|n| n.health.is_healthy());
        d.app.dispatch(Some(Action::Fetched(Box::new(snap))));
        if serving {
            break;
        }
        assert!(Instant::now() < deadline, "the demo nodes never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d
}

impl Demo {
    async fn snapshot(&self) -> Snapshot {
        self.cluster.source().fetch().await.unwrap()
    }

    /// Pass the driver's questions, progress and outcome to the app, and
    /// a fresh snapshot and run pane, as the console's loop does; answer
    /// each question with `answer`. Returns the run's outcome line and the
    /// questions asked.
    async fn run_to_the_end(
        &mut self,
        answer: impl Fn(&clusterops::runbook::Prompt) -> char,
    ) -> (Result<String, String>, Vec<(PromptKind, StepKind)>) {
        let mut asked = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            while let Ok(action) = self.outbox.try_recv() {
                if let Action::RunbookFinished { outcome, .. } = &action {
                    let outcome = outcome.clone();
                    self.app.dispatch(Some(action));
                    return (outcome, asked);
                }
                self.app.dispatch(Some(action));
            }
            if let Mode::RunbookPrompt(p) = self.app.mode().clone() {
                let text = screen(&mut self.app, 100, 30);
                assert!(text.contains("the runbook waits"), "{text}");
                asked.push((p.kind, p.step));
                type_str(&mut self.app, &answer(&p).to_string());
            }
            let snap = self.snapshot().await;
            self.app.dispatch(Some(Action::Fetched(Box::new(snap))));
            let pane = self.feed.fetch().await;
            self.app.dispatch(Some(Action::RunFetched(Box::new(pane))));
            assert!(
                Instant::now() < deadline,
                "the run did not end; the screen:\n{}",
                screen(&mut self.app, 100, 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Show the journal's run as it is now.
    async fn show_run(&mut self) {
        let pane = self.feed.fetch().await;
        self.app.dispatch(Some(Action::RunFetched(Box::new(pane))));
        type_str(&mut self.app, "9");
    }

    fn journal_run(&self) -> RunView {
        last_run(&journal::read(&journal_path(self.state.path())).unwrap()).unwrap()
    }

    /// The demo's nodes: (id, app version, state), from a fresh snapshot.
    async fn nodes(&self) -> Vec<(String, String, String)> {
        let snap = self.snapshot().await;
        snap.nodes
            .ok()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n.id.node_id.clone(),
                    n.id.app_version.clone(),
                    n.id.state.to_string(),
                )
            })
            .collect()
    }

    /// `GET /api/records/{id}` on every node: the status codes.
    async fn record_status(&self, id: i64) -> Vec<u16> {
        let snap = self.snapshot().await;
        let http = reqwest::Client::new();
        let mut codes = Vec::new();
        for n in snap.nodes.ok().unwrap() {
            let r = http
                .get(format!("http://{}/api/records/{id}", n.id.http_addr))
                .send()
                .await
                .unwrap();
            codes.push(r.status().as_u16());
        }
        codes
    }
}

fn all_on(nodes: &[(String, String, String)], version: &str) -> bool {
    nodes.len() == 3
        && nodes
            .iter()
            .all(|(_, v, state)| v == version && state == "running")
}

fn backup_of(run: &RunView, state: &Path) -> clusterops::runbook::backup::BackupRecord {
    let b = run.backup.clone().expect("the backup is journaled");
    assert_eq!(b.kind, DbKind::Memory);
    assert!(b.file.starts_with(state), "{}", b.file.display());
    assert!(b.file.exists(), "{} is gone", b.file.display());
    assert_eq!(std::fs::metadata(&b.file).unwrap().len(), b.bytes);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u_upgrades_the_demo_nodes_to_the_version_offered_with_a_backup_in_the_journal() {
    let mut d = demo().await;
    type_str(&mut d.app, "9");
    let text = screen(&mut d.app, 100, 30);
    assert!(text.contains("no upgrade run recorded yet"), "{text}");
    assert!(text.contains("one ending in -broken fails"), "{text}");
    type_str(&mut d.app, "U");
    assert_eq!(d.app.mode(), &Mode::Version("1.5.0".into()), "prefilled");
    press(&mut d.app, KeyCode::Enter);
    assert!(
        matches!(d.app.mode(), Mode::RunbookConfirm(..)),
        "{:?}",
        d.app.mode()
    );
    let text = screen(&mut d.app, 100, 30);
    assert!(
        text.contains("Upgrade cluster demo to version 1.5.0"),
        "{text}"
    );
    assert!(text.contains("in-process executor"), "{text}");
    type_str(&mut d.app, "y");

    let (outcome, asked) = d
        .run_to_the_end(|p| {
            assert!(
                p.choices.contains(&Decision::Confirm),
                "an unexpected question: {p:?}"
            );
            'y'
        })
        .await;
    let outcome = outcome.unwrap();
    assert!(outcome.ends_with("upgrade completed"), "{outcome}");
    assert!(
        asked.contains(&(PromptKind::Verify, StepKind::Verify)),
        "{asked:?}"
    );

    // Every node runs the new version, and the Nodes view says so.
    let nodes = d.nodes().await;
    assert!(all_on(&nodes, "1.5.0"), "{nodes:?}");
    let snap = d.snapshot().await;
    d.app.dispatch(Some(Action::Fetched(Box::new(snap))));
    type_str(&mut d.app, "2");
    let text = screen(&mut d.app, 120, 30);
    for id in ["demo-a", "demo-b", "demo-c"] {
        let row = text.lines().find(|l| l.contains(id)).unwrap_or("");
        assert!(row.contains("1.5.0"), "{id}: {text}");
    }
    assert_eq!(d.record_status(SEED_RECORDS[0].0).await, [200, 200, 200]);

    // The journal: the completed run, every step succeeded, the backup.
    let run = d.journal_run();
    assert_eq!(run.status(), RunStatus::Completed);
    assert_eq!(run.head.previous_version.as_deref(), Some(DEMO_VERSION));
    assert_eq!(run.head.target_version, "1.5.0");
    assert_eq!(run.head.executor, "in-process");
    assert_eq!(run.steps.len(), 8);
    for s in &run.steps {
        assert_eq!(s.result, Some(StepResult::Succeeded), "{:?}: {s:?}", s.kind);
    }
    let b = backup_of(&run, d.state.path());
    assert!(b.verified.contains("3 records"), "{}", b.verified);
    assert!(
        b.verified.contains(&format!("schema {DEMO_VERSION}")),
        "{}",
        b.verified
    );
    assert_eq!(
        d.cluster.store_data().unwrap().schema_version(),
        Some("1.5.0"),
        "the first node migrated the store"
    );
    // The Runbook view shows it, and where the journal is.
    d.show_run().await;
    let text = screen(&mut d.app, 100, 30);
    assert!(text.contains("COMPLETED"), "{text}");
    assert!(text.contains("journal.jsonl"), "{text}");
    assert!(text.contains("1.4.0 → 1.5.0"), "{text}");
    d.cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_version_fails_verification_and_the_rollback_restores_the_backup_and_the_old_version()
 {
    let mut d = demo().await;
    type_str(&mut d.app, "9U-broken");
    assert_eq!(d.app.mode(), &Mode::Version("1.5.0-broken".into()));
    press(&mut d.app, KeyCode::Enter);
    type_str(&mut d.app, "y");
    let (outcome, asked) = d
        .run_to_the_end(|p| match p.kind {
            PromptKind::Failure => {
                assert_eq!(p.step, StepKind::Verify, "{p:?}");
                assert!(p.message.contains("smoke"), "{p:?}");
                'b'
            }
            _ => 'y',
        })
        .await;
    let outcome = outcome.unwrap();
    assert!(outcome.contains("rolled back"), "{outcome}");
    assert!(
        asked.contains(&(PromptKind::Failure, StepKind::Verify)),
        "{asked:?}"
    );

    // Every node runs the old version again, on the restored data.
    let nodes = d.nodes().await;
    assert!(all_on(&nodes, DEMO_VERSION), "{nodes:?}");
    let data = d.cluster.store_data().unwrap();
    assert_eq!(data.record_count(), SEED_RECORDS.len());
    assert_eq!(data.schema_version(), Some(DEMO_VERSION));
    assert_eq!(d.record_status(SEED_RECORDS[0].0).await, [200, 200, 200]);

    // The journal: verify failed, the rollback read the backup back.
    let run = d.journal_run();
    assert_eq!(run.status(), RunStatus::RolledBack);
    let step = |k: StepKind| run.steps.iter().find(|s| s.kind == k).unwrap();
    assert!(
        matches!(&step(StepKind::Verify).result, Some(StepResult::Failed { error }) if error.contains("smoke")),
        "{:?}",
        step(StepKind::Verify)
    );
    assert!(
        step(StepKind::UpgradeFirst)
            .output
            .iter()
            .any(|l| l.contains("drops the records")),
        "{:?}",
        step(StepKind::UpgradeFirst).output
    );
    for k in StepKind::ROLLBACK {
        assert_eq!(step(k).result, Some(StepResult::Succeeded), "{k:?}");
    }
    let b = backup_of(&run, d.state.path());
    let restore = &step(StepKind::RollbackRestore).output;
    assert!(
        restore
            .iter()
            .any(|l| l.contains(&b.file.display().to_string())),
        "{restore:?}"
    );
    assert!(
        restore
            .iter()
            .any(|l| l.contains("read back: 3 records") && l.contains("schema 1.4.0")),
        "{restore:?}"
    );
    d.show_run().await;
    let text = screen(&mut d.app, 100, 30);
    assert!(text.contains("ROLLED BACK"), "{text}");
    d.cluster.stop().await;
}

#[test]
fn the_demo_binary_upgrades_at_80x24_and_audit_lists_its_run() {
    use crate::common::tmux::Tmux;
    const BIN: &str = env!("CARGO_BIN_EXE_clusterops");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tmux = Tmux::start(80, 24);
    tmux.wait_for(&["sh>"]);
    tmux.type_text(&format!(
        "{BIN} demo --state-dir {} --log-file {}; echo EXITED:$?",
        state.display(),
        dir.path().join("console.log").display()
    ));
    tmux.key("Enter");
    tmux.wait_for(&["1 Overview", "Verdict"]);
    tmux.key("9");
    tmux.wait_for(&["no upgrade run recorded yet", "-broken"]);
    tmux.key("U");
    tmux.wait_for(&["version: 1.5.0"]);
    tmux.key("Enter");
    tmux.wait_for(&["Upgrade cluster demo to version 1.5.0", "y do it"]);
    tmux.key("y");
    // The rollout question after verifying, in its dialog.
    tmux.wait_for(&["Roll out to the other nodes?"]);
    tmux.key("y");
    tmux.wait_for(&["COMPLETED", "Restore traffic"]);
    tmux.key("2");
    let nodes = tmux.wait_for(&["demo-a", "demo-b", "demo-c"]);
    for id in ["demo-a", "demo-b", "demo-c"] {
        let row = nodes.lines().find(|l| l.contains(id)).unwrap_or("");
        assert!(row.contains("1.5.0"), "{id}: {nodes}");
    }
    tmux.key("q");
    let end = tmux.wait_for(&["EXITED:0"]);
    assert!(
        end.contains(&format!("clusterops audit --state-dir {}", state.display())),
        "{end}"
    );
    let out = std::process::Command::new(BIN)
        .args(["audit", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("demo"), "{text}");
    assert!(text.contains("1.5.0"), "{text}");
    assert!(text.to_lowercase().contains("completed"), "{text}");
}

#[test]
fn the_demo_on_redis_says_the_upgrade_needs_the_in_process_demo() {
    let (tx, _outbox) = tokio::sync::mpsc::unbounded_channel();
    let options = AppOptions {
        read_only: false,
        theme: Theme::default_colors(),
        source_label: "demo: 3 node processes".into(),
        refresh: Duration::from_secs(1),
    };
    let mut app = App::new(options, None, tx, Arc::new(tokio::sync::Notify::new()));
    app.set_runbook_hint(clusterops::demo::upgrade::REDIS_HINT);
    let snap = clusterops::console::sample::healthy();
    app.dispatch(Some(Action::Fetched(Box::new(snap))));
    type_str(&mut app, "9U");
    assert_eq!(app.mode(), &Mode::Normal, "no upgrade is offered");
    let text = screen(&mut app, 100, 30);
    assert!(
        text.contains("the guided upgrade runs in the in-process demo"),
        "{text}"
    );
}
