//! `status` and `check` on Redis behind Sentinel, against a real master,
//! replica and three sentinels started by the test (with passwords): the
//! topology in `status --json` and in the human output, the new master
//! after `SENTINEL FAILOVER`, a killed sentinel marked as not answering
//! while the quorum still holds, two killed and `sentinel-quorum` fails;
//! never a password in any output.

use crate::common;

use common::status_cli;
use common::topology::{MASTER_NAME, Secrets, SentinelSet};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const DATA_PW: &str = "data-pw-5501";
const SENTINEL_PW: &str = "sentinel-pw-9924";

const SECRETS: Secrets<'static> = Secrets {
    data: Some(DATA_PW),
    sentinel: Some(SENTINEL_PW),
};

/// Run the binary; exit code and stdout. Panics when a password shows in
/// either stream.
fn clusterops(args: &[&str], env: &Path) -> (i32, String) {
    status_cli::run(args, env, &[DATA_PW, SENTINEL_PW])
}

/// The topology of the one Redis server in `status --json`.
fn topology(env: &Path) -> Value {
    let (code, out) = clusterops(&["status", "--json"], env);
    assert_eq!(code, 0, "status --json: {out}");
    let snap: Value = serde_json::from_str(&out).expect("status JSON");
    let servers = snap["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{out}");
    servers[0]["topology"].clone()
}

/// The topology once `ok` holds for it (a failover or a killed sentinel
/// takes the sentinels a moment to settle).
fn topology_when(env: &Path, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = topology(env);
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: {t:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The `check --json` result of check `id`: status and reason.
fn check(env: &Path, id: &str) -> (i32, String, String) {
    let (code, out) = clusterops(&["check", "--json"], env);
    let v: Value = serde_json::from_str(&out).expect("check JSON");
    let c = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {out}"))
        .clone();
    (
        code,
        c["status"].as_str().unwrap_or("").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    )
}

fn answered(t: &Value) -> Vec<bool> {
    t["sentinels"]
        .as_array()
        .expect("sentinels")
        .iter()
        .map(|s| s["answered"] == true)
        .collect()
}

#[test]
fn status_and_check_show_the_sentinel_topology_through_a_failover_and_dead_sentinels() {
    let mut set = SentinelSet::start(None, SECRETS);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = status_cli::env_file(dir.path(), "sentinel.env", "sentinel-inspect", &set.url(0));
    let first = format!("127.0.0.1:{}", set.master_port());

    // The master, its replica online, three sentinels agreeing, quorum 2.
    let t = topology_when(&env, "one replica online", |t| {
        t["replicas"][0]["state"] == "online"
    });
    assert_eq!(t["master_name"], MASTER_NAME);
    assert_eq!(t["master"], first.as_str(), "{t:#}");
    assert_eq!(t["read_from"], first.as_str(), "{t:#}");
    assert_eq!(t["read_role"], "master", "{t:#}");
    assert_eq!(t["replicas"].as_array().map(Vec::len), Some(1), "{t:#}");
    assert_eq!(answered(&t), vec![true; 3]);
    for s in t["sentinels"].as_array().expect("sentinels") {
        assert_eq!(s["names_master"], first.as_str(), "{s:#}");
        assert_eq!(s["quorum"], 2, "{s:#}");
        assert_eq!(s["ckquorum"]["ok"], true, "{s:#}");
    }
    let (_, human) = clusterops(&["status"], &env);
    eprintln!("{human}");
    let line = format!(
        "sentinel {MASTER_NAME}: master {first} (3/3 sentinels agree, quorum 2), 1 replica online lag "
    );
    assert!(human.contains(&line), "{human}");
    let (_, status, reason) = check(&env, "sentinel-quorum");
    assert_eq!(status, "pass", "{reason}");
    assert_eq!(
        reason,
        format!("{MASTER_NAME}: 3/3 sentinels agree on {first}, quorum 2")
    );
    let (_, status, reason) = check(&env, "redis-replicas");
    assert_eq!(status, "pass", "{reason}");
    assert!(reason.starts_with("mymaster: 1 replica online"), "{reason}");

    // After a failover, the new master, with the old one as its replica.
    let new = format!("127.0.0.1:{}", set.failover());
    assert_ne!(new, first);
    let t = topology_when(&env, "the new master with its replica", |t| {
        t["master"] == new.as_str()
            && t["read_role"] == "master"
            && t["replicas"][0]["state"] == "online"
    });
    assert_eq!(t["read_from"], new.as_str());
    assert_eq!(t["replicas"][0]["address"], first.as_str(), "{t:#}");

    // One sentinel killed: marked as not answering, the quorum holds.
    let silent = format!("127.0.0.1:{}", set.sentinels[2].port);
    set.sentinels[2].kill();
    let t = topology(&env);
    assert_eq!(answered(&t), vec![true, true, false], "{t:#}");
    assert!(
        t["sentinels"][2]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let (_, human) = clusterops(&["status"], &env);
    eprintln!("{human}");
    assert!(
        human.contains(&format!("sentinel {silent} ({MASTER_NAME}): NOT ANSWERING")),
        "{human}"
    );
    let (_, status, reason) = check(&env, "sentinel-quorum");
    assert_eq!(status, "pass", "{reason}");
    assert!(
        reason.contains("2/3 sentinels agree")
            && reason.contains(&format!("{silent} not answering")),
        "{reason}"
    );

    // Two killed: fewer than the quorum answer, and it says so quickly.
    set.sentinels[1].kill();
    let started = Instant::now();
    let (code, status, reason) = check(&env, "sentinel-quorum");
    assert_eq!((code, status.as_str()), (2, "fail"), "{reason}");
    assert!(
        reason.contains("1/3 sentinels answer, fewer than the quorum 2"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "check took {:?}",
        started.elapsed()
    );
}
