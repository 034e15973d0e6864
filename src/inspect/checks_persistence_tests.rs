use super::*;
use crate::inspect::cluster_view::{ClusterView, ShardView};
use crate::inspect::persistence::Persistence;
use crate::inspect::servers::redis_view;

const OFF: &str = "aof_enabled:0\r\n";

fn server(used_by: &[&str], persistence: Option<Persistence>) -> ServerView {
    let mut s = redis_view(
        "redis://:***@127.0.0.1:6379/0".into(),
        used_by.iter().map(|v| v.to_string()).collect(),
        "redis_version:8.0.2\r\nrole:master\r\n",
    );
    s.persistence = persistence;
    s
}

fn snapshot(servers: Vec<ServerView>) -> Snapshot {
    Snapshot::of_servers(servers)
}

fn check(used_by: &[&str], p: Option<Persistence>) -> CheckResult {
    redis_persistence(&snapshot(vec![server(used_by, p)]))
}

#[test]
fn a_lock_or_worker_id_redis_that_keeps_nothing_warns_with_the_cost() {
    let r = check(
        &["QUEUE_ADAPTER_REDIS_URL", "REDIS_URL"],
        Some(Persistence::new(OFF, Ok(String::new()))),
    );
    assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
    assert!(
        r.reason
            .starts_with("redis://:***@127.0.0.1:6379/0 (REDIS_URL) keeps nothing")
            && r.reason.contains("fencing counters")
            && r.reason.contains("who holds which worker ID"),
        "{}",
        r.reason
    );
    // Only the cache or the queue on it: not this check's concern.
    let r = check(
        &["CACHE_REDIS_URL", "QUEUE_ADAPTER_REDIS_URL"],
        Some(Persistence::new(OFF, Ok(String::new()))),
    );
    assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
}

#[test]
fn save_points_or_aof_pass_and_unknown_says_could_not_be_determined() {
    let r = check(
        &["REDIS_URL"],
        Some(Persistence::new(OFF, Ok("60 1".into()))),
    );
    assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
    assert!(
        r.reason.ends_with("(REDIS_URL): RDB save 60 1"),
        "{}",
        r.reason
    );
    let r = check(
        &["LOCK_ADAPTER_REDIS_URL"],
        Some(Persistence::new(
            OFF,
            Err("CONFIG GET save refused: NOPERM no".into()),
        )),
    );
    assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
    assert!(
        r.reason.starts_with("could not be determined")
            && r.reason
                .contains("(LOCK_ADAPTER_REDIS_URL): AOF off, RDB save points unknown")
            && r.reason.contains("NOPERM"),
        "{}",
        r.reason
    );
    let r = check(&["REDIS_URL"], None);
    assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
    assert!(r.reason.contains("not read"), "{}", r.reason);
}

#[test]
fn an_unreadable_server_is_not_checked() {
    let mut s = server(&["REDIS_URL"], None);
    s.error = Some("connection refused".into());
    let r = redis_persistence(&snapshot(vec![s]));
    assert_eq!(r.status, CheckStatus::Fail, "{r:?}");
    assert!(r.reason.starts_with("not checked: "), "{}", r.reason);
    let r = redis_persistence(&snapshot(vec![]));
    assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
}

#[test]
fn on_a_redis_cluster_the_masters_that_keep_nothing_are_named() {
    let shard = |master: &str, aof: &str| ShardView {
        master: master.into(),
        role: None,
        slots: vec![],
        slot_count: 0,
        replicas: vec![],
        used_memory: None,
        maxmemory: None,
        keys: None,
        cluster_state: None,
        error: None,
        persistence: Some(Persistence::new(aof, Ok(String::new()))),
    };
    let cluster = ClusterView {
        shards: vec![
            shard("10.0.0.1:6379", "aof_enabled:1"),
            shard("10.0.0.2:6379", OFF),
        ],
        ..ClusterView::default()
    };
    let mut s = server(
        &["LOCK_ADAPTER_REDIS_URL"],
        Persistence::worst(cluster.shards.iter().filter_map(|m| m.persistence.as_ref())),
    );
    s.cluster = Some(cluster);
    let r = redis_persistence(&snapshot(vec![s]));
    assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
    assert!(
        r.reason.contains("master 10.0.0.2:6379 keep(s) nothing") && !r.reason.contains("10.0.0.1"),
        "{}",
        r.reason
    );
}

#[test]
fn one_redis_behind_two_databases_is_named_once() {
    let mut leases = server(
        &["REDIS_URL"],
        Some(Persistence::new(OFF, Ok(String::new()))),
    );
    leases.run_id = Some("r1".into());
    let mut locks = leases.clone();
    locks.url = "redis://:***@127.0.0.1:6379/2".into();
    locks.used_by = vec!["LOCK_ADAPTER_REDIS_URL".into()];
    let r = redis_persistence(&snapshot(vec![leases, locks]));
    assert_eq!(r.status, CheckStatus::Warn, "{r:?}");
    assert_eq!(r.reason.matches("keeps nothing").count(), 1, "{}", r.reason);
    assert!(
        r.reason.starts_with(
            "127.0.0.1:6379 (db 0, 2) (REDIS_URL, LOCK_ADAPTER_REDIS_URL) keeps nothing"
        ),
        "{}",
        r.reason
    );
}
