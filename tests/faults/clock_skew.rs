//! Clock skew: real processes whose wall clocks libfaketime moves
//! (`tests/common/faketime.rs`; the monotonic clock is left alone).
//!
//! - Three `clusterops node` processes, one correct, one 1.5 s behind and
//!   one 3 s ahead, take requests; each reports its offset from Redis
//!   `TIME` in its registry record, compared here with the injected skew
//!   (the measurement error), and `check` must fail `clock-skew` naming
//!   the node beyond the snowflake tolerance (2 s) and warn for the one
//!   above 1 s. No record ID may repeat.
//! - A `clock-issuer` process (a worker-ID lease and a generator issuing
//!   about 10,000 IDs a second) has its clock stepped while it runs: back
//!   1 s (the generator waits), back 3 s more (it refuses until it is
//!   within 2 s, then waits), then forward to the real time. How long each
//!   step stopped it is measured; no ID may repeat or go backwards.

use crate::clock_issuer::{self, ROLE};
use crate::common::faketime;
use crate::common::nodes::{NodeProc, TestCluster};
use crate::harness::{Budget, Child, Report, Scenario};
use crate::procs::{self, ChildProc};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "clock_skew",
    run,
};

/// The issuer role, as registered in `CHILDREN`.
pub const CHILD: Child = Child {
    name: ROLE,
    run: clock_issuer::child,
};

/// The skewed nodes: id, libfaketime offset, the offset they should report
/// (Redis minus the node, µs).
const NODES: [(&str, Option<&str>, i64); 3] = [
    ("clk-ok", None, 0),
    ("clk-behind", Some("-1.5"), 1_500_000),
    ("clk-ahead", Some("+3"), -3_000_000),
];

/// Records created through the nodes.
const RECORDS: usize = 300;

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| {
        let started = Instant::now();
        procs::runtime()?.block_on(nodes(report))?;
        steps(report)?;
        report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));
        Ok(())
    })
}

async fn nodes(report: &mut Report) -> Result<(), String> {
    let cluster = TestCluster::new("faults-clock");
    let mut procs: Vec<NodeProc> = Vec::new();
    for (id, offset, _) in NODES {
        let env = offset.map(faketime::env).unwrap_or_default();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let node = cluster.spawn_with_process_env(id, "2", &cluster.env_file, &env);
        node.wait_for_status(Duration::from_secs(30)).await;
        procs.push(node);
    }
    // A few heartbeats, each with a measurement.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut worst_error_us = 0i64;
    for (node, (id, _, want)) in procs.iter().zip(NODES) {
        let status = node.status().await.ok_or(format!("{id}: no status"))?;
        let c = &status["clock_offset"];
        let (Some(got), Some(rtt)) = (c["offset_us"].as_i64(), c["rtt_us"].as_i64()) else {
            return Err(format!("{id} reports no clock offset: {status}"));
        };
        let error = got - want;
        worst_error_us = worst_error_us.max(error.abs());
        report.figure(
            &format!("{id}_offset"),
            format!("injected {want} µs, reported {got} µs, error {error} µs, rtt {rtt} µs"),
        );
        if error.abs() > rtt / 2 + 2_000 {
            return Err(format!(
                "{id} reported {got} µs for an injected {want} µs (rtt {rtt} µs)"
            ));
        }
    }
    report.figure("worst_measurement_error_us", worst_error_us);

    let (code, check) = clock_check(&cluster.env_file)?;
    let status = check["status"].as_str().unwrap_or("?").to_string();
    let reason = check["reason"].as_str().unwrap_or("").to_string();
    report.figure("check_exit_code", code);
    report.figure("check_clock_skew", format!("{status}: {reason}"));
    if status != "fail"
        || !reason.contains("clk-ahead is 3.0")
        || !reason.contains("clk-behind is 1.5")
        || reason.contains("clk-ok")
    {
        return Err(format!("clock-skew said {status}: {reason}"));
    }

    // Records through every node, the skewed ones included.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    let mut failed = 0;
    for i in 0..RECORDS {
        let node = &procs[i % procs.len()];
        let resp = http
            .post(node.url("/api/records"))
            .json(&serde_json::json!({"name": "clock", "value": i.to_string()}))
            .send()
            .await;
        let id = match resp {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["id"].as_i64()),
            _ => None,
        };
        match id {
            Some(id) => {
                ids.push(id);
                *per_node.entry(node.node_id.as_str()).or_default() += 1;
            }
            None => failed += 1,
        }
    }
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    report.figure("records_created", ids.len());
    report.figure("records_failed", failed);
    report.figure("record_id_duplicates", ids.len() - distinct.len());
    if ids.len() != distinct.len() {
        return Err("a record ID was issued twice".into());
    }
    if NODES
        .iter()
        .any(|(id, _, _)| per_node.get(id).is_none_or(|n| *n == 0))
    {
        return Err(format!("not every node created records: {per_node:?}"));
    }
    Ok(())
}

