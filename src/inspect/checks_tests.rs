use super::*;
use crate::inspect::types::*;

fn node(id: &str) -> NodeView {
    NodeView::healthy(id)
}

fn slots(held_by: &[(u8, &str, bool)]) -> Vec<LeaseView> {
    (0..32)
        .map(|i| {
            let h = held_by.iter().find(|(id, _, _)| *id == i);
            LeaseView {
                worker_id: i,
                holder: h.map(|(_, n, _)| n.to_string()),
                holder_live: h.is_some_and(|(_, _, live)| *live),
                ttl_left_ms: h.map(|_| 5000),
                acquired_at_ms: None,
                last_ts: None,
                unreadable: None,
            }
        })
        .collect()
}

fn redis_server(used_by: &[&str], version: &str, policy: &str) -> ServerView {
    ServerView {
        kind: "redis".into(),
        url: "redis://127.0.0.1:6379/0".into(),
        used_by: used_by.iter().map(|s| s.to_string()).collect(),
        version: Some(version.into()),
        role: Some("master".into()),
        used_memory: Some(1),
        maxmemory: Some(0),
        maxmemory_policy: Some(policy.into()),
        connected_clients: Some(1),
        modules: vec![],
        error: None,
        run_id: None,
        management: None,
        topology: None,
        cluster: None,
        persistence: Some(crate::inspect::persistence::Persistence::new(
            "aof_enabled:1\r\n",
            Ok(String::new()),
        )),
    }
}

fn healthy() -> Snapshot {
    Snapshot {
        taken_at_ms: 0,
        took_ms: 1,
        cluster: "c".into(),
        config_fingerprint: "fp".into(),
        nodes: Source::Ok(vec![node("a"), node("b"), node("c")]),
        leases: Source::Ok(slots(&[(0, "a", true), (1, "b", true), (2, "c", true)])),
        locks: Source::Ok(vec![]),
        streams: Source::Ok(vec![]),
        queues: Source::Ok(vec![]),
        maintenance: Source::Ok(None),
        servers: vec![redis_server(
            &["LOCK_ADAPTER_REDIS_URL", "QUEUE_ADAPTER_REDIS_URL"],
            "8.0.2",
            "noeviction",
        )],
        drift: Drift::default(),
        unreadable: vec![],
        round_trips: 3,
        inspector_clock: None,
    }
}

fn clustered() -> Config {
    let vars = [
        ("CACHE_DEFAULT_STORE", "redis"),
        ("CACHE_REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("PUBSUB_ADAPTER_REDIS_URL", "redis://127.0.0.1:6379/1"),
        ("LOCK_ADAPTER_DEFAULT", "redis"),
        ("LOCK_ADAPTER_REDIS_URL", "redis://127.0.0.1:6379/2"),
        ("QUEUE_ADAPTER", "redis"),
        ("QUEUE_ADAPTER_REDIS_URL", "redis://127.0.0.1:6379/3"),
        ("REDIS_URL", "redis://127.0.0.1:6379/4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_vars(&vars).unwrap()
}

fn status_of(results: &[CheckResult], id: &str) -> CheckStatus {
    results
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.status)
        .unwrap()
}

#[test]
fn a_healthy_cluster_passes_every_check() {
    let results = run(&clustered(), &healthy());
    for r in &results {
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
    }
    assert_eq!(exit_code(&results), 0);
    assert_eq!(verdict(&healthy(), &results), Verdict::Healthy);
}

#[test]
fn fingerprint_and_version_drift_fail() {
    let mut s = healthy();
    s.drift.fingerprint = vec!["c".into()];
    s.drift.version = vec!["c".into()];
    s.drift.majority_version = Some("2".into());
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[2].config_drift = vec!["APP_KEY".into()];
    }
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "same-fingerprint"), CheckStatus::Fail);
    assert!(r.iter().any(|c| c.reason.contains("c differs in APP_KEY")));
    assert_eq!(status_of(&r, "same-version"), CheckStatus::Fail);
    assert_eq!(exit_code(&r), 2);
    assert_eq!(verdict(&s, &r), Verdict::Degraded);
}

#[test]
fn several_nodes_on_memory_adapters_fail_and_one_node_warns() {
    let r = run(&Config::default(), &healthy());
    assert_eq!(status_of(&r, "shared-adapters"), CheckStatus::Fail);
    let mut one = healthy();
    one.nodes = Source::Ok(vec![node("a")]);
    let r = run(&Config::default(), &one);
    assert_eq!(status_of(&r, "shared-adapters"), CheckStatus::Warn);
}

