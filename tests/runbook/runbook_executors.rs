//! The command, process and manual executors on real processes: template
//! substitution and refusal of unsafe values, output capture and timeouts,
//! detached processes with pid files, SIGTERM then SIGKILL, and a new
//! executor (a resumed runbook) finding the processes through their pid files.

use crate::runbook_support;

use clusterops::runbook::config::{CommandConfig, ManualConfig, NodeConfig, ProcessConfig};
use clusterops::runbook::executor::command::{CommandExecutor, check_template, render};
use clusterops::runbook::executor::manual::ManualExecutor;
use clusterops::runbook::executor::process::ProcessExecutor;
use clusterops::runbook::{Decision, ExecError, Executor, NodeSlot};
use runbook_support::{BufferIo, fake_node};
use std::path::Path;
use std::time::{Duration, Instant};

fn node(name: &str) -> NodeConfig {
    NodeConfig {
        name: name.to_string(),
        node_id: None,
        listen: Some("127.0.0.1:1".to_string()),
        env_file: None,
    }
}

fn slot(index: usize, name: &str) -> NodeSlot {
    NodeSlot {
        index,
        name: name.to_string(),
        node_id: Some(name.to_string()),
    }
}

fn commands(dir: &Path, timeout_s: u64) -> CommandConfig {
    let d = dir.display();
    CommandConfig {
        stop: format!("touch {d}/stopped-{{node}} && echo stopping {{node}}"),
        upgrade: Some(format!("echo {{version}} > {d}/{{node}}.version")),
        start: format!(
            "touch {d}/started-{{node}}-{{version}}; echo started {{node}} on {{version}} >&2"
        ),
        timeout_s,
    }
}

#[test]
fn templates_accept_only_node_and_version() {
    assert!(check_template("ssh {node} docker compose up -d app # {version}").is_ok());
    assert!(
        check_template("echo ${HOME} {node}").is_ok(),
        "${{...}} belongs to the shell"
    );
    let err = check_template("ssh {host} stop").unwrap_err();
    assert!(err.contains("{host}"), "{err}");
    assert_eq!(
        render("ssh {node} up {version}", "app1", Some("v2.1")).unwrap(),
        "ssh app1 up v2.1"
    );
}

#[tokio::test]
async fn commands_run_with_node_and_version_substituted_and_output_captured() {
    let dir = tempfile::tempdir().unwrap();
    let ex = CommandExecutor::new(commands(dir.path(), 10), vec![node("app1"), node("app2")]);
    let io = BufferIo::new();
    ex.start(&slot(0, "app1"), "2.0.1", &io).await.unwrap();
    assert!(dir.path().join("started-app1-2.0.1").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app1.version"))
            .unwrap()
            .trim(),
        "2.0.1"
    );
    ex.stop_all(&io).await.unwrap();
    assert!(dir.path().join("stopped-app1").exists() && dir.path().join("stopped-app2").exists());
    let text = io.text();
    assert!(
        text.contains("app1: started app1 on 2.0.1"),
        "stderr is captured: {text}"
    );
    assert!(text.contains("app2: stopping app2"), "{text}");
    assert!(
        text.contains("app1: $ touch"),
        "the command is shown: {text}"
    );
}

#[tokio::test]
async fn an_unsafe_version_or_node_name_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ex = CommandExecutor::new(
        commands(dir.path(), 10),
        vec![node("app1"), node("bad;name")],
    );
    let io = BufferIo::new();
    for version in ["2; touch pwned", "$(id)", "", "a b", &"9".repeat(65)] {
        let err = ex.start(&slot(0, "app1"), version, &io).await.unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::UnsafeValue {
                    what: "version",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was run"));
    }
    let err = ex.stop_all(&io).await.unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::UnsafeValue {
                what: "node name",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no command ran at all"
    );
    assert!(io.lines.lock().is_empty());
}

