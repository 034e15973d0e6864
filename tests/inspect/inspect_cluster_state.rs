//! What the adapters write on a real Redis Cluster (three masters started
//! by the test) shows in a snapshot: locks, sync signals and queues written
//! through the adapters themselves, spread over every master; and the
//! bench-sized state (32 nodes, 1,000 locks, 10 streams, 10 queues) read in
//! full, with the requests it takes counted on the connection.

use crate::common;

use clusterops::adapters::lock::{LockBackend, RedisLock, lock_key};
use clusterops::adapters::pubsub::keys::stream_key;
use clusterops::adapters::pubsub::{RedisSignals, SyncSignals};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions, RedisQueue};
use clusterops::adapters::redis_conn;
use clusterops::config::{Config, Namespace, parse_redis_url};
use clusterops::inspect::sample::{self, LOCKS, NODES, QUEUES, STREAMS};
use clusterops::inspect::{Inspector, Snapshot};
use common::cluster::RedisCluster;
use std::collections::BTreeSet;
use std::time::Duration;

fn namespace() -> (String, Namespace) {
    let name = format!("t-cs-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let ns = Namespace::new(&name).expect("namespace");
    (name, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_signals_and_queues_written_by_the_adapters_show_from_every_master() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let (name, ns) = namespace();
    let url = parse_redis_url(&cluster.url(1)).expect("URL");

    let names: Vec<String> = (0..9).map(|i| format!("job-{i}")).collect();
    let on: BTreeSet<usize> = names
        .iter()
        .map(|n| cluster.master_of(&lock_key(&ns, n)))
        .collect();
    assert_eq!(on.len(), 3, "nine lock names use every master");
    let lock = RedisLock::connect(&url, ns.clone(), "node-a")
        .await
        .expect("lock on the cluster");
    let mut held = Vec::new();
    for n in &names {
        let g = lock
            .try_acquire(n, Duration::from_secs(60))
            .await
            .expect("acquire")
            .expect("free");
        held.push(g);
    }
    let signals = RedisSignals::connect(&url, ns.clone(), "node-a")
        .await
        .expect("signals on the cluster");
    for c in 0..4 {
        for m in 0..=c {
            signals
                .publish(&format!("ch-{c}"), serde_json::json!(m).into())
                .await
                .expect("publish a signal");
        }
    }
    let channels: BTreeSet<usize> = (0..4)
        .map(|c| cluster.master_of(&stream_key(&ns, &format!("ch-{c}"))))
        .collect();
    let q = RedisQueue::connect(&url, ns.clone(), "node-a", QueueOptions::default())
        .await
        .expect("queue on the cluster");
    for i in 0..5 {
        for m in 0..=i {
            q.publish(&format!("q-{i}"), format!("{m}").as_bytes())
                .await
                .expect("publish a message");
        }
    }
    let queues: BTreeSet<usize> = (0..5)
        .map(|i| cluster.master_of(&queue::stream_key(&ns, &format!("q-{i}"))))
        .collect();
    assert!(
        channels.len() > 1 && queues.len() > 1,
        "{channels:?} {queues:?}"
    );

    let config = Config::all_redis(&cluster.url(0), &name).expect("config");
    let snap = Inspector::new(config).snapshot().await;
    let locks = snap.locks.ok().expect("locks read");
    let found: Vec<&str> = locks.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(found, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        locks
            .iter()
            .all(|l| l.holder == "node-a" && l.fencing_token >= 1)
    );
    let streams = snap.streams.ok().expect("streams read");
    let lengths: Vec<(&str, u64)> = streams
        .iter()
        .map(|s| (s.channel.as_str(), s.length))
        .collect();
    assert_eq!(
        lengths,
        vec![("ch-0", 1), ("ch-1", 2), ("ch-2", 3), ("ch-3", 4)]
    );
    let waiting: Vec<(&str, u64)> = snap
        .queues
        .ok()
        .expect("queues read")
        .iter()
        .map(|q| (q.name.as_str(), q.waiting))
        .collect();
    assert_eq!(
        waiting,
        vec![("q-0", 1), ("q-1", 2), ("q-2", 3), ("q-3", 4), ("q-4", 5)]
    );
    assert!(snap.unreadable.is_empty(), "{:?}", snap.unreadable);
    for g in held {
        g.release().await.expect("release");
    }
}

fn assert_full(snap: &Snapshot) {
    let nodes = snap.nodes.ok().expect("nodes");
    assert_eq!(nodes.len(), NODES);
    let leases = snap.leases.ok().expect("leases");
    assert_eq!(leases.iter().filter(|l| l.holder.is_some()).count(), NODES);
    let locks = snap.locks.ok().expect("locks");
    assert_eq!(locks.len(), LOCKS);
    assert!(locks.iter().all(|l| l.holder_live && l.fencing_token >= 1));
    let streams = snap.streams.ok().expect("streams");
    assert_eq!(streams.len(), STREAMS);
    assert!(
        streams
            .iter()
            .all(|s| s.length == 20 && s.readers.len() == NODES)
    );
    let queues = snap.queues.ok().expect("queues");
    assert_eq!(queues.len(), QUEUES);
    assert!(queues.iter().all(|q| q.waiting == 20));
    assert!(snap.unreadable.is_empty(), "{:?}", snap.unreadable);
    let cluster = snap.servers[0].cluster.as_ref().expect("a cluster view");
    assert!(
        cluster
            .shards
            .iter()
            .all(|s| s.error.is_none() && s.keys.is_some_and(|k| k > 300)),
        "every master holds part of the state: {:?}",
        cluster.shards
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_sized_state_on_a_cluster_takes_one_request_per_master_then() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let (name, ns) = namespace();
    let url = parse_redis_url(&cluster.url(0)).expect("URL");
    let mut conn = redis_conn::connect(&url).await.expect("connect");
    sample::write_sample(&url, &ns, &mut conn)
        .await
        .expect("the sample state on a cluster");
    let inspector = Inspector::new(Config::all_redis(&cluster.url(2), &name).expect("config"));
    // First: CLUSTER SLOTS; per master its first request, then the reads
    // of the keys its SCAN found, then the first entry after each lagging
    // reader's cursor (every master holds streams, every reader lags); the
    // registry's index, then its records.
    let snap = inspector.snapshot().await;
    assert_full(&snap);
    assert_eq!(
        snap.round_trips,
        1 + 3 * 3 + 2,
        "{:?}",
        inspector.last_requests()
    );
    // Then: CLUSTER SLOTS, two requests per master (the lag read), the
    // registry.
    for _ in 0..2 {
        let snap = inspector.snapshot().await;
        assert_full(&snap);
        assert_eq!(snap.round_trips, 8, "{:?}", inspector.last_requests());
    }
}
