//! The console and the upgrade runbook end to end, on the same rig as
//! upgrade_e2e (three real nodes behind nginx, PostgreSQL, Redis): the
//! Runbook view's feed following a real run as a read-only user, an upgrade
//! driven through the console's components (dialogs, quit, resume), and the
//! real `clusterops console --runbook` binary in tmux.

use crate::common;
use crate::upgrade_support;

use clusterops::runbook::RunbookConfig;
use common::tmux::Tmux;
use std::sync::Arc;
use std::time::{Duration, Instant};
use upgrade_support::{BIN, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_follows_a_real_run_from_the_mirror_stream_as_a_read_only_user() {
    use clusterops::config::{Namespace, SecretUrl};
    use clusterops::console::run_feed::RunFeed;
    use clusterops::runbook::view::RunStatus;

    let mut rig = Rig::new("up_follow", "app_version").await;
    rig.start_nodes("1").await;
    // Another machine's console: no local journal, a user that may only read.
    let ro = common::ReadOnlyUser::create(&common::redis_url(), &rig.ns());
    let url = SecretUrl::parse(&ro.url, &["redis"]).unwrap();
    let ns = Namespace::new(&rig.ns()).unwrap();
    let mut feed = RunFeed::on(url, &ns, None);
    let pane = feed.fetch().await;
    assert_eq!(pane.error, None);
    assert!(pane.run.is_none(), "{pane:?}");
    assert_eq!(
        pane.looked_at,
        vec![format!("stream {}:runbook:journal", rig.ns())]
    );

    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    let mut seen_running = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let run = loop {
        let pane = feed.fetch().await;
        assert_eq!(pane.error, None, "a read-only user cannot follow");
        if let Some(run) = pane.run {
            if let Some(step) = run.running
                && seen_running.last() != Some(&step)
            {
                seen_running.push(step);
            }
            if run.finished.is_some() {
                break run;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the run never ended in the stream; runbook output:\n{}",
            rig.runbook_log(i)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rig.wait_runbook(i, Duration::from_secs(30)).await, 0);
    assert_eq!(run.status(), RunStatus::Completed);
    assert_eq!(run.head.target_version, "2");
    assert_eq!(run.head.previous_version.as_deref(), Some("1"));
    assert_eq!(run.steps.len(), 8);
    for s in &run.steps {
        assert_eq!(
            s.result,
            Some(clusterops::runbook::journal::StepResult::Succeeded),
            "{:?}",
            s.kind
        );
        assert!(s.started_at_ms <= s.ended_at_ms && s.attempts == 1);
        assert!(!s.description.is_empty());
    }
    assert!(
        run.steps[4]
            .output
            .iter()
            .any(|l| l.contains("started version 2")),
        "{:?}",
        run.steps[4].output
    );
    // It was followed while it ran, not only read at the end.
    assert!(seen_running.len() >= 3, "saw only {seen_running:?} running");
    // The same run as the local journal has it.
    let local = clusterops::runbook::view::last_run(
        &clusterops::runbook::journal::read(&rig.journal()).unwrap(),
    )
    .unwrap();
    assert_eq!(local, run);
}

mod console_drive {
    //! Helpers to drive the console's components (no terminal): an app
    //! with a runbook driver, key presses, and the screen as text.
    use super::*;
    use crate::console_support;
    use clusterops::console::action::Action;
    use clusterops::console::app::{App, AppOptions};
    use clusterops::console::runbook_driver::RunDriver;
    use clusterops::console::theme::Theme;
    use crossterm::event::KeyCode;

    pub fn console_app(
        driver: Arc<RunDriver>,
    ) -> (App, tokio::sync::mpsc::UnboundedReceiver<Action>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let options = AppOptions {
            read_only: false,
            theme: Theme::default_colors(),
            source_label: "live".into(),
            refresh: Duration::from_secs(2),
        };
        let mut app = App::new(options, None, tx, Arc::new(tokio::sync::Notify::new()));
        app.set_runbook_driver(driver);
        let snap = clusterops::console::sample::healthy();
        app.dispatch(Some(Action::Fetched(Box::new(snap))));
        (app, rx)
    }

    pub fn keys(app: &mut App, text: &str) {
        console_support::type_str(app, text);
    }

    pub fn enter(app: &mut App) {
        app.press(console_support::key(KeyCode::Enter));
    }

    pub fn screen(app: &mut App) -> String {
        console_support::screen(app, 100, 30)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_driven_from_the_console_asks_in_dialogs_survives_a_quit_and_resumes() {
    use clusterops::console::action::Action;
    use clusterops::console::app::Mode;
    use clusterops::console::runbook_driver::RunDriver;
    use clusterops::runbook::live::RedisClusterOps;
    use clusterops::runbook::{Actor, PromptKind};
    use console_drive::*;

    let rig = Rig::new("up_console", "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let vars = clusterops::config::read_env_file(&rig.cluster.env_file).unwrap();
    let config = clusterops::config::Config::from_vars(&vars).unwrap();
    let audit_file = rig.state.path().join("audit-console.jsonl");
    let carol = Actor {
        user: "carol".into(),
        host: "console1".into(),
    };
    let driver_for = |config: clusterops::config::Config| {
        let audit_file = audit_file.clone();
        let carol = carol.clone();
        let rb = RunbookConfig::load(&rig.config_path).unwrap();
        let state = rig.state.path().to_path_buf();
        async move {
            let ops = RedisClusterOps::connect(config).await.unwrap();
            Arc::new(
                RunDriver::new(rb, Arc::new(ops), state)
                    .with_actor(carol)
                    .with_audit(audit_file),
            )
        }
    };
    let lock_key = clusterops::adapters::lock::lock_key(&rig.cluster.ns.namespace(), "runbook");

    // U, the version, Enter: the plan in a dialog; y starts it.
    let driver = driver_for(config.clone()).await;
    let (mut app, mut outbox) = console_app(driver.clone());
    keys(&mut app, "9U2");
    enter(&mut app);
    assert!(
        matches!(app.mode(), Mode::RunbookConfirm(..)),
        "{:?}",
        app.mode()
    );
    let text = screen(&mut app);
    assert!(text.contains("Back up the database"), "{text}");
    assert!(text.contains("as carol@console1"), "{text}");
    keys(&mut app, "y");

    // Answer every question in its dialog until the verification asks;
    // then the console quits instead of answering.
    let mut asked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let action = tokio::time::timeout_at(deadline.into(), outbox.recv())
            .await
            .expect("the runbook never asked for the verification")
            .unwrap();
        app.dispatch(Some(action.clone()));
        assert!(
            !matches!(action, Action::RunbookFinished { .. }),
            "{action:?}"
        );
        if let Mode::RunbookPrompt(p) = app.mode().clone() {
            let text = screen(&mut app);
            let first = p.message.lines().next().unwrap();
            assert!(
                text.contains(&first[..first.len().min(40)]),
                "the dialog does not show {first:?}:\n{text}"
            );
            asked.push(p.kind);
            if p.kind == PromptKind::Verify {
                break;
            }
            keys(&mut app, "y");
        }
    }
    // Quitting the console interrupts the run at its safe point.
    driver.shutdown(Duration::from_secs(30)).await;
    let mut withdrawn = false;
    let mut finished = None;
    while let Ok(a) = outbox.try_recv() {
        app.dispatch(Some(a.clone()));
        match a {
            Action::RunbookAskWithdrawn => withdrawn = true,
            Action::RunbookFinished { outcome, .. } => finished = Some(outcome),
            _ => {}
        }
    }
    assert!(withdrawn, "the dialog was not withdrawn");
    assert!(matches!(app.mode(), Mode::Normal));
    let finished = finished.expect("no end").unwrap();
    assert!(finished.contains("interrupted"), "{finished}");
    assert!(
        !rig.cluster.ns.keys().contains(&lock_key),
        "the lock is still held after the console quit"
    );
    let last = rig.events().last().cloned().unwrap();
    assert_eq!(last["event"], "run_interrupted", "{last}");
    assert_eq!(last["step"], "verify");
    assert_eq!(last["by"]["user"], "carol");

    // Another console: C continues the run; the verification asks again.
    let driver = driver_for(config).await;
    let (mut app, mut outbox) = console_app(driver.clone());
    keys(&mut app, "9C");
    assert!(
        matches!(app.mode(), Mode::RunbookConfirm(..)),
        "{:?}",
        app.mode()
    );
    keys(&mut app, "y");
    let deadline = Instant::now() + Duration::from_secs(90);
    let outcome = loop {
        let action = tokio::time::timeout_at(deadline.into(), outbox.recv())
            .await
            .expect("the resumed run never ended")
            .unwrap();
        app.dispatch(Some(action.clone()));
        if let Action::RunbookFinished { outcome, .. } = action {
            break outcome;
        }
        if let Mode::RunbookPrompt(p) = app.mode().clone() {
            asked.push(p.kind);
            keys(&mut app, "y");
        }
    };
    assert!(
        outcome.as_ref().unwrap().contains("upgrade completed"),
        "{outcome:?}"
    );
    // I with no run in progress: refused, and said so.
    keys(&mut app, "Iy");
    assert_eq!(
        app.status(),
        Some("runbook: no run in progress from this console")
    );
    assert_eq!(
        asked.iter().filter(|k| **k == PromptKind::Verify).count(),
        2
    );
    rig.assert_all_on("2").await;
    assert_eq!(rig.records(), before);

    // Every decision is in the runbook's audit, by the console's user...
    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    assert_eq!(run["outcome"], "completed");
    assert_eq!(run["started_by"]["user"], "carol");
    let decisions = run["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), asked.len() - 1, "{decisions:?}");
    assert!(decisions.iter().all(|d| d["by"]["user"] == "carol"));
    assert!(
        decisions
            .iter()
            .any(|d| d["prompt"] == "verify" && d["decision"] == "confirm")
    );
    assert_eq!(run["interrupted"][0]["step"], "verify");
    // ... and each console action and answer in the console's audit file.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"runbook-start"), "{actions:?}");
    assert!(actions.contains(&"runbook-resume"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"runbook-interrupt"), "{actions:?}");
    assert_eq!(lines.last().unwrap()["outcome"], "refused");
    assert_eq!(
        actions.iter().filter(|a| **a == "runbook-decision").count(),
        decisions.len(),
        "{actions:?}"
    );
    assert!(lines.iter().all(|l| l["who"] == "carol@console1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_binary_with_runbook_upgrades_the_cluster_through_its_dialogs() {
    let rig = Rig::new("up_tmux", "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let xdg = rig.state.path().join("xdg");
    let command = format!(
        "env XDG_STATE_HOME={} {BIN} console --env-file {} --runbook {} --state-dir {} \
         --refresh 500ms; echo console-exit=$?",
        xdg.display(),
        rig.cluster.env_file.display(),
        rig.config_path.display(),
        rig.state.path().display()
    );
    let tmux = Tmux::start(100, 30);
    tmux.type_text(&command);
    tmux.key("Enter");
    let wait = |needle: &str, secs: u64| {
        tmux.wait_until(Duration::from_secs(secs), |s| s.contains(needle))
            .unwrap_or_else(|s| panic!("never showed {needle:?}:\n{s}"))
    };
    wait("9 Runbook", 30);
    tmux.key("9");
    wait("no upgrade run recorded yet", 10);
    tmux.key("U");
    tmux.type_text("2");
    tmux.key("Enter");
    let plan = wait("y do it", 10);
    assert!(
        plan.contains("Start the upgrade") && plan.contains("4. Back up the database"),
        "{plan}"
    );
    tmux.key("y");
    // Answer yes to every question until the run completes.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut answered = 0;
    loop {
        let s = tmux.screen();
        if s.contains("COMPLETED") {
            break;
        }
        // (A question without `y yes`, a failure, runs into the deadline.)
        if s.contains("the runbook waits for your answer") && s.contains("y yes") {
            tmux.key("y");
            answered += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(Instant::now() < deadline, "the run never completed:\n{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered >= 1, "the verification was never asked");
    rig.assert_all_on("2").await;
    assert_eq!(rig.records(), before);
    tmux.key("q");
    // (The typed command shows `console-exit=$?`; its output the code.)
    wait("console-exit=0", 20);
    let audit = rig.audit_json();
    assert_eq!(audit["runs"][0]["outcome"], "completed");
    let console_audit =
        std::fs::read_to_string(xdg.join("clusterops").join("audit-console.jsonl")).unwrap();
    assert!(
        console_audit.contains("\"runbook-start\""),
        "{console_audit}"
    );
    let decisions = audit["runs"][0]["decisions"].as_array().unwrap().len();
    assert!(decisions >= 1);
    assert_eq!(
        console_audit.matches("\"runbook-decision\"").count(),
        decisions,
        "{console_audit}"
    );
}