#[tokio::test]
async fn a_failing_command_reports_its_status_and_output_and_a_slow_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = commands(dir.path(), 1);
    cfg.stop = "echo cannot reach {node} >&2; exit 7".to_string();
    cfg.start = format!("sleep 30; touch {}/late", dir.path().display());
    cfg.upgrade = None;
    let ex = CommandExecutor::new(cfg, vec![node("app1")]);
    let io = BufferIo::new();
    let err = ex.stop_all(&io).await.unwrap_err().to_string();
    assert!(
        err.contains("exit status: 7") && err.contains("cannot reach app1"),
        "{err}"
    );
    let started = Instant::now();
    let err = ex.start(&slot(0, "app1"), "2", &io).await.unwrap_err();
    assert!(matches!(err, ExecError::Timeout { secs: 1, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !dir.path().join("late").exists(),
        "the whole process group was killed"
    );
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
        .unwrap_or(false)
}

#[tokio::test]
async fn processes_start_detached_with_pid_files_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let script = fake_node(dir.path(), None, false);
    let cfg = ProcessConfig {
        binary: script,
        args: vec!["node".to_string()],
        stop_timeout_s: 5,
    };
    let state = dir.path().join("state");
    let ex = ProcessExecutor::new(cfg.clone(), vec![node("app1"), node("app2")], state.clone());
    let io = BufferIo::new();
    ex.start(&slot(0, "app1"), "2", &io).await.unwrap();
    ex.start(&slot(1, "app2"), "2", &io).await.unwrap();
    let pf = ex.running("app1").expect("app1 runs");
    assert_eq!(pf.version, "2");
    assert!(state.join("app1.pid").exists() && state.join("app1.log").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app1.version"))
            .unwrap()
            .trim(),
        "2",
        "flags were passed"
    );
    // Detached: its own session.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pf.pid))).unwrap();
    assert_eq!(sid.as_raw(), pf.pid);

    // Starting again on the same version does nothing.
    ex.start(&slot(0, "app1"), "2", &io).await.unwrap();
    assert_eq!(ex.running("app1").unwrap().pid, pf.pid);
    assert!(io.text().contains("already running version 2"));

    // A resumed runbook (a new executor) finds the processes and stops them.
    let resumed = ProcessExecutor::new(cfg, vec![node("app1"), node("app2")], state.clone());
    assert_eq!(resumed.running("app1").unwrap().pid, pf.pid);
    let pid2 = resumed.running("app2").unwrap().pid;
    resumed.stop_all(&io).await.unwrap();
    assert!(!alive(pf.pid) && !alive(pid2));
    assert!(!state.join("app1.pid").exists());
    assert!(
        io.text().contains("app1: SIGTERM sent to pid"),
        "{}",
        io.text()
    );
    // Stopping stopped nodes is fine.
    resumed.stop_all(&io).await.unwrap();
    assert!(io.text().contains("app1: not running"));
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let script = fake_node(dir.path(), None, true);
    let cfg = ProcessConfig {
        binary: script,
        args: vec![],
        stop_timeout_s: 1,
    };
    let ex = ProcessExecutor::new(cfg, vec![node("stubborn")], dir.path().join("state"));
    let io = BufferIo::new();
    ex.start(&slot(0, "stubborn"), "1", &io).await.unwrap();
    let pid = ex.running("stubborn").unwrap().pid;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ex.stop_all(&io).await.unwrap();
    assert!(!alive(pid));
    assert!(io.text().contains("SIGKILL sent"), "{}", io.text());
}

#[tokio::test]
async fn a_stale_pid_file_or_a_crashing_node_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A pid file whose process is gone (pid reused by something else: start time differs).
    std::fs::write(
        state.join("app1.pid"),
        format!(
            "{{\"pid\":{},\"version\":\"1\",\"started_at_ms\":0,\"proc_start\":1}}",
            std::process::id()
        ),
    )
    .unwrap();
    let cfg = ProcessConfig {
        binary: "/bin/false".into(),
        args: vec![],
        stop_timeout_s: 1,
    };
    let ex = ProcessExecutor::new(cfg, vec![node("app1")], state.clone());
    assert!(
        ex.running("app1").is_none(),
        "our own pid with another start time is not the node"
    );
    let io = BufferIo::new();
    ex.stop_all(&io).await.unwrap();
    assert!(io.text().contains("stale pid file removed"));
    assert!(alive(std::process::id() as i32), "nothing was signalled");
    let err = ex
        .start(&slot(0, "app1"), "2", &io)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited right after starting"), "{err}");
}

#[tokio::test]
async fn the_manual_executor_shows_instructions_and_needs_confirmation() {
    let ex = ManualExecutor::new(
        ManualConfig {
            stop: "Run `systemctl stop app` on {node}.".to_string(),
            start: "Deploy {version} to {node}, then start it.".to_string(),
        },
        vec![node("app1")],
    );
    let yes = BufferIo::answering(Decision::Confirm);
    ex.start(&slot(0, "app1"), "3", &yes).await.unwrap();
    assert!(yes.asked.lock()[0].starts_with("Deploy 3 to app1, then start it."));
    let no = BufferIo::answering(Decision::Abort);
    let err = ex.stop_all(&no).await.unwrap_err();
    assert!(matches!(err, ExecError::Declined(_)), "{err}");
    assert!(ex.start(&slot(0, "app1"), "3;x", &yes).await.is_err());
}
