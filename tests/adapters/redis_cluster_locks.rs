//! The distributed lock on a real Redis Cluster started by the test: lock
//! names spread over the masters, a waiter on another node's URL is woken
//! by the release (pub/sub through the cluster), the watchdog renews, and a
//! held lock survives the failover of its master with fencing tokens still
//! rising.

use crate::common;

use clusterops::adapters::lock::{LockBackend, RedisLock};
use clusterops::config::parse_redis_url;
use common::cluster::RedisCluster;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn lock(cluster: &RedisCluster, i: usize, ns: &common::TestNs, node: &str) -> RedisLock {
    let url = parse_redis_url(&cluster.url(i)).expect("URL");
    RedisLock::connect(&url, ns.namespace(), node)
        .await
        .expect("lock on the cluster")
}

/// A key in the slot of lock `name` (its hash tag is the name).
fn slot_key(name: &str) -> String {
    format!("{{{name}}}")
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_spread_over_the_masters_and_a_release_wakes_a_waiter_on_another_node() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let ns = common::TestNs::on("rc-lock", &cluster.url(0));
    let a = lock(&cluster, 0, &ns, "node-a").await;
    let b = Arc::new(lock(&cluster, 1, &ns, "node-b").await);

    let names: Vec<String> = (0..12).map(|i| format!("job-{i}")).collect();
    let masters: BTreeSet<usize> = names
        .iter()
        .map(|n| cluster.master_of(&slot_key(n)))
        .collect();
    assert_eq!(masters.len(), 3, "12 lock names use every master");
    for name in &names {
        let g = a
            .try_acquire(name, Duration::from_secs(5))
            .await
            .expect("acquire on the cluster")
            .expect("free");
        assert!(
            b.try_acquire(name, Duration::from_secs(5))
                .await
                .expect("try")
                .is_none(),
            "{name} is held"
        );
        g.release().await.expect("release");
    }

    // Held past its TTL (the watchdog renews), while a waiter on another
    // node's URL waits; the release wakes it.
    let ttl = Duration::from_millis(900);
    let held = a
        .try_acquire("job-0", ttl)
        .await
        .expect("acquire")
        .expect("free");
    let first_token = held.fencing_token();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire("job-0", ttl, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    held.check()
        .expect("still held after almost 3 TTLs: renewed");
    assert!(!waiter.is_finished(), "the waiter waits while it is held");
    let released = Instant::now();
    held.release().await.expect("release");
    let got = waiter.await.expect("task").expect("the waiter gets it");
    println!(
        "waiter took the lock {:?} after the release",
        released.elapsed()
    );
    assert!(got.fencing_token() > first_token);
    got.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_survives_its_masters_failover_and_tokens_keep_rising() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    let ns = common::TestNs::on("rc-lock-fo", &cluster.url(0));
    let a = lock(&cluster, 0, &ns, "node-a").await;
    // Longer than a cluster failover takes (node-timeout 1 s).
    let ttl = Duration::from_secs(8);
    let held = a
        .try_acquire("jobs", ttl)
        .await
        .expect("acquire")
        .expect("free");
    let token = held.fencing_token();
    // Let the write reach the replica, then kill the lock's master.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = cluster.master_of(&slot_key("jobs"));
    cluster.kill(victim);
    tokio::task::block_in_place(|| cluster.wait_promoted(victim, Duration::from_secs(30)));
    // Two watchdog rounds (every TTL/3) on the promoted replica.
    tokio::time::sleep(Duration::from_secs(6)).await;
    held.check()
        .expect("the watchdog kept renewing on the promoted replica");
    held.release().await.expect("release on the new master");
    let b = lock(&cluster, (victim + 1) % 3, &ns, "node-b").await;
    let next = b
        .try_acquire("jobs", ttl)
        .await
        .expect("acquire after the failover")
        .expect("free");
    assert!(
        next.fencing_token() > token,
        "{} after {token}",
        next.fencing_token()
    );
    next.release().await.expect("release");
}
