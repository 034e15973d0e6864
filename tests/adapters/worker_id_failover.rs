//! Worker-ID leases on a Sentinel-managed Redis (a master, a replica and
//! three sentinels started by the test): a lease write counts only once a
//! replica acknowledged it (WAIT), and an acquisition on a master whose
//! history is unknown (a new master after a failover, a fresh namespace)
//! waits out a quarantine of one TTL. On a plain Redis nothing changes.
//! The argument is in docs/snowflake.md ("Failovers").

use crate::common;

use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::adapters::snowflake::{Snowflake, SnowflakeError, decode};
use clusterops::adapters::worker_id::{
    QUARANTINE_SKEW_SECS, RedisWorkerIds, WorkerIdAllocator, epoch_key, last_ts_key,
};
use clusterops::config::{Namespace, parse_redis_url};
use common::PrivateRedis;
use common::topology::{Secrets, SentinelSet};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(1500);
/// ceil(TTL) in seconds.
const TTL_SECS: u64 = 2;

async fn connect(url: &str) -> SharedConn {
    redis_conn::connect(&parse_redis_url(url).expect("a valid URL"))
        .await
        .expect("connect")
}

async fn start(url: &str, ns: &Namespace, node: &str) -> RedisWorkerIds {
    RedisWorkerIds::builder(connect(url).await, ns.clone(), node)
        .ttl(TTL)
        .start()
        .await
        .expect("the allocator starts")
}

/// Wait until `ids` holds a worker ID: `start` returns without one when no
/// replica acknowledged the first acquisition in time (a master whose
/// replica has just resynced after a failover, on a loaded machine), and
/// acquires at the next renewal tick.
async fn held_soon(ids: &RedisWorkerIds) {
    eventually("a worker ID held", Duration::from_secs(10), || {
        ids.lease().bounds().is_some()
    })
    .await;
}

/// Poll `f` every 10 ms until it is true; panics after `limit`.
async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first ID of `ids`, retrying through the quarantine's refusal
/// (`WorkerIdUsedUntil` when the floor is more than 2 s ahead).
async fn first_id(ids: &Snowflake, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        match ids.next_id().await {
            Ok(id) => return id,
            Err(SnowflakeError::WorkerIdUsedUntil { .. } | SnowflakeError::NoLease { .. })
                if start.elapsed() < limit =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no ID within {limit:?}: {e}"),
        }
    }
}

fn epoch_field(set: &SentinelSet, port: u16, ns: &Namespace, field: &str) -> String {
    set.data_cli(port, &["HGET", &epoch_key(ns), field])
        .unwrap_or_default()
}

