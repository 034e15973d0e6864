//! Clock offsets against Redis `TIME` from real `clusterops node` processes
//! whose wall clocks libfaketime moves (`tests/common/faketime.rs`): each
//! node reports the skew it was given, `status` shows it, and `check`'s
//! `clock-skew` warns above 1 s and fails beyond the snowflake generator's
//! tolerance (2 s), naming the node; the inspecting host's own clock is
//! measured too.

use crate::common;

use common::faketime;
use common::nodes::{NodeProc, TestCluster};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Slack on top of the measurement's own uncertainty (half its round
/// trip): Redis's clock is read in microseconds, the node's around it.
const SLACK_US: i64 = 2_000;

/// `clusterops ARGS --env-file F` with `process_env` set: exit code and stdout.
fn cli(args: &[&str], env_file: &Path, process_env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args(args).arg("--env-file").arg(env_file);
    for var in clusterops::config::VARIABLES {
        cmd.env_remove(var);
    }
    cmd.envs(process_env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("the clusterops binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The `clock-skew` entry of `check --json`, and the exit code.
fn clock_check(env_file: &Path, process_env: &[(&str, String)]) -> (i32, Value) {
    let (code, out) = cli(&["check", "--json"], env_file, process_env);
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let check = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "clock-skew")
        .cloned()
        .unwrap_or_else(|| panic!("no clock-skew in {json}"));
    (code, check)
}

async fn start_skewed(c: &TestCluster, id: &str, offset: Option<&str>) -> NodeProc {
    let env: Vec<(&str, String)> = offset.map(faketime::env).unwrap_or_default();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = c.spawn_with_process_env(id, "2", &c.env_file, &env);
    node.wait_for_status(Duration::from_secs(30)).await;
    node
}

/// The node's reported offset (from `/api/status`), checked against the
/// injected one (`expected_us`: Redis minus the node, so a node 3 s ahead
/// reports -3 s) within the measurement's uncertainty. Returns the error.
async fn assert_reports(node: &NodeProc, expected_us: i64) -> i64 {
    let status = node.status().await.expect("status");
    let offset = &status["clock_offset"];
    let got = offset["offset_us"]
        .as_i64()
        .unwrap_or_else(|| panic!("{} reports no clock offset: {status}", node.node_id));
    let rtt = offset["rtt_us"].as_i64().expect("rtt_us");
    let error = got - expected_us;
    assert!(
        error.abs() <= rtt / 2 + SLACK_US,
        "{}: reported {got} µs for an injected {expected_us} µs (rtt {rtt} µs)",
        node.node_id
    );
    let words = status["clock"].as_str().expect("clock");
    assert!(words.contains("Redis TIME"), "{words}");
    error
}

/// Whether `reason` says `what` followed by a number of seconds within
/// 50 ms of `expected` (the offset is measured over a loopback round trip:
/// 1.499 s for a clock 1.5 s behind on a loaded machine).
fn says_seconds(reason: &str, what: &str, expected: f64) -> bool {
    reason.split(what).skip(1).any(|rest| {
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        number
            .parse::<f64>()
            .is_ok_and(|s| (s - expected).abs() < 0.05)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn skewed_nodes_report_their_offset_and_check_warns_then_fails() {
    let c = TestCluster::new("clock");
    let ok = start_skewed(&c, "clk-ok", None).await;
    assert_reports(&ok, 0).await;

    // Only a correct clock: passes. The inspector on a host 5 s ahead
    // warns about its own clock, never fails for it.
    let (code, check) = clock_check(&c.env_file, &[]);
    assert_eq!(check["status"], "pass", "{check}");
    assert!(code <= 1, "{check}");
    let (_, check) = clock_check(&c.env_file, &faketime::env("+5"));
    assert_eq!(check["status"], "warn", "{check}");
    let reason = check["reason"].as_str().unwrap();
    assert!(
        says_seconds(reason, "this host's clock (running the inspector) is ", 5.0)
            && reason.contains("ahead of Redis TIME"),
        "{reason}"
    );

    // A node 1.5 s behind: warns, naming it.
    let behind = start_skewed(&c, "clk-behind", Some("-1.5")).await;
    assert_reports(&behind, 1_500_000).await;
    let (code, check) = clock_check(&c.env_file, &[]);
    assert_eq!(check["status"], "warn", "{check}");
    assert_eq!(code, 1, "{check}");
    let reason = check["reason"].as_str().unwrap();
    assert!(
        says_seconds(reason, "clk-behind is ", 1.5) && reason.contains("behind Redis TIME"),
        "{reason}"
    );
    assert!(!reason.contains("clk-ok"), "{reason}");

    // A node 3 s ahead: beyond the 2 s tolerance, fails naming it.
    let ahead = start_skewed(&c, "clk-ahead", Some("+3")).await;
    assert_reports(&ahead, -3_000_000).await;
    let (code, check) = clock_check(&c.env_file, &[]);
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(code, 2);
    let reason = check["reason"].as_str().unwrap();
    assert!(
        says_seconds(reason, "clk-ahead is ", 3.0) && reason.contains("ahead of Redis TIME"),
        "{reason}"
    );
    assert!(says_seconds(reason, "clk-behind is ", 1.5), "{reason}");

    // `status --json` carries each node's offset; the text shows a column.
    let (_, out) = cli(&["status", "--json"], &c.env_file, &[]);
    let snap: Value = serde_json::from_str(&out).unwrap();
    // All three in the registry: the node 3 s ahead scores and prunes the
    // index on Redis's clock, so it does not drop the others from it.
    let nodes = snap["nodes"]["data"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{out}");
    for n in nodes {
        let us = n["clock_offset"]["offset_us"].as_i64().expect("offset");
        let want = match n["node_id"].as_str().unwrap() {
            "clk-ok" => 0,
            "clk-behind" => 1_500_000,
            _ => -3_000_000,
        };
        assert!((us - want).abs() < 100_000, "{n}");
    }
    let (_, text) = cli(&["status"], &c.env_file, &[]);
    assert!(text.contains("CLOCK"), "{text}");
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id} in {text}"))
            .to_string()
    };
    assert!(line("clk-ahead").contains(" -3.00s "), "{text}");
    assert!(line("clk-behind").contains(" +1.50s "), "{text}");
    drop((ok, behind, ahead));
}
