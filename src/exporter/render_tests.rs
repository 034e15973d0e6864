//! The exposition of hand-made snapshots: values, labels and escaping, the
//! shape the text format requires, and what a scrape without a snapshot
//! still says.

use super::render::{Counters, LOCK_SERIES_MAX, ReadError, Scrape, read_errors, render};
use crate::inspect::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

fn lease(worker_id: u8, holder: Option<&str>, live: bool) -> LeaseView {
    LeaseView {
        worker_id,
        holder: holder.map(str::to_string),
        holder_live: live,
        ttl_left_ms: holder.map(|_| 9000),
        acquired_at_ms: holder.map(|_| 1),
        last_ts: None,
        unreadable: None,
    }
}

fn lock(name: &str, holder: &str, age_ms: u64, waiters: Option<u32>) -> LockView {
    LockView {
        name: name.into(),
        holder: holder.into(),
        holder_live: holder.starts_with("node-"),
        acquired_at_ms: 0,
        age_ms,
        ttl_left_ms: 5000,
        fencing_token: 7,
        waiters,
    }
}

/// Two nodes (one in maintenance answering 503), 3 of 32 worker IDs held
/// (one by a ghost), two locks, a lagging reader, a queue with dead letters,
/// one Redis server with an eviction policy to fix.
fn snapshot() -> Snapshot {
    let info = "# Server\r\nredis_version:8.0.2\r\n# Replication\r\nrole:master\r\n\
                # Memory\r\nused_memory:1048576\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\
                # Clients\r\nconnected_clients:12\r\n";
    let mut snap = Snapshot::of_servers(vec![servers::redis_view(
        "redis://:***@10.0.0.5:6379/0".into(),
        vec!["REDIS_URL".into()],
        info,
    )]);
    snap.took_ms = 14;
    snap.round_trips = 3;
    let a = NodeView::healthy("node-a");
    let mut b = NodeView::healthy("node-\"b\"");
    b.id.state = NodeState::Maintenance;
    b.id.app_version = "3".into();
    b.health.http_status = Some(503);
    b.health.latency_ms = 250;
    b.heartbeat_age_ms = 4500;
    b.clock_offset = None;
    b.worker_mode = WorkerMode::Topics(vec!["mail".into(), "pdf".into()]);
    snap.nodes = Source::Ok(vec![a, b]);
    let mut slots: Vec<LeaseView> = (0..32).map(|w| lease(w, None, false)).collect();
    slots[0] = lease(0, Some("node-a"), true);
    slots[1] = lease(1, Some("node-a"), true);
    slots[5] = lease(5, Some("ghost"), false);
    slots[6].unreadable = Some("garbage".into());
    snap.leases = Source::Ok(slots);
    snap.locks = Source::Ok(vec![
        lock("nightly\\report", "batch-job", 90_000, Some(2)),
        lock("orders", "node-a", 1_500, Some(0)),
    ]);
    snap.streams = Source::Ok(vec![StreamView {
        channel: "reports".into(),
        length: 40,
        first_id: None,
        last_id: None,
        readers: vec![StreamReader {
            node_id: "node-a".into(),
            live: true,
            last_id: "1-0".into(),
            lag: 5,
            last_handled_age_ms: Some(61_000),
            oldest_unhandled_age_ms: None,
        }],
    }]);
    snap.queues = Source::Ok(vec![QueueView {
        name: "mail".into(),
        backend: "redis".into(),
        waiting: 7,
        in_flight: 1,
        oldest_in_flight_age_ms: Some(2_500),
        dead_letters: 2,
        consumers: 3,
        ack_rate: None,
        oldest_age_ms: None,
        paused: None,
    }]);
    snap.maintenance = Source::Ok(Some(MaintenanceView {
        by: "ops".into(),
        reason: "upgrade".into(),
        since_ms: 0,
    }));
    snap.drift.version = vec!["node-\"b\"".into()];
    snap
}

fn checks() -> Vec<CheckResult> {
    let r = |id: &str, status| CheckResult {
        id: id.into(),
        status,
        reason: "r".into(),
    };
    vec![
        r("sources-reachable", CheckStatus::Pass),
        r("eviction-policy", CheckStatus::Warn),
        r("same-version", CheckStatus::Fail),
    ]
}

fn body_of(snap: Option<&Snapshot>, counters: &Counters) -> String {
    let checks = checks();
    render(&Scrape {
        snapshot: snap,
        checks: if snap.is_some() { &checks } else { &[] },
        verdict: snap.map(|_| Verdict::Degraded),
        snapshot_age: Duration::from_millis(400),
        scrape_duration: Duration::from_millis(16),
        counters,
    })
}

/// The value of the sample written exactly as `series` (name and labels).
fn value(body: &str, series: &str) -> f64 {
    let found: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "one sample {series} in:\n{body}");
    found[0].parse().unwrap()
}