#[test]
fn adapters_sharing_a_database_warn() {
    let c = Config::all_redis("redis://127.0.0.1:6379/0", "c").unwrap();
    let r = run(&c, &healthy());
    assert_eq!(status_of(&r, "separate-redis-databases"), CheckStatus::Warn);
    assert_eq!(exit_code(&r), 1);
}

#[test]
fn old_redis_without_bloom_warns_and_old_rabbitmq_warns() {
    let mut s = healthy();
    s.servers = vec![redis_server(&["CACHE_REDIS_URL"], "7.0.15", "noeviction")];
    let mut rabbit = redis_server(&["QUEUE_ADAPTER_RABBITMQ_URL"], "3.12.1", "");
    rabbit.kind = "rabbitmq".into();
    rabbit.maxmemory_policy = None;
    s.servers.push(rabbit);
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "redis-version"), CheckStatus::Warn);
    assert_eq!(status_of(&r, "rabbitmq-version"), CheckStatus::Warn);
    s.servers[0].modules = vec!["bf".into()];
    s.servers[1].version = Some("4.0.5".into());
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "redis-version"), CheckStatus::Pass);
    assert_eq!(status_of(&r, "rabbitmq-version"), CheckStatus::Pass);
}

#[test]
fn rabbitmq_management_warns_when_the_api_does_not_answer() {
    let mut s = healthy();
    assert_eq!(
        status_of(&run(&clustered(), &s), "rabbitmq-management"),
        CheckStatus::Pass,
        "not on RabbitMQ"
    );
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("QUEUE_ADAPTER".to_string(), "rabbitmq".to_string());
    vars.insert(
        "QUEUE_ADAPTER_RABBITMQ_URL".to_string(),
        "amqp://app:pw@mq:5672/%2f".to_string(),
    );
    let cfg = Config::from_vars(&vars).unwrap();
    let mut rabbit = redis_server(&["QUEUE_ADAPTER_RABBITMQ_URL"], "4.0.5", "");
    rabbit.kind = "rabbitmq".into();
    rabbit.management = Some("management API http://mq:15672: not reachable".into());
    s.servers.push(rabbit.clone());
    let r = run(&cfg, &s);
    assert_eq!(status_of(&r, "rabbitmq-management"), CheckStatus::Warn);
    rabbit.management = Some("ok".into());
    s.servers = vec![rabbit];
    assert_eq!(
        status_of(&run(&cfg, &s), "rabbitmq-management"),
        CheckStatus::Pass
    );
}

#[test]
fn an_evicting_lock_or_queue_redis_fails() {
    let mut s = healthy();
    s.servers = vec![redis_server(
        &["QUEUE_ADAPTER_REDIS_URL"],
        "8.0.0",
        "allkeys-lru",
    )];
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "eviction-policy"), CheckStatus::Fail);
    // The cache may evict.
    s.servers = vec![redis_server(&["CACHE_REDIS_URL"], "8.0.0", "allkeys-lru")];
    assert_eq!(
        status_of(&run(&clustered(), &s), "eviction-policy"),
        CheckStatus::Pass
    );
}

#[test]
fn no_free_worker_id_or_too_many_nodes_fail_and_stale_holders_warn() {
    let mut s = healthy();
    let all: Vec<(u8, String, bool)> = (0..32).map(|i| (i, format!("n{i}"), true)).collect();
    let refs: Vec<(u8, &str, bool)> = all.iter().map(|(i, n, l)| (*i, n.as_str(), *l)).collect();
    s.leases = Source::Ok(slots(&refs));
    assert_eq!(
        status_of(&run(&clustered(), &s), "worker-id-capacity"),
        CheckStatus::Fail
    );
    s.nodes = Source::Ok((0..33).map(|i| node(&format!("n{i}"))).collect());
    s.leases = Source::Ok(slots(&[]));
    let r = run(&clustered(), &s);
    assert!(
        r.iter()
            .any(|c| c.id == "worker-id-capacity" && c.reason.contains("33 nodes"))
    );
    let mut s = healthy();
    s.leases = Source::Ok(slots(&[(0, "a", true), (5, "dead-node", false)]));
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "stale-worker-ids"), CheckStatus::Warn);
    assert!(r.iter().any(|c| c.reason.contains("5 held by dead-node")));
}

#[test]
fn unshared_storage_fails() {
    let mut s = healthy();
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[1].storage_shared = Some(false);
        nodes[1].storage_reason =
            Some("storage is not shared: /srv cannot see the marker of a".into());
    }
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "shared-storage"), CheckStatus::Fail);
    assert!(
        r.iter()
            .any(|c| c.reason.contains("cannot see the marker of a"))
    );
}