/// `clusterops check --json`: its exit code and the `clock-skew` entry.
fn clock_check(env_file: &Path) -> Result<(i32, serde_json::Value), String> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args(["check", "--json", "--env-file"]).arg(env_file);
    for var in clusterops::config::VARIABLES {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|e| format!("check: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("check --json: {e}: {text}"))?;
    let entry = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "clock-skew"))
        .cloned()
        .ok_or(format!("no clock-skew in {json}"))?;
    Ok((out.status.code().unwrap_or(-1), entry))
}

/// Sleep until the real clock is `ms` past a whole second, so a step of
/// whole seconds leaves the generator a known distance behind its last
/// second (1 s back at .200: 800 ms).
fn at_subsecond(ms: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis() as u64)
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis((1000 + ms - now) % 1000));
}

/// One step: write `offset` into the offset file at .200 and read the
/// issuer's `resumed BLOCKED REFUSED KIND` line (within `within`).
fn step(
    issuer: &ChildProc,
    file: &Path,
    offset: &str,
    within: Duration,
) -> Result<Option<(u64, u64, String)>, String> {
    // Written beside it and renamed over it: libfaketime re-reads the file
    // on every clock call (FAKETIME_NO_CACHE), and a plain write lets it
    // read the truncated, empty file between the truncation and the write,
    // a clock at offset 0 for a moment.
    // A block that ended before this step is not this step's.
    let _ = issuer.new_lines();
    let fresh = file.with_extension("new");
    std::fs::write(&fresh, offset).map_err(|e| format!("{}: {e}", fresh.display()))?;
    at_subsecond(200);
    std::fs::rename(&fresh, file).map_err(|e| format!("{}: {e}", file.display()))?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for line in issuer.new_lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let ["resumed", blocked, refused, kind] = parts.as_slice() {
                let n = |s: &str| s.parse::<u64>().unwrap_or(0);
                return Ok(Some((n(blocked), n(refused), kind.to_string())));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(None)
}

fn steps(report: &mut Report) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let file = dir.path().join("faketime");
    let out = dir.path().join("issuer.ids");
    std::fs::write(&file, "+0").map_err(|e| e.to_string())?;
    let ns = format!("faults-clk-{:08x}", rand::random::<u32>());
    let url = crate::common::redis_url();
    let mut issuer = ChildProc::spawn_with_env(
        ROLE,
        &procs::args(&[
            ("url", url.clone()),
            ("ns", ns.clone()),
            ("out", out.display().to_string()),
        ]),
        "clock-issuer",
        &faketime::env_from_file(&file),
    )?;
    issuer.wait_for_line("go", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(1));

    let back1 = step(&issuer, &file, "-1", Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_secs(1));
    let back3 = step(&issuer, &file, "-4", Duration::from_secs(8))?;
    std::thread::sleep(Duration::from_secs(1));
    let forward = step(&issuer, &file, "+0", Duration::from_secs(3))?;
    std::thread::sleep(Duration::from_millis(500));

    issuer.ask_to_stop();
    let done = issuer.wait_for_line("done", Duration::from_secs(10))?;
    let _ = issuer.wait_exit(Duration::from_secs(5));
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let ids: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    // IDs of one worker are strictly increasing; the issuer keeps its one
    // worker ID throughout.
    let backwards = ids.windows(2).filter(|w| w[1] <= w[0]).count();
    let _ = cleanup(&url, &ns);

    let show = |s: &Option<(u64, u64, String)>| match s {
        Some((b, r, k)) => format!("stopped {b} ms, of which refused {r} ms ({k})"),
        None => "never stopped".to_string(),
    };
    report.figure("step_back_1s", show(&back1));
    report.figure("step_back_3s_more", show(&back3));
    report.figure("step_forward_4s", show(&forward));
    report.figure("issuer_ids", ids.len());
    report.figure("issuer_id_duplicates", ids.len() - distinct.len());
    report.figure("issuer_ids_not_increasing", backwards);
    if done.is_empty() || ids.is_empty() {
        return Err("the issuer issued nothing".into());
    }
    if ids.len() != distinct.len() || backwards > 0 {
        return Err("an ID repeated or went backwards after a clock step".into());
    }
    // 1 s back at .200: it waits the 800 ms out, refusing nothing.
    match &back1 {
        Some((b, 0, _)) if (600..=1_300).contains(b) => {}
        other => return Err(format!("after a 1 s step back: {}", show(other))),
    }
    // 3 s more at .200: 2.8 s behind, beyond the 2 s tolerance: it refuses
    // until within 2 s (about 800 ms), then waits: about 2.8 s in all.
    match &back3 {
        Some((b, r, k))
            if (2_400..=3_400).contains(b)
                && (500..=1_300).contains(r)
                && k == "clock-backwards-refused" => {}
        other => return Err(format!("after a 3 s step back: {}", show(other))),
    }
    Ok(())
}

/// Delete the issuer's keys (its namespace is its own).
fn cleanup(url: &str, ns: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