fn master_replid(set: &SentinelSet, port: u16) -> String {
    set.data_cli(port, &["INFO", "replication"])
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("master_replid:").map(str::to_string))
        })
        .expect("INFO replication names the replication ID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_no_replica_acknowledged_does_not_raise_the_cap() {
    let mut set = SentinelSet::start(None, Secrets::default());
    let ns = Namespace::new("wf-ack").unwrap();
    let ids = start(&set.url(0), &ns, "node-a").await;
    let lease = ids.lease();
    eventually("a confirmed renewal", Duration::from_secs(5), || {
        lease.renewals() >= 1
    })
    .await;
    assert!(!lease.is_unconfirmed());
    let master = set.master_port();
    let replica = set.replica_port();
    let id = lease.worker_id().expect("a worker ID");

    // Freeze the replica: the master still acknowledges the renewals' writes,
    // no replica does.
    set.data_server(replica).signal("-STOP");
    let frozen_at = Instant::now();
    // One renewal interval for one that was in flight to finish.
    tokio::time::sleep(TTL / 3 + Duration::from_millis(300)).await;
    let (_, cap_before) = lease.bounds().expect("held");
    let renewals_before = lease.renewals();
    // Two more renewal ticks, all unconfirmed.
    tokio::time::sleep(TTL).await;
    let (_, cap_after) = lease.bounds().expect("still held (not lost)");
    let on_master: u64 = set
        .data_cli(master, &["GET", &last_ts_key(&ns, id)])
        .and_then(|v| v.parse().ok())
        .expect("last_ts on the master");
    let usable_now = lease.is_valid();
    let unconfirmed = lease.is_unconfirmed();
    let renewals_after = lease.renewals();
    let generator = Snowflake::new(lease.clone());
    let refused = generator.try_next_id();
    set.data_server(replica).signal("-CONT");
    assert!(
        frozen_at.elapsed() < Duration::from_secs(5),
        "the replica stayed frozen {:?}",
        frozen_at.elapsed()
    );

    assert!(unconfirmed, "the lease says no replica confirmed it");
    assert_eq!(
        cap_after, cap_before,
        "an unconfirmed renewal raised the cap"
    );
    assert_eq!(
        renewals_after, renewals_before,
        "unconfirmed renewals counted"
    );
    assert!(
        on_master > cap_after,
        "the master holds the unconfirmed cap {on_master}, the holder keeps {cap_after}"
    );
    assert!(
        !usable_now,
        "the lease ran out on its last confirmed renewal"
    );
    match refused {
        Err(SnowflakeError::NoLease { reason }) => {
            assert!(reason.contains("no Redis replica confirmed"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // The replica is back: the next renewal is confirmed, IDs resume.
    eventually(
        "a confirmed renewal after the replica resumed",
        Duration::from_secs(5),
        || lease.is_valid() && !lease.is_unconfirmed(),
    )
    .await;
    let (_, cap_resumed) = lease.bounds().expect("held");
    assert!(cap_resumed > cap_after);
    assert_eq!(lease.worker_id(), Some(id), "the same worker ID throughout");
    first_id(&generator, Duration::from_secs(5)).await;
    ids.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_on_a_new_master_waits_out_the_quarantine() {
    let set = SentinelSet::start(None, Secrets::default());
    let ns = Namespace::new("wf-quarantine").unwrap();
    let url = set.url(0);
    let old_master = set.master_port();

    // A fresh namespace on a Sentinel master: its history is unknown too.
    let a = start(&url, &ns, "node-a").await;
    held_soon(&a).await;
    let since_a: u64 = epoch_field(&set, old_master, &ns, "since")
        .parse()
        .expect("the epoch record's since");
    assert_eq!(
        epoch_field(&set, old_master, &ns, "replid"),
        master_replid(&set, old_master)
    );
    assert_eq!(epoch_field(&set, old_master, &ns, "ttl_ms"), "1500");
    let (floor_a, _) = a.lease().bounds().expect("held");
    assert!(floor_a >= since_a + TTL_SECS + QUARANTINE_SKEW_SECS);
    let ids_a = Snowflake::new(a.lease());
    let first_a = decode(first_id(&ids_a, Duration::from_secs(10)).await).unwrap();
    assert!(first_a.unix_seconds > since_a + TTL_SECS);

    let new_master = tokio::task::block_in_place(|| set.failover());
    assert_ne!(new_master, old_master);

    // A node acquiring on the new master: the record names another
    // replication ID, so the quarantine starts again from now.
    let b = start(&url, &ns, "node-b").await;
    held_soon(&b).await;
    let since_b: u64 = epoch_field(&set, new_master, &ns, "since")
        .parse()
        .expect("the new master's epoch record");
    assert_eq!(
        epoch_field(&set, new_master, &ns, "replid"),
        master_replid(&set, new_master),
        "the record names the new master"
    );
    assert!(since_b >= since_a);
    let (floor_b, _) = b.lease().bounds().expect("held");
    assert!(
        floor_b >= since_b + TTL_SECS + QUARANTINE_SKEW_SECS,
        "floor {floor_b}, quarantine since {since_b}"
    );
    let ids_b = Snowflake::new(b.lease());
    let first_b = decode(first_id(&ids_b, Duration::from_secs(10)).await).unwrap();
    assert!(
        first_b.unix_seconds > since_b + TTL_SECS,
        "first ID at {} but the quarantine runs until {}",
        first_b.unix_seconds,
        since_b + TTL_SECS
    );

    // A's lease was on the replica: A keeps its worker ID across the
    // failover and issues again (its renewals moved to the new master).
    eventually("A issuing again", Duration::from_secs(10), || {
        ids_a.try_next_id().is_ok()
    })
    .await;
    assert_ne!(a.lease().worker_id(), b.lease().worker_id());
    a.release().await.expect("release a");
    b.release().await.expect("release b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_redis_has_no_quarantine_and_no_epoch_record() {
    let redis = PrivateRedis::start();
    let ns = Namespace::new("wf-plain").unwrap();
    // A server that has just started applies the restart quarantine (its
    // start + ceil(ttl) + 1 s: tests/adapters/worker_id_restart.rs); once it
    // has been up longer than that, a fresh ID's floor is in the past.
    tokio::time::sleep(Duration::from_secs(TTL_SECS + 2)).await;
    let a = start(&redis.url(), &ns, "node-a").await;
    let (floor, _) = a.lease().bounds().expect("held");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        floor < now,
        "a fresh ID on a plain Redis up for a while has no floor ahead: {floor} vs {now}"
    );
    let started = Instant::now();
    Snowflake::new(a.lease())
        .next_id()
        .await
        .expect("an ID at once");
    assert!(started.elapsed() < Duration::from_millis(500));
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(epoch_key(&ns))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!exists, "no epoch record on a plain Redis");
    a.release().await.expect("release");
}
