//! The example alert rules in docs/operator-guide.md ("Prometheus") are
//! valid: the YAML block is extracted from the page and `promtool check
//! rules` must accept it.

use std::path::Path;
use std::process::Command;

/// The fenced YAML block of `doc` whose first line is `first_line`.
fn yaml_block(doc: &str, first_line: &str) -> Option<String> {
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if block.first().is_some_and(|l| l.trim() == first_line) {
            return Some(block.join("\n") + "\n");
        }
    }
    None
}

#[test]
fn the_operator_guides_alert_rules_pass_promtool_check_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/operator-guide.md")).unwrap();
    let rules = yaml_block(&guide, "# /etc/prometheus/rules/clusterops.yml")
        .expect("a ```yaml block starting with # /etc/prometheus/rules/clusterops.yml");
    for alert in [
        "ClusteropsNodeDown",
        "ClusteropsHeartbeatStale",
        "ClusteropsWorkerIdsNearlyExhausted",
        "ClusteropsLockHeldTooLong",
        "ClusteropsDeadLetters",
        "ClusteropsOldestJobTooOld",
        "ClusteropsCheckFailing",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} missing"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clusterops.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules:\n{said}\n{rules}"
    );
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
}

#[test]
fn a_broken_rule_is_refused_so_the_check_above_means_something() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: clusterops_up ==\n",
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(!out.status.success());
}
