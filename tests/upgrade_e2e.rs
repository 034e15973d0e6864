//! `clusterops upgrade` end to end: three real `clusterops node` processes
//! (started by the process executor, short heartbeat and lease TTLs) on
//! PostgreSQL and Redis behind a real nginx running assets/nginx.conf; the
//! runbook is the real binary, run as a child process with a generated
//! runbook configuration. Upgrade, rollback, kill -9 mid-step and resume,
//! the runbook lock, a damaged journal, the plan and the audit.

mod common;
mod upgrade_support;

use clusterops::runbook::{RunbookConfig, StepKind};
use common::tmux::Tmux;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::time::Instant;
use upgrade_support::{BIN, Rig, poll_lb, step_names};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_drains_through_nginx_moves_every_node_to_v2_and_keeps_the_data() {
    let mut rig = Rig::new("up_ok", "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(5).await;
    let before = rig.records();
    assert_eq!(before.lines().count(), 5);

    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_lb(rig.nginx.url("/api/__health_check"), stop.clone());
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    let code = rig.wait_runbook(i, Duration::from_secs(90)).await;
    let log = rig.runbook_log(i);
    assert_eq!(code, 0, "runbook output:\n{log}");
    assert!(log.contains("smoke check(s). -> confirm (--yes)"), "{log}");
    rig.assert_all_on("2").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = poller.await.unwrap();
    assert!(
        seen.contains(&503),
        "never saw the maintenance page: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&200), "{seen:?}");
    assert_eq!(rig.records(), before, "the records changed");

    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    assert_eq!(run["outcome"], "completed");
    assert!(run["backup"]["sha256"].is_string(), "no backup: {run}");
    let steps = step_names(run);
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "preflight",
            "drain",
            "stop_nodes",
            "backup",
            "upgrade_first",
            "verify",
            "rollout",
            "restore_traffic"
        ],
        "{steps:?}"
    );
    // The text form names every step too.
    let out = rig.run_cli(&[
        "audit".to_string(),
        "--state-dir".to_string(),
        rig.state.path().display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for step in StepKind::UPGRADE {
        assert!(
            text.contains(step.title()),
            "{} missing:\n{text}",
            step.title()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_rolls_back_to_v1_and_the_backup() {
    let mut rig = Rig::new("up_rb", "no-such-text-in-any-status").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let i = rig.spawn_runbook(&["upgrade", "--to", "9", "--yes"]);
    let code = rig.wait_runbook(i, Duration::from_secs(90)).await;
    let log = rig.runbook_log(i);
    assert_eq!(code, 1, "runbook output:\n{log}");
    assert!(log.contains("rolled back"), "{log}");
    rig.assert_all_on("1").await;
    assert_eq!(rig.records(), before, "the data is not the backup's");
    let audit = rig.audit_json();
    assert_eq!(audit["runs"][0]["outcome"], "rolled_back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_run_asks_on_the_terminal_and_rolls_back_to_the_backup_when_told() {
    let mut rig = Rig::new("up_tty", "no-such-text-in-any-status").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    // "y" to the preflight warnings; then the verification fails and the
    // runbook waits for an answer.
    let i = rig.spawn_runbook_answering(&["upgrade", "--to", "9"], Some("y\n"));
    rig.wait_event("the failed verification", |e| {
        e["event"] == "step_finished" && e["step"] == "verify" && e["result"] == "failed"
    })
    .await;
    // Meanwhile the new version damaged the data...
    rig.cluster
        .db
        .query("DELETE FROM records WHERE name = 'rec0'; UPDATE records SET value = 'broken'");
    assert_ne!(rig.records(), before);
    // ... and the operator rolls back.
    rig.answer(i, "b\n");
    let code = rig.wait_runbook(i, Duration::from_secs(90)).await;
    let log = rig.runbook_log(i);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("== Verify: Check n1"),
        "no step description: {log}"
    );
    assert!(
        log.contains("[r]etry / [s]kip / roll[b]ack / [a]bort >"),
        "the failure question is not offered: {log}"
    );
    assert!(log.contains("rolled back"), "{log}");
    rig.assert_all_on("1").await;
    assert_eq!(rig.records(), before, "the data is not the backup's");
    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    assert_eq!(run["outcome"], "rolled_back");
    let decisions: Vec<(String, String)> = run["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["prompt"].as_str().unwrap().to_string(),
                d["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        decisions.contains(&("failure".to_string(), "rollback".to_string())),
        "{decisions:?}"
    );
}

/// Kill the runbook once the journal shows `output` of `step` containing
/// `needle`, then resume; the upgrade must finish.
async fn kill_and_resume(label: &str, step: &str, needle: &str) {
    let mut rig = Rig::new(label, "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    rig.wait_event(&format!("{step} output {needle:?}"), |e| {
        e["event"] == "output"
            && e["step"] == step
            && e["line"].as_str().is_some_and(|l| l.contains(needle))
    })
    .await;
    rig.kill9_runbook(i);
    let events = rig.events();
    let last_started = events
        .iter()
        .rev()
        .find(|e| e["event"] == "step_started")
        .unwrap();
    assert_eq!(last_started["step"], step, "killed in the wrong step");

    let j = rig.spawn_runbook(&["upgrade", "--resume", "--yes"]);
    let code = rig.wait_runbook(j, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "resume output:\n{}", rig.runbook_log(j));
    rig.assert_all_on("2").await;
    assert_eq!(rig.records(), before);
    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    assert_eq!(run["outcome"], "completed");
    assert_eq!(run["resumed"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_killed_while_stopping_the_nodes_resumes_to_the_end() {
    kill_and_resume("up_k3", "stop_nodes", "SIGTERM sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_killed_while_the_first_node_migrates_resumes_to_the_end() {
    kill_and_resume("up_k5", "upgrade_first", "started version 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_killed_during_the_rollout_resumes_to_the_end() {
    kill_and_resume("up_k7", "rollout", "n2: started version 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_can_be_rolled_back_from_the_command_line() {
    let mut rig = Rig::new("up_krb", "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    rig.wait_event("the rollout", |e| {
        e["event"] == "output"
            && e["step"] == "rollout"
            && e["line"]
                .as_str()
                .is_some_and(|l| l.contains("n2: started version 2"))
    })
    .await;
    rig.kill9_runbook(i);
    let j = rig.spawn_runbook(&["upgrade", "--rollback", "--yes"]);
    let code = rig.wait_runbook(j, Duration::from_secs(90)).await;
    let log = rig.runbook_log(j);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("rolled back"), "{log}");
    rig.assert_all_on("1").await;
    assert_eq!(rig.records(), before);
    assert_eq!(rig.audit_json()["runs"][0]["outcome"], "rolled_back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upgrade_while_one_runs_is_refused_naming_the_holder() {
    let mut rig = Rig::new("up_lock", "app_version").await;
    rig.start_nodes("1").await;
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    rig.wait_event("the first step", |e| e["event"] == "step_started")
        .await;
    let run_id = rig.events()[0]["run_id"].as_str().unwrap().to_string();
    // Another operator, another machine: another state directory.
    let other = tempfile::tempdir().unwrap();
    let mut args = rig.args(&["upgrade", "--to", "2", "--yes"]);
    let n = args.len();
    args[n - 1] = other.path().display().to_string();
    let out = rig.run_cli(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another runbook holds"), "{err}");
    assert!(
        err.contains(&format!("runbook {run_id} by ")),
        "the refusal does not name the holder: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let code = rig.wait_runbook(i, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "{}", rig.runbook_log(i));
    rig.assert_all_on("2").await;
}

/// A state directory with a journal and the runbook configuration of a
/// cluster on the test Redis (nothing started).
fn offline(label: &str) -> (common::TestNs, tempfile::TempDir, Vec<String>) {
    let ns = common::TestNs::new(label);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("cluster.env");
    std::fs::write(
        &env,
        format!(
            "CLUSTER_NAME={}\nREDIS_URL={}\n",
            ns.name,
            common::redis_url()
        ),
    )
    .unwrap();
    let config = dir.path().join("runbook.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nname = \"{}\"\n[executor]\nkind = \"process\"\nbinary = \"{BIN}\"\n\
             [[nodes]]\nname = \"n1\"\nlisten = \"127.0.0.1:1\"\n[backup]\nkind = \"none\"\n",
            ns.name
        ),
    )
    .unwrap();
    let args = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--env-file".to_string(),
        env.display().to_string(),
        "--state-dir".to_string(),
        dir.path().display().to_string(),
    ];
    (ns, dir, args)
}

fn cli(first: &[&str], rest: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(first)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_damaged_journal_is_one_clear_error_naming_file_line_and_the_way_forward() {
    let (ns, dir, args) = offline("up_journal");
    let journal = dir.path().join(&ns.name).join("journal.jsonl");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();

    // A garbage line: fix it by hand or move the file aside.
    std::fs::write(&journal, "{\"seq\": 1, oops\n").unwrap();
    let (code, _, err) = cli(&["upgrade", "--resume", "--yes"], &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&journal.display().to_string()), "{err}");
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("move the file aside"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let (code, _, err) = cli(&["upgrade", "--to", "2", "--yes"], &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let (code, _, err) = cli(
        &["audit", "--state-dir", &dir.path().display().to_string()],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 1") && !err.contains("panicked"), "{err}");

    // A last line cut by a crash: --repair-journal drops it.
    std::fs::write(&journal, "{\"seq\": 1, \"at_ms\"").unwrap();
    let (code, _, err) = cli(&["upgrade", "--resume", "--yes"], &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--repair-journal"), "{err}");
    let (code, _, err) = cli(&["upgrade", "--resume", "--repair-journal", "--yes"], &args);
    assert!(err.contains("dropped truncated line 1"), "{err}");
    assert!(err.contains("no unfinished run"), "{err}");
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), "");

    // Nothing to abort either.
    let (code, _, err) = cli(&["upgrade", "--abort"], &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no unfinished run"), "{err}");
}

#[test]
fn the_plan_changes_nothing_and_bad_input_exits_2() {
    let (ns, dir, args) = offline("up_plan");
    let (code, out, err) = cli(&["upgrade", "--to", "2", "--plan"], &args);
    assert_eq!(code, Some(0), "{err}");
    for step in StepKind::UPGRADE {
        assert!(
            out.contains(step.title()),
            "{} missing:\n{out}",
            step.title()
        );
    }
    assert!(ns.keys().is_empty(), "the plan wrote {:?}", ns.keys());
    assert!(!dir.path().join(&ns.name).join("journal.jsonl").exists());

    let (code, _, err) = cli(&["upgrade", "--to", "2;rm -rf /", "--yes"], &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not accepted"), "{err}");

    let (code, _, err) = cli(&["upgrade", "--yes"], &args);
    assert_eq!(code, Some(2), "{err}");

    // A memory-only cluster configuration: a runbook needs shared state.
    let env = dir.path().join("memory.env");
    std::fs::write(&env, format!("CLUSTER_NAME={}\n", ns.name)).unwrap();
    let mut a = args.clone();
    a[3] = env.display().to_string();
    let (code, _, err) = cli(&["upgrade", "--to", "2", "--yes"], &a);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no Redis"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_at_a_safe_point_frees_the_lock_at_once_and_resume_finishes() {
    let mut rig = Rig::new("up_sigint", "app_version").await;
    rig.start_nodes("1").await;
    rig.write_records(3).await;
    let before = rig.records();
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    rig.wait_event("the first node started on v2", |e| {
        e["event"] == "output"
            && e["step"] == "upgrade_first"
            && e["line"]
                .as_str()
                .is_some_and(|l| l.contains("started version 2"))
    })
    .await;
    let lock_key = format!("{}:lock:runbook", rig.ns());
    assert!(
        rig.cluster.ns.keys().contains(&lock_key),
        "the run holds no lock: {:?}",
        rig.cluster.ns.keys()
    );
    let pid = nix::unistd::Pid::from_raw(rig.runbooks[i].id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let code = rig.wait_runbook(i, Duration::from_secs(20)).await;
    let log = rig.runbook_log(i);
    assert_eq!(code, 130, "{log}");
    // The lock is free at once, not after its TTL.
    assert!(
        !rig.cluster.ns.keys().contains(&lock_key),
        "the runbook lock is still held after the interrupted run exited"
    );
    // One line says how to go on.
    let how: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("interrupted (SIGINT)") && l.contains("--resume"))
        .collect();
    assert_eq!(how.len(), 1, "{log}");
    assert!(
        how[0].contains("--rollback") && how[0].contains("--abort"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    // The journal ends with the interruption, every line whole.
    let text = std::fs::read_to_string(rig.journal()).unwrap();
    assert!(text.ends_with('\n'));
    let events = rig.events();
    assert_eq!(
        events.len(),
        text.lines().count(),
        "a journal line is not JSON"
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_interrupted", "{last}");
    assert_eq!(last["reason"], "SIGINT");
    assert_eq!(last["step"], "upgrade_first");
    // The Redis mirror has it too.
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mirrored: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(format!("{}:runbook:journal", rig.ns()))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut conn)
        .unwrap();
    assert!(
        mirrored[0].1[0].1.contains("run_interrupted"),
        "{mirrored:?}"
    );

    let j = rig.spawn_runbook(&["upgrade", "--resume", "--yes"]);
    let code = rig.wait_runbook(j, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "resume output:\n{}", rig.runbook_log(j));
    rig.assert_all_on("2").await;
    assert_eq!(rig.records(), before);
    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    assert_eq!(run["outcome"], "completed");
    assert_eq!(run["interrupted"][0]["reason"], "SIGINT", "{run}");
    assert_eq!(run["interrupted"][0]["step"], "upgrade_first", "{run}");
}

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
    assert_eq!(run.target_version, "2");
    assert_eq!(run.previous_version.as_deref(), Some("1"));
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
    use clusterops::console::action::Action;
    use clusterops::console::app::{App, AppOptions};
    use clusterops::console::runbook_driver::RunDriver;
    use clusterops::console::theme::Theme;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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
        for c in text.chars() {
            app.press(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    pub fn enter(app: &mut App) {
        app.press(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    }

    pub fn screen(app: &mut App) -> String {
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
        term.draw(|f| app.draw(f)).unwrap();
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
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
    let lock_key = format!("{}:lock:runbook", rig.ns());

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

#[test]
fn console_runbook_bad_input_is_one_line_and_exit_2_before_the_screen() {
    let (_ns, dir, args) = offline("up_conrb");
    let (config, env) = (args[1].clone(), args[3].clone());
    let missing = dir.path().join("missing.toml").display().to_string();
    let (code, _, err) = cli(&["console", "--env-file", &env, "--runbook", &missing], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("error: --runbook:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A runbook configuration of another cluster.
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let first = text.lines().nth(1).unwrap().to_string();
    std::fs::write(&other, text.replace(&first, "name = \"another-cluster\"")).unwrap();
    let (code, _, err) = cli(
        &[
            "console",
            "--env-file",
            &env,
            "--runbook",
            &other.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("another-cluster") && err.contains("CLUSTER_NAME"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Driving is not looking.
    let (code, _, err) = cli(
        &[
            "console",
            "--env-file",
            &env,
            "--runbook",
            &config,
            "--read-only",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--read-only"), "{err}");
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
    let end = wait("console-exit=", 20);
    assert!(end.contains("console-exit=0"), "{end}");
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