#[test]
fn a_snapshot_becomes_one_gauge_per_fact_an_operator_alerts_on() {
    let snap = snapshot();
    let body = body_of(Some(&snap), &Counters::default());
    let v = |series: &str| value(&body, series);
    assert_eq!(v("clusterops_up"), 1.0);
    assert_eq!(v("clusterops_nodes"), 2.0);
    assert_eq!(v("clusterops_node_up{node=\"node-a\"}"), 1.0);
    assert_eq!(v("clusterops_node_up{node=\"node-\\\"b\\\"\"}"), 0.0);
    assert_eq!(
        v("clusterops_node_state{node=\"node-\\\"b\\\"\",state=\"maintenance\"}"),
        1.0
    );
    assert_eq!(
        v("clusterops_node_state{node=\"node-\\\"b\\\"\",state=\"running\"}"),
        0.0
    );
    assert_eq!(
        v("clusterops_node_health_latency_seconds{node=\"node-\\\"b\\\"\"}"),
        0.25
    );
    assert_eq!(
        v("clusterops_node_heartbeat_age_seconds{node=\"node-\\\"b\\\"\"}"),
        4.5
    );
    assert!(body.contains(
        "clusterops_node_info{node=\"node-a\",host=\"h\",address=\"127.0.0.1:1\",version=\"2\",schema_version=\"2\",\
         worker_mode=\"all\",worker_topics=\"\"} 1\n"
    ));
    assert!(body.contains("worker_mode=\"topics\",worker_topics=\"mail,pdf\"} 1\n"));
    assert_eq!(
        v("clusterops_node_clock_offset_seconds{node=\"node-a\"}"),
        0.0003
    );
    assert_eq!(v("clusterops_worker_ids_capacity"), 32.0);
    assert_eq!(v("clusterops_worker_ids_held"), 3.0);
    assert_eq!(
        v("clusterops_worker_ids_free"),
        28.0,
        "the unreadable slot is neither"
    );
    assert_eq!(v("clusterops_worker_ids_stale"), 1.0);
    assert_eq!(v("clusterops_worker_ids_by_holder{holder=\"node-a\"}"), 2.0);
    assert_eq!(v("clusterops_worker_ids_by_holder{holder=\"ghost\"}"), 1.0);
    assert_eq!(v("clusterops_locks_held"), 2.0);
    assert_eq!(v("clusterops_locks_unregistered_holder"), 1.0);
    assert_eq!(v("clusterops_locks_waiters"), 2.0);
    assert_eq!(
        v("clusterops_lock_hold_age_seconds{lock=\"nightly\\\\report\",holder=\"batch-job\"}"),
        90.0
    );
    assert_eq!(
        v("clusterops_lock_waiters{lock=\"nightly\\\\report\"}"),
        2.0
    );
    assert_eq!(v("clusterops_stream_length{channel=\"reports\"}"), 40.0);
    assert_eq!(
        v("clusterops_stream_reader_lag{channel=\"reports\",node=\"node-a\"}"),
        5.0
    );
    assert_eq!(
        v("clusterops_stream_reader_last_handled_age_seconds{channel=\"reports\",node=\"node-a\"}"),
        61.0
    );
    let q = "{queue=\"mail\",backend=\"redis\"}";
    assert_eq!(v(&format!("clusterops_queue_waiting{q}")), 7.0);
    assert_eq!(v(&format!("clusterops_queue_in_flight{q}")), 1.0);
    assert_eq!(v(&format!("clusterops_queue_dead_letters{q}")), 2.0);
    assert_eq!(v(&format!("clusterops_queue_consumers{q}")), 3.0);
    assert_eq!(
        v(&format!("clusterops_queue_oldest_in_flight_age_seconds{q}")),
        2.5
    );
    assert!(
        !body.contains("clusterops_queue_acks_per_second{"),
        "unknown rate: no sample"
    );
    let s = "{kind=\"redis\",server=\"redis://:***@10.0.0.5:6379/0\"}";
    assert_eq!(v(&format!("clusterops_server_up{s}")), 1.0);
    assert_eq!(
        v("clusterops_server_warnings{kind=\"redis\",instance=\"10.0.0.5:6379\"}"),
        1.0,
        "allkeys-lru"
    );
    assert_eq!(
        v(&format!("clusterops_server_used_memory_bytes{s}")),
        1_048_576.0
    );
    assert_eq!(v("clusterops_maintenance"), 1.0);
    assert_eq!(v("clusterops_drift_nodes{kind=\"version\"}"), 1.0);
    assert_eq!(
        v("clusterops_check_status{check=\"sources-reachable\"}"),
        0.0
    );
    assert_eq!(v("clusterops_check_status{check=\"eviction-policy\"}"), 1.0);
    assert_eq!(v("clusterops_check_status{check=\"same-version\"}"), 2.0);
    assert_eq!(v("clusterops_verdict{verdict=\"degraded\"}"), 1.0);
    assert_eq!(v("clusterops_verdict{verdict=\"healthy\"}"), 0.0);
    assert_eq!(v("clusterops_snapshot_duration_seconds"), 0.014);
    assert_eq!(v("clusterops_snapshot_age_seconds"), 0.4);
    assert_eq!(v("clusterops_exporter_scrape_duration_seconds"), 0.016);
    assert_eq!(
        v("clusterops_exporter_scrape_errors_total{source=\"timeout\"}"),
        0.0
    );
}

