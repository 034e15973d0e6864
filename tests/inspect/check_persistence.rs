//! `clusterops check`'s `redis-persistence` and the `persistence` facts of
//! `status --json`, against private Redis servers: one that keeps nothing
//! (warns, naming the URL with its password masked, and what a restart
//! costs), one with `--appendonly yes` and one with `--save "60 1"` (both
//! pass), and two whose save points cannot be read: a read-only ACL user
//! (`CONFIG` refused) and `CONFIG` renamed away (both warn that it could
//! not be determined, never fail).

use crate::common;

use common::{PrivateRedis, ReadOnlyUser, status_cli};
use serde_json::Value;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "persist-secret-pw";

/// An env file with every adapter on `url`, in `dir`.
fn env(dir: &Path, url: &str) -> PathBuf {
    let name = format!("t-persist-{:08x}", rand::random::<u32>());
    status_cli::env_file(dir, "cluster.env", &name, url)
}

/// Require `PASSWORD` on `redis` and return its URL with the password.
fn with_password(redis: &PrivateRedis) -> String {
    let client = redis::Client::open(redis.url()).expect("url");
    let mut conn = client.get_connection().expect("connection");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query::<()>(&mut conn)
        .expect("CONFIG SET requirepass");
    format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port)
}

/// `redis-persistence`'s status and reason, and the exit code.
fn check(env: &Path) -> (i32, String, String) {
    let (code, out) = status_cli::run(&["check", "--json"], env, &[PASSWORD, "ro-password"]);
    let v: Value = serde_json::from_str(&out).expect("check JSON");
    let c = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "redis-persistence")
        .unwrap_or_else(|| panic!("no redis-persistence: {out}"))
        .clone();
    (
        code,
        c["status"].as_str().unwrap_or("").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    )
}

/// `servers[0].persistence` of `status --json`.
fn persistence(env: &Path) -> Value {
    let (code, out) = status_cli::run(&["status", "--json"], env, &[PASSWORD, "ro-password"]);
    assert_eq!(code, 0, "status --json: {out}");
    let v: Value = serde_json::from_str(&out).expect("status JSON");
    v["servers"][0]["persistence"].clone()
}

#[test]
fn a_redis_that_keeps_nothing_warns_with_its_url_masked_and_what_a_restart_costs() {
    let redis = PrivateRedis::start();
    let url = with_password(&redis);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = env(dir.path(), &url);
    let (code, status, reason) = check(&env);
    assert_eq!(status, "warn", "{reason}");
    assert!(code <= 1, "a warning, not a failure: {code}");
    let masked = format!("redis://:***@127.0.0.1:{}/0", redis.port);
    assert!(
        reason.starts_with(&format!(
            "{masked} (LOCK_ADAPTER_REDIS_URL, REDIS_URL) keeps nothing \
             (no AOF, no RDB save points) across a restart"
        )),
        "{reason}"
    );
    assert!(
        reason.contains("fencing counters") && reason.contains("who holds which worker ID"),
        "{reason}"
    );
    let p = persistence(&env);
    assert_eq!(p["aof"], false, "{p}");
    assert_eq!(p["rdb_save"], "", "{p}");
    assert_eq!(p["keeps_data"], false, "{p}");
}

#[test]
fn appendonly_or_an_rdb_save_point_passes() {
    let aof = PrivateRedis::start_persistent();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_aof = env(dir.path(), &aof.url());
    let (_, status, reason) = check(&env_aof);
    assert_eq!(status, "pass", "{reason}");
    assert!(
        reason.ends_with("/0 (LOCK_ADAPTER_REDIS_URL, REDIS_URL): AOF"),
        "{reason}"
    );
    assert_eq!(persistence(&env_aof)["keeps_data"], true);

    let rdb = PrivateRedis::start_args(&["--save", "60 1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env_rdb = env(dir.path(), &rdb.url());
    let (_, status, reason) = check(&env_rdb);
    assert_eq!(status, "pass", "{reason}");
    assert!(reason.ends_with("RDB save 60 1"), "{reason}");
    let p = persistence(&env_rdb);
    assert_eq!(
        (&p["aof"], &p["rdb_save"]),
        (&Value::from(false), &Value::from("60 1"))
    );
}

#[test]
fn config_refused_or_renamed_is_could_not_be_determined_not_a_failure() {
    // A read-only monitoring user: CONFIG is refused (NOPERM).
    let redis = PrivateRedis::start();
    let user = ReadOnlyUser::create(&redis.url(), "persist");
    let dir = tempfile::tempdir().expect("tempdir");
    let env_ro = env(dir.path(), &user.url);
    let (code, status, reason) = check(&env_ro);
    assert_eq!(status, "warn", "{reason}");
    assert!(code <= 1, "{code}");
    assert!(
        reason.starts_with("could not be determined")
            && reason.contains("AOF off, RDB save points unknown (CONFIG GET save refused: NOPERM"),
        "{reason}"
    );
    let p = persistence(&env_ro);
    assert!(p["keeps_data"].is_null(), "{p}");
    assert!(
        p["rdb_save_error"]
            .as_str()
            .is_some_and(|e| e.contains("NOPERM")),
        "{p}"
    );
    drop(user);

    // CONFIG renamed away: unknown command.
    let renamed = PrivateRedis::start_args(&["--rename-command", "CONFIG", ""]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env_renamed = env(dir.path(), &renamed.url());
    let (_, status, reason) = check(&env_renamed);
    assert_eq!(status, "warn", "{reason}");
    assert!(
        reason.starts_with("could not be determined") && reason.contains("unknown command"),
        "{reason}"
    );
    // With AOF on, INFO alone says it keeps its data.
    let aof_renamed =
        PrivateRedis::start_args(&["--appendonly", "yes", "--rename-command", "CONFIG", ""]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env_aof = env(dir.path(), &aof_renamed.url());
    let (_, status, reason) = check(&env_aof);
    assert_eq!(status, "pass", "{reason}");
}
