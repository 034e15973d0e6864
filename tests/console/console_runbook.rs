//! The console's Runbook view: runs rebuilt from journal entries (running,
//! interrupted, rolled back, completed) drawn at 80x24 and 160x48 and
//! compared with reviewed screen files; the step selection and following.
//! (Following a real run's mirror stream as a read-only user is in
//! tests/runbook/upgrade_e2e.rs.)

use crate::console_support;

use clusterops::console::action::Action;
use clusterops::console::app::App;
use clusterops::console::run_feed::RunPane;
use clusterops::console::sample;
use clusterops::runbook::backup::{BackupRecord, DbKind};
use clusterops::runbook::journal::{Entry, Event, RunEnd, StepLine, StepResult, StepStart};
use clusterops::runbook::view::last_run;
use clusterops::runbook::{Actor, Decision, PromptKind, StepKind};
use console_support::*;
use crossterm::event::KeyCode;

fn alice() -> Actor {
    Actor {
        user: "alice".into(),
        host: "ops1".into(),
    }
}

/// Journal entries written one second apart, ending 2 s before "now".
struct Script {
    entries: Vec<Entry>,
}

impl Script {
    fn new() -> Self {
        let mut s = Script {
            entries: Vec::new(),
        };
        s.push(Event::RunStarted {
            cluster: "shop-prod".into(),
            target_version: "2".into(),
            previous_version: Some("1".into()),
            executor: "process".into(),
            by: alice(),
        });
        s
    }

    fn push(&mut self, event: Event) -> &mut Self {
        let seq = self.entries.len() as u64 + 1;
        self.entries.push(Entry {
            seq,
            at_ms: 0,
            run_id: "20261124-081603-ab12".into(),
            event,
        });
        self
    }

    fn step(&mut self, step: StepKind, lines: &[&str], result: Option<StepResult>) -> &mut Self {
        let description = match step {
            StepKind::Preflight => "Run the check suite; failures stop the run, warnings ask",
            StepKind::Drain => "Set the maintenance flag and wait until every node reports it",
            StepKind::StopNodes => "Stop every node: SIGTERM to app1, app2, app3",
            StepKind::Backup => {
                "pg_dump -Fc of shop on 127.0.0.1:5432, verified with pg_restore --list"
            }
            StepKind::UpgradeFirst => {
                "Start app1 alone on version 2 and wait until it has migrated"
            }
            _ => "",
        };
        self.push(Event::StepStarted(StepStart {
            step,
            attempt: 1,
            description: description.into(),
        }));
        for l in lines {
            self.push(Event::Output(StepLine {
                step,
                line: (*l).into(),
            }));
        }
        if let Some(result) = result {
            self.push(Event::StepFinished { step, result });
        }
        self
    }

    /// Spread the entries over time so that the last one is 2 s before now.
    fn done(&mut self) -> Vec<Entry> {
        let n = self.entries.len() as u64;
        let end = NOW_MS - 2_000;
        for (i, e) in self.entries.iter_mut().enumerate() {
            e.at_ms = end - (n - 1 - i as u64) * 1_500;
        }
        self.entries.clone()
    }
}

/// Preflight to the backup done, the first node migrating.
fn running() -> Vec<Entry> {
    let mut s = Script::new();
    s.step(
        StepKind::Preflight,
        &["WARN eviction-policy: allkeys-lru"],
        Some(StepResult::Succeeded),
    )
    .push(Event::Decision {
        step: StepKind::Preflight,
        prompt: PromptKind::Warnings,
        decision: Decision::Confirm,
        by: alice(),
    })
    .step(
        StepKind::Drain,
        &[
            "maintenance flag set by alice@ops1",
            "3 of 3 nodes in maintenance",
        ],
        Some(StepResult::Succeeded),
    )
    .step(
        StepKind::StopNodes,
        &[
            "app1: SIGTERM sent",
            "app2: SIGTERM sent",
            "app3: SIGTERM sent",
            "every worker-ID lease is free",
        ],
        Some(StepResult::Succeeded),
    )
    .step(
        StepKind::Backup,
        &[
            "pg_dump: 1.2 MiB written",
            "pg_restore --list: 14 entries",
            "sha256 9f2c1e0b7a44",
        ],
        None,
    )
    .push(Event::Backup {
        record: BackupRecord {
            kind: DbKind::Postgres,
            file: "/var/lib/clusterops/shop-prod/backups/20261124-081603-ab12.dump".into(),
            bytes: 1_258_291,
            sha256: "9f2c1e0b7a44d1c3aa09".into(),
            verified: "pg_restore --list: 14 entries".into(),
        },
    })
    .push(Event::StepFinished {
        step: StepKind::Backup,
        result: StepResult::Succeeded,
    })
    .step(
        StepKind::UpgradeFirst,
        &[
            "app1: started version 2 (pid 4242)",
            "app1: waiting for /api/status: schema 1, want 2",
        ],
        None,
    );
    s.done()
}

fn interrupted() -> Vec<Entry> {
    let mut e = running();
    let at = e.last().unwrap().at_ms + 500;
    e.push(Entry {
        seq: e.len() as u64 + 1,
        at_ms: at,
        run_id: e[0].run_id.clone(),
        event: Event::RunInterrupted {
            step: Some(StepKind::UpgradeFirst),
            reason: "SIGINT".into(),
            by: alice(),
        },
    });
    e
}