/// Every sample belongs to the family whose `# TYPE` came last, every
/// family is typed once with a help line, and no sample is written twice.
fn assert_well_formed(body: &str) {
    let mut typed = HashSet::new();
    let mut current = String::new();
    let mut seen = HashSet::new();
    let mut helped = HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_string()), "two HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            let kind = parts.next().unwrap();
            assert!(kind == "gauge" || kind == "counter", "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(helped.contains(&name), "HELP before TYPE: {line}");
            assert!(typed.insert(name.clone()), "family {name} written twice");
            current = name;
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "sample outside its family: {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(seen.insert(series.to_string()), "duplicate series {series}");
        }
    }
}

#[test]
fn the_body_keeps_each_family_together_typed_once_with_unique_series() {
    let snap = snapshot();
    assert_well_formed(&body_of(Some(&snap), &Counters::default()));
    assert_well_formed(&body_of(None, &Counters::default()));
}

#[test]
fn a_read_that_timed_out_still_answers_with_up_0_and_the_error_counts() {
    let counters = Counters {
        scrapes: 4,
        snapshot_reads: 3,
        errors: BTreeMap::from([(ReadError::Timeout, 1), (ReadError::Nodes, 2)]),
    };
    let body = body_of(None, &counters);
    assert_eq!(value(&body, "clusterops_up"), 0.0);
    assert_eq!(value(&body, "clusterops_exporter_scrapes_total"), 4.0);
    assert_eq!(
        value(&body, "clusterops_exporter_snapshot_reads_total"),
        3.0
    );
    let errors = |s: &str| {
        value(
            &body,
            &format!("clusterops_exporter_scrape_errors_total{{source=\"{s}\"}}"),
        )
    };
    assert_eq!(errors("timeout"), 1.0);
    assert_eq!(errors("nodes"), 2.0);
    assert_eq!(errors("locks"), 0.0);
    assert!(
        !body.contains("clusterops_nodes"),
        "no snapshot, no cluster facts"
    );
}

#[test]
fn an_unreachable_source_is_up_0_and_counted_as_a_read_error() {
    let mut snap = snapshot();
    fn down<T>() -> Source<T> {
        Source::Unavailable {
            source: "REDIS_URL redis://:***@127.0.0.1:1/0".into(),
            reason: "connection refused".into(),
        }
    }
    snap.nodes = down();
    snap.maintenance = down();
    snap.servers[0].error = Some("connection refused".into());
    snap.queues = Source::NotConfigured;
    assert_eq!(
        read_errors(&snap),
        vec![ReadError::Nodes, ReadError::Maintenance, ReadError::Servers]
    );
    let body = body_of(Some(&snap), &Counters::default());
    assert_eq!(value(&body, "clusterops_up"), 0.0);
    assert_eq!(value(&body, "clusterops_source_up{source=\"nodes\"}"), 0.0);
    assert_eq!(value(&body, "clusterops_source_up{source=\"locks\"}"), 1.0);
    assert!(
        !body.contains("clusterops_source_up{source=\"queues\"}"),
        "not configured"
    );
    assert!(
        !body.contains("clusterops_maintenance "),
        "unknown, not set"
    );
    assert!(!body.contains("clusterops_nodes "));
    let s = "{kind=\"redis\",server=\"redis://:***@10.0.0.5:6379/0\"}";
    assert_eq!(value(&body, &format!("clusterops_server_up{s}")), 0.0);
    assert!(
        !body.contains("connection refused"),
        "reasons are not labels"
    );
}

#[test]
fn per_lock_series_stop_at_the_longest_held_few_hundred() {
    let mut snap = snapshot();
    let many: Vec<LockView> = (0..LOCK_SERIES_MAX as u64 + 50)
        .map(|i| lock(&format!("l{i}"), "node-a", i * 10, None))
        .collect();
    snap.locks = Source::Ok(many);
    let body = body_of(Some(&snap), &Counters::default());
    assert_eq!(
        value(&body, "clusterops_locks_held"),
        (LOCK_SERIES_MAX + 50) as f64
    );
    let listed = body
        .lines()
        .filter(|l| l.starts_with("clusterops_lock_hold_age_seconds{"))
        .count();
    assert_eq!(listed, LOCK_SERIES_MAX);
    assert!(body.contains("lock=\"l249\""), "the longest held is listed");
    assert!(!body.contains("lock=\"l0\""), "the shortest is not");
}
