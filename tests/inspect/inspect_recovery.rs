//! The inspector after its Redis comes back: the console and `status
//! --watch` keep one inspector, so it must not stay behind a reconnection
//! backoff once Redis answers again. A private Redis, killed and restarted
//! on the same port; counted in snapshots, not timed.

use crate::common;

use clusterops::config::Config;
use clusterops::inspect::{Inspector, Snapshot};
use common::PrivateRedis;
use std::time::Duration;

fn redis_error(snap: &Snapshot) -> Option<String> {
    snap.servers
        .iter()
        .find(|s| s.kind == "redis")
        .and_then(|s| s.error.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_snapshot_after_redis_is_back_reads_it_again() {
    let mut redis = PrivateRedis::start_persistent();
    let inspector = Inspector::new(Config::all_redis(&redis.url(), "recover").unwrap());
    let snap = inspector.snapshot().await;
    assert_eq!(redis_error(&snap), None);
    assert!(snap.leases.ok().is_some());

    redis.kill();
    // Snapshots while it is down, as a console refreshing every 500 ms
    // takes them: each one says so.
    for _ in 0..8 {
        let snap = inspector.snapshot().await;
        assert!(redis_error(&snap).is_some(), "{:?}", snap.servers);
        assert!(snap.leases.ok().is_none());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    redis.restart();
    let snap = inspector.snapshot().await;
    assert_eq!(redis_error(&snap), None, "{:?}", snap.servers);
    assert!(snap.leases.ok().is_some(), "{:?}", snap.leases);
}