fn rolled_back() -> Vec<Entry> {
    let mut s = Script::new();
    s.step(StepKind::Preflight, &[], Some(StepResult::Succeeded))
        .step(StepKind::Drain, &[], Some(StepResult::Succeeded))
        .step(StepKind::StopNodes, &[], Some(StepResult::Succeeded))
        .step(StepKind::Backup, &[], Some(StepResult::Succeeded))
        .step(
            StepKind::UpgradeFirst,
            &[
                "app1: started version 9",
                "app1: exited with status 3: migration failed",
            ],
            Some(StepResult::Failed {
                error: "app1 never reported version 9 within 30 s".into(),
            }),
        )
        .push(Event::Decision {
            step: StepKind::UpgradeFirst,
            prompt: PromptKind::Failure,
            decision: Decision::Rollback,
            by: alice(),
        })
        .push(Event::RollbackStarted {
            reason: "Upgrade one node failed: app1 never reported version 9 within 30 s".into(),
        });
    for step in StepKind::ROLLBACK {
        s.step(step, &["done"], Some(StepResult::Succeeded));
    }
    s.push(Event::RunFinished {
        outcome: RunEnd::RolledBack,
        by: alice(),
    });
    s.done()
}

fn pane(entries: &[Entry]) -> RunPane {
    RunPane {
        run: last_run(entries),
        from: "journal /home/alice/.local/state/clusterops/shop-prod/journal.jsonl".into(),
        looked_at: vec![
            "journal /home/alice/.local/state/clusterops/shop-prod/journal.jsonl".into(),
            "stream shop-prod:runbook:journal".into(),
        ],
        error: None,
        fetched_at_ms: NOW_MS,
    }
}

fn app_with(pane: Option<RunPane>) -> App {
    let mut app = snapshot_app(sample::healthy());
    if let Some(p) = pane {
        app.dispatch(Some(Action::RunFetched(Box::new(p))));
    }
    type_str(&mut app, "9");
    app
}

#[test]
fn a_running_upgrade_shows_every_step_the_running_one_and_its_output() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = app_with(Some(pane(&running())));
        let text = screen(&mut app, w, h);
        assert!(text.contains("RUNNING"), "{text}");
        assert!(text.contains("upgrade 1 → 2"), "{text}");
        assert!(text.contains("alice@ops1"), "{text}");
        assert!(text.contains("running"), "{text}");
        assert!(text.contains("schema 1, want 2"), "the output tail: {text}");
        insta::assert_snapshot!(format!("runbook_running_{w}x{h}"), text);
    }
}

#[test]
fn an_interrupted_run_says_how_to_go_on() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = app_with(Some(pane(&interrupted())));
        let text = screen(&mut app, w, h);
        assert!(text.contains("INTERRUPTED"), "{text}");
        assert!(text.contains("(SIGINT) by alice@ops1"), "{text}");
        assert!(text.contains("upgrade --resume"), "{text}");
        insta::assert_snapshot!(format!("runbook_interrupted_{w}x{h}"), text);
    }
}

#[test]
fn a_rolled_back_run_lists_the_rollback_steps_and_the_failure() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = app_with(Some(pane(&rolled_back())));
        let text = screen(&mut app, w, h);
        assert!(text.contains("ROLLED BACK"), "{text}");
        assert!(text.contains("FAILED"), "{text}");
        assert!(
            text.contains("Restore the backup") || text.contains("R2"),
            "{text}"
        );
        insta::assert_snapshot!(format!("runbook_rolled_back_{w}x{h}"), text);
    }
}

#[test]
fn with_no_run_it_says_where_it_looked() {
    let mut app = app_with(Some(pane(&[])));
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("no upgrade run recorded yet"), "{text}");
    assert!(text.contains("stream shop-prod:runbook:journal"), "{text}");
    insta::assert_snapshot!("runbook_none_80x24", text);
}

#[test]
fn j_and_k_select_a_step_and_f_follows_the_running_one_again() {
    let mut app = app_with(Some(pane(&running())));
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("5/8"), "follows the running step: {text}");
    type_str(&mut app, "gj");
    let text = screen(&mut app, 160, 48);
    assert!(
        text.contains("maintenance flag set by alice@ops1"),
        "{text}"
    );
    // A new fetch does not move the operator's selection...
    app.dispatch(Some(Action::RunFetched(Box::new(pane(&running())))));
    assert!(screen(&mut app, 160, 48).contains("3 of 3 nodes in maintenance"));
    // ... until f.
    app.press(key(KeyCode::Char('f')));
    assert!(screen(&mut app, 160, 48).contains("schema 1, want 2"));
}

#[tokio::test]
async fn the_poller_reads_the_local_journal_and_sends_each_change_once() {
    use clusterops::console::run_feed::{RunFeed, spawn_run_poller};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop-prod").join("journal.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let lines = |entries: &[Entry]| -> String {
        entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect()
    };
    let run = running();
    std::fs::write(&path, lines(&run)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = spawn_run_poller(
        RunFeed::new(None, Some(path.clone())),
        std::time::Duration::from_millis(20),
        tx,
    );
    let next = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Action>| {
        let got = rx.try_recv();
        got.ok()
    };
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let Action::RunFetched(p) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        p.run.as_ref().unwrap().running,
        Some(StepKind::UpgradeFirst)
    );
    assert!(p.from.starts_with("journal "), "{}", p.from);
    // Nothing changed: nothing sent. A line being written: left for later.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(next(&mut rx).is_none());
    let all = interrupted();
    let last = lines(&all[all.len() - 1..]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&last.as_bytes()[..20]).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    if let Some(Action::RunFetched(p)) = next(&mut rx) {
        assert!(p.error.is_none(), "{:?}", p.error);
        assert!(p.run.unwrap().interrupted.is_none());
    }
    f.write_all(&last.as_bytes()[20..]).unwrap();
    f.flush().unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let Action::RunFetched(p) = got else {
        panic!("{got:?}")
    };
    let run = p.run.unwrap();
    assert_eq!(run.interrupted.unwrap().reason, "SIGINT");
    assert_eq!(run.running, None);
    drop(rx);
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
