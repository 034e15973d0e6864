//! The `clusterops` binary as the inspector tests drive it: an env file
//! with every adapter on one Redis URL, and a run of `status`/`check` that
//! fails the test when a secret shows in its output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variables the env file sets (removed from the child's environment,
/// so only the file counts).
pub const VARS: [&str; 9] = [
    "CLUSTER_NAME",
    "CACHE_DEFAULT_STORE",
    "CACHE_REDIS_URL",
    "PUBSUB_ADAPTER_REDIS_URL",
    "QUEUE_ADAPTER",
    "QUEUE_ADAPTER_REDIS_URL",
    "LOCK_ADAPTER_DEFAULT",
    "LOCK_ADAPTER_REDIS_URL",
    "REDIS_URL",
];

/// `dir/file`: namespace `ns`, every adapter on Redis at `url`.
pub fn env_file(dir: &Path, file: &str, ns: &str, url: &str) -> PathBuf {
    let values = [ns, "redis", url, url, "redis", url, "redis", url, url];
    let text: String = VARS
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let path = dir.join(file);
    std::fs::write(&path, text).expect("env file");
    path
}

/// Run `clusterops args… --env-file env`: exit code and stdout. Panics
/// when any of `secrets` shows in stdout or stderr.
pub fn run(args: &[&str], env: &Path, secrets: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args(args).arg("--env-file").arg(env);
    for v in VARS {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("the clusterops binary runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    for text in [&stdout, &stderr] {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "a password shows in `clusterops {args:?}`: {text}"
            );
        }
    }
    (out.status.code().unwrap_or(-1), stdout)
}
