//! `clusterops check` never passes what it could not read: with the
//! coordination Redis (`REDIS_URL`) on a closed port, the checks that need
//! it fail (`not checked: …`) and the exit code is 2.

use crate::common;

use std::path::Path;

const CLOSED: &str = "redis://127.0.0.1:1/0";

fn check(env_file: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["check", "--json", "--env-file"])
        .arg(env_file)
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let human = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(["check", "--env-file"])
        .arg(env_file)
        .output()
        .expect("check runs");
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

fn assert_not_passed(json: &serde_json::Value, human: &str) {
    let checks = json["checks"].as_array().expect("checks");
    for id in [
        "sources-reachable",
        "same-version",
        "same-fingerprint",
        "eviction-policy",
        "redis-persistence",
        "worker-id-capacity",
        "process-capacity",
        "stale-worker-ids",
        "shared-storage",
    ] {
        let c = checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}: {json}"));
        assert_eq!(c["status"], "fail", "{id}: {c}");
        assert!(
            !human
                .lines()
                .any(|l| l.contains(id) && l.to_lowercase().contains("pass")),
            "{id} passes in:\n{human}"
        );
    }
    assert!(!json.to_string().contains("REDIS_URL unset"), "{json}");
    assert_eq!(json["exit_code"], 2);
}

#[test]
fn every_redis_on_a_closed_port_fails_the_checks_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("cluster.env");
    let mut text = "CLUSTER_NAME=unreachable\nCACHE_DEFAULT_STORE=redis\nQUEUE_ADAPTER=redis\nLOCK_ADAPTER_DEFAULT=redis\n".to_string();
    for var in [
        "CACHE_REDIS_URL",
        "PUBSUB_ADAPTER_REDIS_URL",
        "QUEUE_ADAPTER_REDIS_URL",
        "LOCK_ADAPTER_REDIS_URL",
        "REDIS_URL",
    ] {
        text.push_str(&format!("{var}={CLOSED}\n"));
    }
    std::fs::write(&env, text).unwrap();
    let (code, json, human) = check(&env);
    println!("{human}");
    assert_eq!(code, Some(2), "{json}");
    assert_not_passed(&json, &human);
    assert!(human.contains("not checked: "), "{human}");
}

#[test]
fn only_redis_url_on_a_closed_port_fails_the_registry_and_worker_id_checks() {
    let ns = common::TestNs::new("unreach");
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("cluster.env");
    let url = &ns.url;
    let text = format!(
        "CLUSTER_NAME={}\nCACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL={url}\nPUBSUB_ADAPTER_REDIS_URL={url}\n\
         QUEUE_ADAPTER=redis\nQUEUE_ADAPTER_REDIS_URL={url}\nLOCK_ADAPTER_DEFAULT=redis\n\
         LOCK_ADAPTER_REDIS_URL={url}\nREDIS_URL={CLOSED}\n",
        ns.name
    );
    std::fs::write(&env, text).unwrap();
    let (code, json, human) = check(&env);
    println!("{human}");
    assert_eq!(code, Some(2), "{json}");
    assert_not_passed(&json, &human);
}
