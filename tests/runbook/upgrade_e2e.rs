//! `clusterops upgrade` end to end: three real `clusterops node` processes
//! (started by the process executor, short heartbeat and lease TTLs) on
//! PostgreSQL and Redis behind a real nginx running assets/nginx.conf; the
//! runbook is the real binary, run as a child process with a generated
//! runbook configuration. Upgrade, rollback, kill -9 mid-step and resume,
//! the runbook lock, Ctrl-C (SIGINT) and resume, a damaged journal, the plan,
//! the audit, and `console --runbook` bad input. (The console with the
//! runbook: upgrade_console.rs.)

use crate::common;
use crate::upgrade_support;

use clusterops::runbook::StepKind;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
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
    rig.wait_output(step, needle).await;
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
    rig.wait_output("rollout", "n2: started version 2").await;
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
    rig.wait_output("upgrade_first", "started version 2").await;
    let lock_key = clusterops::adapters::lock::lock_key(&rig.cluster.ns.namespace(), "runbook");
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
async fn a_second_ctrl_c_during_a_slow_command_exits_at_once_and_the_journal_says_so() {
    let mut rig = Rig::new("up_sigint2", "app_version").await;
    rig.start_nodes("1").await;
    // The command executor, whose stop command is slow.
    let text = std::fs::read_to_string(&rig.config_path).unwrap();
    let (start, end) = (
        text.find("[executor]").unwrap(),
        text.find("[[nodes]]").unwrap(),
    );
    let text = format!(
        "{}[executor]\nkind = \"command\"\nstop = \"sleep 20\"\nstart = \"true\"\ntimeout_s = 60\n\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&rig.config_path, text).unwrap();
    let i = rig.spawn_runbook(&["upgrade", "--to", "2", "--yes"]);
    rig.wait_output("stop_nodes", "$ sleep 20").await;
    let pid = nix::unistd::Pid::from_raw(rig.runbooks[i].id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    // The run may already have stopped at its safe point and exited.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    // Well before the 20 s command would end.
    let code = rig.wait_runbook(i, Duration::from_secs(10)).await;
    let log = rig.runbook_log(i);
    assert_eq!(code, 130, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    // Whichever came first -- the engine at its safe point, or the second
    // signal -- the journal is whole and ends with the interruption.
    let text = std::fs::read_to_string(rig.journal()).unwrap();
    assert!(text.ends_with('\n'));
    let events = rig.events();
    assert_eq!(events.len(), text.lines().count(), "a journal line is cut");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_interrupted", "{last}\n{log}");
    assert_eq!(last["step"], "stop_nodes", "{last}");
    let reason = last["reason"].as_str().unwrap();
    if log.contains("SIGINT again: exiting now") && reason != "SIGINT" {
        assert_eq!(reason, "SIGINT, then SIGINT: exited at once", "{log}");
    } else {
        assert_eq!(reason, "SIGINT", "{log}");
    }
}
