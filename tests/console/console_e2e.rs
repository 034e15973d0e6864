//! The real binary in a real terminal: `clusterops console --snapshot
//! tests/fixtures/degraded.json --read-only` inside tmux at 80x24. Reads
//! the screen, switches views, resizes, quits with `q`, and checks the
//! terminal came back as it was (alternate screen off, same tty modes,
//! the shell's next line visible).

use crate::common;

use common::tmux::Tmux;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_clusterops");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn an_operator_browses_a_saved_snapshot_and_quits_leaving_the_terminal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let log = dir.path().join("console.log");
    let tmux = Tmux::start(80, 24);
    tmux.wait_for(&["sh>"]);
    tmux.type_text(&format!(
        "stty -g > {d}/before; {BIN} console --snapshot {} --read-only --log-file {}; echo EXITED:$?; stty -g > {d}/after",
        fixture("degraded.json").display(),
        log.display()
    ));
    tmux.key("Enter");

    let overview = tmux.wait_for(&["1 Overview", "DEGRADED", "Verdict"]);
    assert!(
        overview.contains("FAIL nodes       unhealthy: node-b (degraded, HTTP 503"),
        "{overview}"
    );
    assert!(overview.contains("read-only"), "{overview}");
    assert!(tmux.alternate_screen_on());

    tmux.key("2");
    let nodes = tmux.wait_for(&["NODE", "STATE", "node-c"]);
    assert!(nodes.contains("≠b71e04"), "drift shows: {nodes}");

    tmux.key("4");
    let locks = tmux.wait_for(&["LOCK", "migrations"]);
    assert!(locks.contains("node-old (dead)"), "{locks}");
    tmux.key("X");
    assert!(
        !tmux.screen().contains("Force-release"),
        "read-only: X offers nothing"
    );

    tmux.type_text(":queues");
    tmux.key("Enter");
    let queues = tmux.wait_for(&["QUEUE", "email"]);
    assert!(queues.contains("DEAD"), "{queues}");

    tmux.key("?");
    tmux.wait_for(&["Keys: Queues", "read-only: no action is offered"]);
    tmux.key("Escape");
    // Wait for the help to close: an Escape still unread when the next key
    // arrives is read with it as Alt-<key>.
    tmux.wait_until(Duration::from_secs(10), |s| !s.contains("Keys: Queues"))
        .unwrap_or_else(|s| panic!("the help did not close:\n{s}"));

    tmux.tmux(&["resize-window", "-t", "e2e", "-x", "120", "-y", "30"]);
    let wide = tmux.wait_for(&["CONSUMERS", "ACK RATE", "BACKEND"]);
    assert!(
        wide.lines().count() >= 29,
        "redrawn at the new size:\n{wide}"
    );
    tmux.tmux(&["resize-window", "-t", "e2e", "-x", "80", "-y", "24"]);

    tmux.key("q");
    let after = tmux.wait_for(&["EXITED:0"]);
    assert!(
        !tmux.alternate_screen_on(),
        "alternate screen is off after exit"
    );
    assert!(
        !after.contains("1 Overview"),
        "the console's screen is gone:\n{after}"
    );
    tmux.wait_for(&["EXITED:0\nsh>"]);
    let before = std::fs::read_to_string(dir.path().join("before")).unwrap();
    let after = std::fs::read_to_string(dir.path().join("after")).unwrap();
    assert_eq!(
        before, after,
        "the tty modes are restored (raw mode is off)"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("console started") && logged.contains("console stopped"),
        "{logged}"
    );
}

#[test]
fn live_mode_with_a_wrong_configuration_names_the_variable_and_exits_2() {
    let out = Command::new(BIN)
        .args(["console", "--read-only"])
        .env("QUEUE_ADAPTER", "kafka")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("QUEUE_ADAPTER"), "{err}");
}

#[test]
fn a_missing_snapshot_file_is_an_error_before_the_screen_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let log = dir.path().join("console.log");
    let out = Command::new(BIN)
        .args([
            "console",
            "--snapshot",
            missing.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read") && err.contains("nope.json"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing drawn");
}

#[test]
fn an_unknown_theme_is_refused() {
    let out = Command::new(BIN)
        .args([
            "console",
            "--theme",
            "neon",
            "--snapshot",
            fixture("healthy.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use one of default, mono"));
}

#[test]
fn the_demo_shows_three_nodes_and_a_verdict_and_quits_leaving_the_terminal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let log = dir.path().join("console.log");
    let tmux = Tmux::start(80, 24);
    tmux.wait_for(&["sh>"]);
    tmux.type_text(&format!(
        "stty -g > {d}/before; {BIN} demo --log-file {}; echo EXITED:$?; stty -g > {d}/after",
        log.display()
    ));
    tmux.key("Enter");
    let overview = tmux.wait_for(&["1 Overview", "Verdict", "demo"]);
    assert!(
        ["HEALTHY", "DEGRADED"].iter().any(|v| overview.contains(v)),
        "{overview}"
    );
    tmux.key("2");
    tmux.wait_for(&["demo-a", "demo-b", "demo-c", "running"]);
    tmux.key("q");
    tmux.wait_for(&["EXITED:0\nsh>"]);
    assert!(!tmux.alternate_screen_on());
    let before = std::fs::read_to_string(dir.path().join("before")).unwrap();
    let after = std::fs::read_to_string(dir.path().join("after")).unwrap();
    assert_eq!(before, after, "the tty modes are restored");
}

#[test]
fn the_demo_on_redis_runs_node_processes_and_deletes_its_namespace_on_quit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("console.log");
    let tmux = Tmux::start(80, 24);
    tmux.wait_for(&["sh>"]);
    tmux.type_text(&format!(
        "{BIN} demo --redis redis://127.0.0.1:6379/0 --log-file {}; echo EXITED:$?",
        log.display()
    ));
    tmux.key("Enter");
    let overview = tmux.wait_for(&["1 Overview", "Verdict", "3 healthy"]);
    let ns = overview
        .split_whitespace()
        .find(|w| w.starts_with("demo-"))
        .expect("the namespace is in the header")
        .to_string();
    tmux.key("2");
    tmux.wait_for(&["demo-a", "demo-b", "demo-c", "running"]);
    tmux.key("q");
    tmux.wait_for(&["EXITED:0"]);
    let out = Command::new("redis-cli")
        .args(["--scan", "--pattern", &format!("{ns}:*")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "the demo's keys are deleted"
    );
}
