//! The adapters' parse halves, fed the replies a garbage key (or a short
//! pipeline) produces: every one becomes an unreadable entry naming the
//! key, nothing panics, and the good entries beside it still read.

use crate::adapters::lock::{LockReads, fence_key, lock_key, wait_key};
use crate::adapters::pubsub::StreamReads;
use crate::adapters::pubsub::keys::{cursors_key, seq_key, stream_key};
use crate::adapters::queue::{self, QueueReads};
use crate::adapters::worker_id::{
    LEASE_READ_COMMANDS, SlotLastTs, SlotLease, add_lease_reads, last_ts_key, lease_key,
    parse_leases, worker_keys_pattern,
};
use crate::config::Namespace;
use crate::node::maintenance::{self, MaintenanceRead};
use crate::node::registry::{Registry, RegistryEntry};
use redis::Value;
use std::time::Duration;

fn ns() -> Namespace {
    Namespace::new("pt").unwrap()
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn server_error(line: &str) -> Value {
    let v = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
    assert!(matches!(v, Value::ServerError(_)), "{v:?}");
    v
}

fn wrongtype() -> Value {
    server_error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

#[test]
fn lock_replies_that_are_not_locks_are_unreadable_and_named() {
    let n = ns();
    let other = Namespace::new("other").unwrap();
    let mut keys: Vec<String> = ["good", "gone", "hash", "junk", "forever", "short"]
        .iter()
        .map(|name| lock_key(&n, name))
        .collect();
    keys.push(fence_key(&n, "good"));
    keys.push(lock_key(&other, "x"));
    let reads = LockReads::from_keys(&n, keys.iter().map(|k| k.as_bytes()));
    // Sorted: forever, gone, good, hash, junk, short (fence and other ignored).
    assert_eq!(reads.commands(), 18);
    let mut pipe = redis::pipe();
    reads.add_to(&mut pipe);
    assert_eq!(pipe.len(), 18);
    // The third read of each key is the ZCARD of its wait queue.
    let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
    assert!(packed.contains(&wait_key(&n, "good")), "{packed}");
    let replies = [
        Value::Int(-1),
        bulk("3|1700000000000|0123456789abcdef|n1"),
        Value::Int(0),
        Value::Int(-2),
        Value::Nil,
        Value::Int(0),
        Value::Int(5000),
        bulk("7|1700000000000|0123456789abcdef|node|a"),
        Value::Int(4),
        Value::Int(9000),
        wrongtype(),
        Value::Int(0),
        Value::Int(9000),
        bulk("not a lock value"),
        Value::Int(0),
        // "short": one reply missing.
        Value::Int(9000),
        bulk("7|1700000000000|0123456789abcdef|node|a"),
    ];
    let found = reads.parse(&replies);
    assert_eq!(found.holders.len(), 1);
    assert_eq!(found.holders[0].name, "good");
    assert_eq!(found.holders[0].holder_node, "node|a");
    assert_eq!(found.holders[0].ttl_left, Duration::from_millis(5000));
    assert_eq!(found.holders[0].waiters, Some(4));
    let bad: Vec<(&str, &str)> = found
        .unreadable
        .iter()
        .map(|u| (u.key.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(bad[0].0 == lock_key(&n, "forever") && bad[0].1.contains("no TTL"));
    assert!(bad[1].0 == lock_key(&n, "hash") && bad[1].1.contains("WRONGTYPE"));
    assert!(bad[2].0 == lock_key(&n, "junk") && bad[2].1.contains("4 fields"));
    assert!(bad[3].0 == lock_key(&n, "short") && bad[3].1.contains("no reply"));
}

#[test]
fn lease_replies_are_read_per_slot_and_a_short_pipeline_is_an_error() {
    let n = ns();
    let mut pipe = redis::pipe();
    add_lease_reads(&mut pipe, &n);
    assert_eq!(pipe.len(), LEASE_READ_COMMANDS);
    let mut replies = vec![Value::Nil; LEASE_READ_COMMANDS];
    replies[0] = bulk(r#"{"node":"a","pid":1,"host":"h","acquired_at_ms":1,"token":"t"}"#);
    replies[1] = Value::Int(4000);
    replies[2] = bulk("1700000000");
    replies[3] = wrongtype();
    replies[4] = Value::Int(-1);
    replies[5] = bulk("soon");
    replies[6] = bulk("{broken json");
    replies[7] = Value::Int(4000);
    replies[8] = wrongtype();
    let slots = parse_leases(&n, &replies).unwrap();
    assert_eq!(slots.len(), 32);
    assert!(matches!(&slots[0].lease, SlotLease::Held { holder, .. } if holder.node == "a"));
    assert_eq!(slots[0].ttl_ms, Some(4000));
    assert!(matches!(
        slots[0].last_ts,
        SlotLastTs::At {
            unix_seconds: 1_700_000_000
        }
    ));
    assert!(
        matches!(&slots[1].lease, SlotLease::Unreadable { reason, .. } if reason.starts_with(&format!("{}:", lease_key(&n, 1))) && reason.contains("WRONGTYPE"))
    );
    assert!(
        matches!(&slots[1].last_ts, SlotLastTs::Unreadable { reason } if reason.starts_with(&last_ts_key(&n, 1)))
    );
    assert!(
        matches!(&slots[2].lease, SlotLease::Unreadable { reason, .. } if reason.contains("not a lease holder"))
    );
    assert!(matches!(&slots[2].last_ts, SlotLastTs::Unreadable { .. }));
    assert!(matches!(slots[3].lease, SlotLease::Free));
    let err = parse_leases(&n, &replies[..10]).unwrap_err().to_string();
    assert!(err.contains(&worker_keys_pattern(&n)), "{err}");
}

#[test]
fn registry_replies_that_are_not_records_are_unreadable_and_a_bad_index_is_an_error() {
    let registry = Registry::new(ns(), Duration::from_secs(6));
    let err = registry.parse_index(&wrongtype()).unwrap_err();
    assert!(
        err.starts_with(&registry.index_key()) && err.contains("WRONGTYPE"),
        "{err}"
    );
    assert!(registry.parse_index(&bulk("x")).is_err());
    assert!(
        registry
            .parse_index(&Value::Array(vec![Value::Int(1)]))
            .is_err()
    );
    let ids: Vec<String> = registry
        .parse_index(&Value::Array(vec![
            bulk("zombie"),
            bulk("gone"),
            bulk("cut"),
        ]))
        .unwrap();
    let mut pipe = redis::pipe();
    registry.add_record_reads(&mut pipe, &ids);
    assert_eq!(pipe.len(), 6);
    let entries = registry.parse_records(
        &ids,
        &[
            bulk("[]"),
            Value::Int(100),
            Value::Nil,
            Value::Int(-2),
            wrongtype(),
        ],
    );
    assert_eq!(entries.len(), 2, "gone is left out: {entries:?}");
    assert!(
        matches!(&entries[0], RegistryEntry::Unreadable { key, reason } if *key == registry.record_key("zombie") && reason.contains("not a node record"))
    );
    assert!(
        matches!(&entries[1], RegistryEntry::Unreadable { key, reason } if *key == registry.record_key("cut") && reason.contains("no reply"))
    );
}

#[test]
fn a_maintenance_flag_of_the_wrong_type_is_unreadable() {
    let n = ns();
    let mut pipe = redis::pipe();
    maintenance::add_read(&mut pipe, &n);
    assert_eq!(pipe.len(), 1);
    let key = maintenance::key(&n);
    assert!(
        matches!(maintenance::parse(&key, &wrongtype()), MaintenanceRead::Unreadable { key, .. } if key == "pt:maintenance")
    );
    assert!(matches!(
        maintenance::parse(&key, &bulk("on")),
        MaintenanceRead::Unreadable { .. }
    ));
    assert_eq!(
        maintenance::parse(&key, &Value::Nil),
        MaintenanceRead::Clear
    );
}

#[test]
fn stream_replies_that_are_not_signals_are_unreadable_and_named() {
    let n = ns();
    let keys: Vec<String> = vec![
        stream_key(&n, "chan"),
        seq_key(&n, "chan"),
        cursors_key(&n, "chan"),
        "pt:signal:{bad}:name:here".to_string(),
        stream_key(&n, "chan"),
        lock_key(&n, "x"),
    ];
    let reads = StreamReads::from_keys(&n, keys.iter().map(|k| k.as_bytes()));
    assert_eq!(reads.commands(), 3, "duplicates and other families dropped");
    let mut pipe = redis::pipe();
    reads.add_to(&mut pipe);
    assert_eq!(pipe.len(), 3);
    // Sorted keys: chan, chan:cursors, chan:seq.
    let cursors = Value::Array(vec![
        bulk("n1"),
        bulk(r#"{"id":"1-0","seq":2,"at_ms":1000}"#),
        bulk("n2"),
        bulk("garbage"),
    ]);
    let streams = reads.parse(&[wrongtype(), cursors, bulk("five")], 3000);
    let chan = streams.iter().find(|s| s.channel == "chan").unwrap();
    assert_eq!(chan.key, stream_key(&n, "chan"));
    assert_eq!(chan.per_node.len(), 1);
    assert_eq!(chan.per_node[0].node, "n1");
    assert_eq!(chan.per_node[0].last_handled_age_ms, 2000);
    let reasons: Vec<String> = chan
        .unreadable
        .iter()
        .map(|u| format!("{} {:?} {}", u.key, u.field, u.reason))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("pt:signal:{chan} None") && r.contains("WRONGTYPE"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("pt:signal:{chan}:cursors Some(\"n2\")"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("pt:signal:{chan}:seq None not an integer"))
    );
    let odd = streams
        .iter()
        .find(|s| s.channel == "{bad}:name:here")
        .unwrap();
    assert!(odd.unreadable[0].reason.contains("not a sync-signal key"));
    // Too few replies: named, not a panic.
    let c2 = stream_key(&n, "c2");
    let short = StreamReads::from_keys(&n, [c2.as_bytes()]).parse(&[], 0);
    assert!(short[0].unreadable[0].reason.contains("no reply"));
}

#[test]
fn queue_replies_that_are_not_queues_are_unreadable_and_named() {
    let n = ns();
    let keys: Vec<String> = vec![
        queue::stream_key(&n, "jobs"),
        queue::stream_key(&n, "mail"),
        queue::dead_key(&n, "mail"),
        format!("{}:extra", queue::stream_key(&n, "mail")),
        "pt:queue-names".to_string(),
    ];
    let reads = QueueReads::from_keys(&n, keys.iter().map(|k| k.as_bytes()));
    assert_eq!(reads.commands(), 18);
    let mut pipe = redis::pipe();
    reads.add_to(&mut pipe);
    assert_eq!(pipe.len(), 18);
    let group = Value::Array(vec![Value::Array(vec![
        bulk("name"),
        bulk("workers"),
        bulk("consumers"),
        Value::Int(2),
    ])]);
    let replies = [
        // jobs: a string.
        Value::SimpleString("string".into()),
        Value::SimpleString("none".into()),
        wrongtype(),
        wrongtype(),
        Value::Int(0),
        wrongtype(),
        wrongtype(),
        wrongtype(),
        Value::Nil,
        // mail: 5 entries, 2 pending, 1 dead letter, the oldest from 500
        // ms, paused.
        Value::SimpleString("stream".into()),
        Value::SimpleString("stream".into()),
        Value::Int(5),
        group,
        Value::Int(1),
        Value::Array(vec![
            Value::Int(2),
            bulk("1000-0"),
            bulk("1500-0"),
            Value::Nil,
        ]),
        Value::Array(vec![]),
        Value::Array(vec![Value::Array(vec![
            bulk("500-0"),
            Value::Array(vec![]),
        ])]),
        bulk(r#"{"by":"ann@h","reason":"smtp down","since_ms":9}"#),
    ];
    let stats = reads.parse(&replies, Some(4000));
    assert_eq!(stats.len(), 3);
    assert_eq!(stats[0].key, queue::stream_key(&n, "jobs"));
    assert!(
        stats[0]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("is a string")
    );
    let mail = &stats[1];
    assert!(mail.unreadable.is_none(), "{mail:?}");
    assert_eq!(
        (mail.waiting, mail.in_flight, mail.dead, mail.consumers),
        (3, Some(2), 1, 2)
    );
    assert_eq!(mail.oldest_pending_age_ms, Some(3000));
    assert_eq!(mail.oldest_age_ms, Some(3500));
    assert_eq!(
        mail.paused.as_ref().map(|f| f.reason.as_str()),
        Some("smtp down")
    );
    assert_eq!(stats[2].key, "pt:queue:{mail}:extra");
    assert!(stats[2].unreadable.is_some());
    // Too few replies: the queue is unreadable, not a panic.
    let q = queue::stream_key(&n, "q");
    let short = QueueReads::from_keys(&n, [q.as_bytes()]).parse(&replies[..3], None);
    assert!(short[0].unreadable.as_deref().unwrap().contains("no reply"));
}

/// Keys an older clusterops left (before hash tags), or odd shapes under a
/// family: unreadable, with the key and the layout they miss, whatever
/// their value; never a lock, a channel or a queue.
#[test]
fn keys_not_in_the_hash_tagged_layout_are_unreadable_with_the_reason() {
    let n = ns();
    let layout = "not in the hash-tagged layout";
    let old_locks: Vec<&[u8]> = vec![b"pt:lock:jobs", b"pt:lock:{a}b"];
    let reads = LockReads::from_keys(&n, old_locks);
    // Held-looking replies: the key shape alone makes them unreadable.
    let held = [
        Value::Int(5000),
        bulk("3|1700000000000|0123456789abcdef|n1"),
        Value::Int(0),
    ];
    let found = reads.parse(&[held.clone(), held].concat());
    assert!(found.holders.is_empty(), "{found:?}");
    let keys: Vec<&str> = found.unreadable.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, ["pt:lock:jobs", "pt:lock:{a}b"]);
    for u in &found.unreadable {
        let shape = lock_key(&n, "<name>");
        assert!(
            u.reason.contains(layout) && u.reason.contains(&shape),
            "{u:?}"
        );
        assert!(u.reason.contains("docs/redis-keys.md"), "{u:?}");
    }

    let old_signals: Vec<&[u8]> = vec![b"pt:signal:events", b"pt:signal:events:cursors"];
    let streams = StreamReads::from_keys(&n, old_signals);
    assert_eq!(streams.commands(), 0, "nothing of an old key is read");
    let infos = streams.parse(&[], 0);
    let bad: Vec<&str> = infos
        .iter()
        .flat_map(|i| &i.unreadable)
        .map(|u| u.key.as_str())
        .collect();
    assert_eq!(bad, ["pt:signal:events", "pt:signal:events:cursors"]);
    assert!(
        infos
            .iter()
            .flat_map(|i| &i.unreadable)
            .all(|u| u.reason.contains(layout))
    );

    let old_queues: Vec<&[u8]> = vec![b"pt:queue:jobs", b"pt:queue:jobs:dead"];
    let queues = QueueReads::from_keys(&n, old_queues);
    assert_eq!(queues.commands(), 0, "nothing of an old key is read");
    let stats = queues.parse(&[], None);
    assert_eq!(stats.len(), 2);
    for st in &stats {
        assert!(st.key.starts_with("pt:queue:jobs"), "{st:?}");
        assert!(
            st.unreadable.as_deref().unwrap_or("").contains(layout),
            "{st:?}"
        );
    }
}

#[test]
fn a_health_check_answer_is_read_into_its_kind() {
    use crate::inspect::types::{Health, HealthAnswer, NodeState};
    let read = |status, line: &str| Health::read(status, line, 1).answer;
    assert_eq!(read(Some(200), "ok"), HealthAnswer::Serving);
    assert_eq!(
        read(Some(200), "degraded: REDIS_URL unreachable for 3 s (…)"),
        HealthAnswer::Degraded
    );
    assert_eq!(
        read(
            Some(503),
            "maintenance: maintenance set by ops@web-1: upgrading to v3"
        ),
        HealthAnswer::Refused(NodeState::Maintenance)
    );
    assert_eq!(
        read(
            Some(503),
            "error: schema version 2 is newer than this binary (1)"
        ),
        HealthAnswer::Refused(NodeState::Error)
    );
    assert_eq!(
        read(Some(503), "warming_up: filling caches"),
        HealthAnswer::Refused(NodeState::Unknown("warming_up".into())),
        "a state of another version is kept as it was said"
    );
    assert_eq!(
        read(Some(503), crate::node::http::IDLE_LINE.trim_end()),
        HealthAnswer::Idle
    );
    assert_eq!(read(Some(503), "database unreachable"), HealthAnswer::Other);
    assert_eq!(
        read(Some(502), "maintenance: bad gateway"),
        HealthAnswer::Other
    );
    assert_eq!(
        read(None, "connection refused or unreachable"),
        HealthAnswer::NoAnswer
    );
    let h = Health::read(Some(503), "maintenance: upgrade", 1);
    assert!(h.refused_in(&NodeState::Maintenance) && !h.is_healthy() && !h.is_degraded());
}

#[test]
fn a_saved_health_without_its_answer_reads_it_from_status_and_detail() {
    use crate::inspect::types::{Health, HealthAnswer};
    let old = r#"{"http_status":200,"detail":"degraded: no worker ID","latency_ms":4}"#;
    let h: Health = serde_json::from_str(old).unwrap();
    assert_eq!(h.answer, HealthAnswer::Degraded);
    let back: Health = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
    assert_eq!(back, h);
}
