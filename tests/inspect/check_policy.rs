//! `clusterops check --allow NAME` and `--require-nodes` on a real Redis
//! with no node running: the warnings allowed are listed as `allow` and not
//! counted; with `--require-nodes` the empty cluster fails; an unknown name
//! is refused.

use crate::common;

fn check(env: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .arg("check")
        .args(extra)
        .arg("--env-file")
        .arg(env)
        .output()
        .expect("check runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn allowed_warnings_do_not_count_and_require_nodes_fails_an_empty_cluster() {
    let ns = common::TestNs::new("allow");
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("cluster.env");
    let url = &ns.url;
    std::fs::write(
        &env,
        format!(
            "CLUSTER_NAME={}\nCACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL={url}\nPUBSUB_ADAPTER_REDIS_URL={url}\n\
             QUEUE_ADAPTER=redis\nQUEUE_ADAPTER_REDIS_URL={url}\nLOCK_ADAPTER_DEFAULT=redis\n\
             LOCK_ADAPTER_REDIS_URL={url}\nREDIS_URL={url}\n",
            ns.name
        ),
    )
    .unwrap();
    // Without --allow: warnings (no node, one database for every adapter,
    // and on Redis 7 the version) make exit 1.
    let (code, out, _) = check(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    let warned: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("WARN"))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert!(warned.contains(&"nodes-healthy".to_string()), "{out}");
    let mut args = Vec::new();
    for w in &warned {
        args.push("--allow");
        args.push(w.as_str());
    }
    let (code, out, _) = check(&env, &args);
    println!("{out}");
    assert_eq!(code, Some(0), "{out}");
    for w in &warned {
        assert!(
            out.lines()
                .any(|l| l.starts_with("allow") && l.contains(w.as_str())),
            "{w} not listed as allowed:\n{out}"
        );
    }
    let (_, json, _) = check(&env, &[&args[..], &["--json"]].concat());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert!(
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "nodes-healthy" && c["allowed"] == true),
        "{json}"
    );

    // --require-nodes: the empty cluster fails, and a failure is never allowed.
    let (code, out, _) = check(&env, &[&args[..], &["--require-nodes"]].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("the whole cluster is down")),
        "{out}"
    );

    let (code, _, err) = check(&env, &["--allow", "redis-versoin"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("error: --allow \"redis-versoin\": no such check"),
        "{err}"
    );
}
