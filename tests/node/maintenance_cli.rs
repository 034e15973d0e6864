//! `clusterops maintenance on | off | status` against a real node: the node
//! answers 503 while the flag is set and 200 again once it is cleared, every
//! change lands in the audit file, and a user who may not write gets one
//! error line (recorded as refused) with its password masked.

use crate::common;

use common::ReadOnlyUser;
use common::nodes::TestCluster;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn maintenance(args: &[&str], env_file: &Path, audit: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.arg("maintenance").args(args);
    cmd.arg("--env-file").arg(env_file);
    if args[0] != "status" {
        cmd.arg("--audit-file").arg(audit);
    }
    cmd.output().expect("the clusterops binary runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

#[tokio::test]
async fn maintenance_drains_a_real_node_and_off_restores_it_with_an_audit_trail() {
    let cluster = TestCluster::new("maint-cli");
    let node = cluster.start("app1", "1.0.0").await;
    node.wait_for_health(200, Duration::from_secs(15)).await;
    let audit = cluster.dir.path().join("audit.jsonl");
    let env = &cluster.env_file;

    let out = maintenance(&["on", "--reason", "disk swap on db1"], env, &audit);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("maintenance set by"), "{stdout}");
    assert!(!stdout.contains("test-app-key") && !stderr.contains("test-app-key"));
    node.wait_for_health(503, Duration::from_secs(10)).await;

    let out = maintenance(&["status", "--json"], env, &audit);
    let flag: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(flag["kind"], "set", "{flag}");
    assert_eq!(flag["reason"], "disk swap on db1", "{flag}");

    // Already on: nothing changes without --replace.
    let out = maintenance(&["on", "--reason", "another"], env, &audit);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("already on"), "{stdout}");
    let out = maintenance(&["status"], env, &audit);
    assert!(text(&out).0.contains("disk swap on db1"));

    let out = maintenance(&["off"], env, &audit);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("maintenance cleared"), "{stdout}");
    node.wait_for_health(200, Duration::from_secs(10)).await;

    // Off twice: nothing to do, still success (as `kubectl uncordon`).
    let out = maintenance(&["off"], env, &audit);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("it was not set"));

    let lines = audit_lines(&audit);
    let actions: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or(""),
                l["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("set-maintenance", "ok"), ("clear-maintenance", "ok")],
        "{lines:?}"
    );
    assert_eq!(lines[0]["target"], "disk swap on db1");
}

#[tokio::test]
async fn a_user_who_may_not_write_gets_one_line_and_a_refused_audit_record() {
    let cluster = TestCluster::new("maint-ro");
    let ro = ReadOnlyUser::create(&common::redis_url(), "maint-cli");
    let env = cluster.env_on_redis("ro.env", &ro.url);
    let audit = cluster.dir.path().join("audit.jsonl");

    // Reading is allowed.
    let out = maintenance(&["status"], &env, &audit);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "maintenance: off");

    let out = maintenance(&["on", "--reason", "test"], &env, &audit);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("NOPERM") || errors[0].contains("permission"),
        "{stderr}"
    );
    assert!(!stderr.contains("ro-password") && !stdout.contains("ro-password"));
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "refused");
}

#[test]
fn without_redis_or_a_reason_it_says_what_to_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = dir.path().join("memory.env");
    std::fs::write(&env, "CLUSTER_NAME=maint-mem\n").expect("env file");
    let audit = dir.path().join("audit.jsonl");
    let out = maintenance(&["status"], &env, &audit);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = maintenance(&["on", "--reason", "  "], &env, &audit);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--reason"));
    assert!(!audit.exists());
}
