//! How many Redis requests a snapshot of a large cluster takes, counted on
//! the connection (not timed): the state `clusterops bench status` builds
//! (32 nodes, 1,000 locks, 10 streams, 10 queues), on a private Redis so the
//! database holds exactly that state, then with another cluster's 25,000
//! keys beside it (more than one SCAN).

use crate::common;

use clusterops::adapters::lock::lock_key;
use clusterops::clock::now_ms;
use clusterops::config::{Config, Namespace, SecretUrl};
use clusterops::inspect::server_read::SCAN_COUNT;
use clusterops::inspect::{Inspector, RequestCount, Snapshot};
use common::PrivateRedis;

use clusterops::inspect::sample::{self, LOCKS, NODES, QUEUES, STREAMS};

async fn build_state(url: &str, ns: &Namespace) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let secret = SecretUrl::parse(url, &["redis"]).unwrap();
    clusterops::inspect::sample::write_sample(&secret, ns, &mut conn)
        .await
        .unwrap();
}

fn assert_full(snap: &Snapshot) {
    let nodes = snap.nodes.ok().unwrap();
    assert_eq!(nodes.len(), NODES);
    let leases = snap.leases.ok().unwrap();
    assert_eq!(leases.iter().filter(|l| l.holder.is_some()).count(), NODES);
    let locks = snap.locks.ok().unwrap();
    assert_eq!(locks.len(), LOCKS);
    assert!(locks.iter().all(|l| l.holder_live && l.fencing_token >= 1));
    let streams = snap.streams.ok().unwrap();
    assert_eq!(streams.len(), STREAMS);
    assert!(
        streams
            .iter()
            .all(|s| s.length == 20 && s.readers.len() == NODES)
    );
    let queues = snap.queues.ok().unwrap();
    assert_eq!(queues.len(), QUEUES);
    assert!(queues.iter().all(|q| q.waiting == 20));
    assert!(snap.unreadable.is_empty(), "{:?}", snap.unreadable);
    assert!(snap.servers[0].error.is_none(), "{:?}", snap.servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_the_bench_sized_state_takes_five_requests_then_three() {
    let redis = PrivateRedis::start();
    let url = redis.url();
    let ns = Namespace::new("big").unwrap();
    build_state(&url, &ns).await;
    let inspector = Inspector::new(Config::all_redis(&url, "big").unwrap());
    // First snapshot: the registry (index, then records) beside the rest
    // (fixed keys and SCAN, then every per-key read, then the first entry
    // after each lagging reader's cursor: every reader of the sample lags,
    // so each snapshot below takes one request more than with none). (The two chains
    // connect separately, so one may finish before the other starts.)
    let snap = inspector.snapshot().await;
    assert_full(&snap);
    assert_eq!(snap.round_trips, 5);
    let RequestCount {
        sent,
        max_concurrent,
    } = inspector.last_requests();
    assert_eq!(sent, 5);
    assert!((1..=2).contains(&max_concurrent), "{max_concurrent}");
    // Next ones: the keys and nodes of the last snapshot are read with the
    // first requests; nothing changed, so nothing more is needed.
    for _ in 0..2 {
        let snap = inspector.snapshot().await;
        assert_full(&snap);
        assert_eq!(snap.round_trips, 3);
        let RequestCount {
            sent,
            max_concurrent,
        } = inspector.last_requests();
        assert_eq!(sent, 3);
        assert!((1..=2).contains(&max_concurrent), "{max_concurrent}");
    }
    // A released lock and a new one: the new key is read in one more
    // request, the gone one is left out.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(lock_key(&ns, &sample::lock_name(0)))
        .ignore()
        .cmd("SET")
        .arg(lock_key(&ns, "fresh"))
        .arg(format!("9|{}|0123456789abcdef|node-01", now_ms()))
        .arg("PX")
        .arg(600_000)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let snap = inspector.snapshot().await;
    assert_full(&snap);
    let names: Vec<&str> = snap
        .locks
        .ok()
        .unwrap()
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert!(names.contains(&"fresh") && !names.contains(&"job-0"));
    assert_eq!(snap.round_trips, 4);
    // The first request is rebuilt for the new keys: two again, and the
    // values are read fresh each time (a new holder of a known lock shows).
    let _: () = redis::cmd("SET")
        .arg(lock_key(&ns, &sample::lock_name(1)))
        .arg(format!("77|{}|fedcba9876543210|node-02", now_ms()))
        .arg("PX")
        .arg(600_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let snap = inspector.snapshot().await;
    assert_full(&snap);
    assert_eq!(snap.round_trips, 3);
    let locks = snap.locks.ok().unwrap();
    assert!(locks.iter().any(|l| l.name == "fresh"));
    let job1 = locks.iter().find(|l| l.name == "job-1").unwrap();
    assert_eq!((job1.fencing_token, job1.holder.as_str()), (77, "node-02"));

    // Another cluster's keys make the database larger than one SCAN: one
    // more request per SCAN_COUNT keys, and the same snapshot.
    for chunk in (0..25_000).collect::<Vec<u32>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("other:cache:{i}"))
                .arg(1)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let snap = inspector.snapshot().await;
    assert_full(&snap);
    let scans = u32::try_from(keys.div_ceil(SCAN_COUNT)).unwrap();
    assert!(
        (4..=2 + scans).contains(&snap.round_trips),
        "{} requests for {keys} keys",
        snap.round_trips
    );
    assert!(inspector.last_requests().max_concurrent <= 2);
}