#[test]
fn a_node_in_error_or_unhealthy_fails() {
    let mut s = healthy();
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[0].id.state = NodeState::Error;
        nodes[0].id.state_reason = "schema version 3 is newer".into();
        nodes[1].health = Health::read(None, "connection refused or unreachable", 1);
    }
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "nodes-healthy"), CheckStatus::Fail);
    let reason = &r.iter().find(|c| c.id == "nodes-healthy").unwrap().reason;
    assert!(
        reason.contains("a (error") && reason.contains("b (running, connection refused"),
        "{reason}"
    );
    assert_eq!(verdict(&s, &r), Verdict::Degraded);
}

#[test]
fn a_degraded_node_warns_and_a_healthy_one_passes() {
    let mut s = healthy();
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "nodes-healthy"), CheckStatus::Pass);
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[1].health = Health::read(Some(200), "degraded: REDIS_URL unreachable for 3 s", 1);
    }
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "nodes-healthy"), CheckStatus::Warn);
    let reason = &r.iter().find(|c| c.id == "nodes-healthy").unwrap().reason;
    assert!(
        reason.contains("b (degraded: REDIS_URL unreachable"),
        "{reason}"
    );
}

#[test]
fn an_unreachable_redis_fails_and_the_cluster_is_down() {
    let mut s = healthy();
    s.nodes = Source::Unavailable {
        source: "REDIS_URL redis://127.0.0.1:6399/4".into(),
        reason: "connection refused".into(),
    };
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "sources-reachable"), CheckStatus::Fail);
    assert_eq!(verdict(&s, &r), Verdict::Down);
}

#[test]
fn unreadable_keys_warn() {
    let mut s = healthy();
    s.unreadable = vec![
        Unreadable {
            key: "c:lock:{x}".into(),
            reason: "not a lock value".into(),
        },
        // An old-layout key (before hash tags).
        Unreadable {
            key: "c:lock:y".into(),
            reason: crate::adapters::hash_tag::layout_reason("c:lock:{<name>}"),
        },
    ];
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "unreadable-keys"), CheckStatus::Warn);
    assert!(
        r.iter()
            .any(|c| c.id == "unreadable-keys" && c.reason.contains("c:lock:y")),
        "{r:?}"
    );
}

#[test]
fn a_check_whose_source_is_unreachable_never_passes() {
    let mut s = healthy();
    fn down<T>() -> Source<T> {
        Source::Unavailable {
            source: "REDIS_URL redis://127.0.0.1:1/0".into(),
            reason: "connection refused".into(),
        }
    }
    s.nodes = down();
    s.leases = down();
    for server in &mut s.servers {
        server.version = None;
        server.maxmemory_policy = None;
        server.error = Some("connection refused (os error 111)".into());
    }
    s.servers[0].used_by.push("REDIS_URL".into());
    let r = run(&clustered(), &s);
    for id in [
        "same-version",
        "same-fingerprint",
        "eviction-policy",
        "worker-id-capacity",
        "redis-version",
        "stale-worker-ids",
        "clock-skew",
        "shared-storage",
    ] {
        assert_eq!(status_of(&r, id), CheckStatus::Fail, "{id}: {r:?}");
        let reason = &r.iter().find(|c| c.id == id).unwrap().reason;
        assert!(reason.starts_with("not checked: "), "{id}: {reason}");
        assert!(reason.contains("127.0.0.1:"), "{id}: {reason}");
    }
    assert!(
        !r.iter()
            .any(|c| c.id == "worker-id-capacity" && c.reason.contains("REDIS_URL unset"))
    );
    assert_eq!(exit_code(&r), 2);
}

#[test]
fn leases_not_configured_still_pass_worker_id_capacity() {
    let mut s = healthy();
    s.leases = Source::NotConfigured;
    let r = run(&clustered(), &s);
    assert_eq!(status_of(&r, "worker-id-capacity"), CheckStatus::Pass);
}

#[test]
fn the_allow_list_names_every_check_in_order() {
    let ids: Vec<String> = run(&clustered(), &healthy())
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, crate::inspect::check_allow::CHECK_IDS);
}

#[test]
fn a_node_idle_by_worker_mode_answering_503_is_not_unhealthy() {
    let idle_health = Health::read(Some(503), "idle: WORKER_MODE=- (…)", 1);
    let mut s = healthy();
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[0].worker_mode = crate::config::WorkerMode::Idle;
        nodes[0].health = idle_health.clone();
    }
    assert_eq!(nodes_healthy(&s).status, CheckStatus::Pass);
    // The same 503 from a node that should serve is a failure.
    if let Source::Ok(nodes) = &mut s.nodes {
        nodes[0].worker_mode = crate::config::WorkerMode::HttpOnly;
    }
    assert_eq!(nodes_healthy(&s).status, CheckStatus::Fail);
}
