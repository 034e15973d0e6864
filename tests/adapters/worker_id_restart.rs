//! Worker-ID leases on one Redis server that restarts without its data (no
//! AOF, no RDB save points): the leases and the `last_ts` floors are gone,
//! and the old holder still issues until its next renewal finds its lease
//! missing. The acquire script's restart quarantine (server start +
//! ceil(TTL) + 1 s) keeps a new holder of the same worker ID above every
//! second the old one issued; a server up for longer than that costs a
//! first acquisition nothing.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::adapters::snowflake::{Snowflake, decode};
use clusterops::adapters::worker_id::{RedisWorkerIds, WorkerIdAllocator};
use clusterops::config::{Namespace, SecretUrl};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_millis(900);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn start(url: &str, ns: &Namespace, node: &str) -> RedisWorkerIds {
    let conn = redis_conn::connect(&SecretUrl::parse(url, &["redis"]).unwrap())
        .await
        .unwrap();
    RedisWorkerIds::builder(conn, ns.clone(), node)
        .ttl(TTL)
        .start()
        .await
        .unwrap()
}

/// The first ID `generator` issues, waiting out floors (at most 10 s).
async fn first_id(generator: &Snowflake) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match generator.try_next_id() {
            Ok(id) => return id,
            Err(e) => {
                assert!(Instant::now() < deadline, "no ID within 10 s: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_that_lost_the_floors_a_new_holder_issues_above_the_old_holder() {
    let mut redis = common::PrivateRedis::start();
    let url = redis.url();
    let ns = Namespace::new(&format!("t-wid-restart-{:08x}", rand::random::<u32>())).unwrap();

    // A holds worker ID 0 and issues continuously.
    let a = start(&url, &ns, "node-a").await;
    let a_gen = Arc::new(Snowflake::new(a.lease()));
    first_id(&a_gen).await;
    assert_eq!(a.lease().worker_id(), Some(0));
    let stop = Arc::new(AtomicBool::new(false));
    let issuing = {
        let (a_gen, stop) = (a_gen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stop.load(Ordering::Acquire) {
                if let Ok(id) = a_gen.try_next_id() {
                    ids.push(id);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Redis restarts empty; B takes a worker ID at once: ID 0 again (every
    // ID is free and never used as far as Redis knows).
    let restarted_at = unix_now();
    redis.restart();
    let b = start(&url, &ns, "node-b").await;
    assert_eq!(b.lease().worker_id(), Some(0));
    let b_gen = Snowflake::new(b.lease());
    let b_first = first_id(&b_gen).await;
    let mut b_ids = vec![b_first];
    for _ in 0..1000 {
        if let Ok(id) = b_gen.try_next_id() {
            b_ids.push(id);
        }
    }
    stop.store(true, Ordering::Release);
    let a_ids = issuing.await.unwrap();

    // B issues nothing before the server's start + ceil(TTL) + 1 s has
    // passed (the floor is that second; B issues above it).
    let b_from = decode(b_first).unwrap().unix_seconds;
    assert!(
        b_from >= restarted_at + 3,
        "B issued in second {b_from}, Redis restarted in {restarted_at}"
    );
    // Every ID A issued under worker ID 0, before and after the restart
    // (until it found its lease gone), is in an earlier second than B's.
    let a_last = a_ids
        .iter()
        .filter_map(|id| decode(*id).ok())
        .filter(|d| d.worker_id == 0)
        .map(|d| d.unix_seconds)
        .max()
        .unwrap();
    assert!(a_last < b_from, "A issued up to {a_last}, B from {b_from}");
    let a_set: std::collections::HashSet<u64> = a_ids.into_iter().collect();
    assert!(b_ids.iter().all(|id| !a_set.contains(id)));
    a.release().await.ok();
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_server_up_for_longer_than_the_quarantine_the_first_id_comes_at_once() {
    let redis = common::PrivateRedis::start();
    // The quarantine lasts the server's start + ceil(0.9 s) + 1 s.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let ns = Namespace::new(&format!("t-wid-uptime-{:08x}", rand::random::<u32>())).unwrap();
    let a = start(&redis.url(), &ns, "node-a").await;
    let generator = Snowflake::new(a.lease());
    let id = generator.try_next_id();
    assert!(id.is_ok(), "{id:?}");
    a.release().await.unwrap();
}
