//! Worker-ID leases against the real Redis: allocation of the 32 IDs,
//! fencing when the lease is deleted, taken over or not renewed,
//! re-acquisition, the last_ts reuse floor, release, the inspector.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::adapters::redis_conn::SharedConn;
use clusterops::adapters::snowflake::{Snowflake, SnowflakeError, decode};
use clusterops::adapters::worker_id::{
    HolderInfo, LeaseStatus, RedisWorkerIds, SlotLastTs, SlotLease, WorkerIdAllocator,
    WorkerIdError, force_free, from_config, last_ts_key, lease_key, read_leases,
};
use clusterops::config::{Config, SecretUrl};
use common::TestNs;
use redis::AsyncCommands;
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_millis(900);
const LIVENESS: Duration = Duration::from_secs(5);

async fn conn(ns: &TestNs) -> SharedConn {
    redis_conn::connect(&SecretUrl::parse(&ns.url, &["redis"]).unwrap())
        .await
        .unwrap()
}

async fn start(ns: &TestNs, node: &str) -> Result<RedisWorkerIds, WorkerIdError> {
    RedisWorkerIds::builder(conn(ns).await, ns.namespace(), node)
        .ttl(TTL)
        .start()
        .await
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Poll `f` every 2 ms until it returns true or `LIVENESS` passes.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < LIVENESS,
            "not within {LIVENESS:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

/// Occupy lease keys by hand with well-formed foreign holders.
async fn occupy(c: &mut SharedConn, ns: &TestNs, ids: impl IntoIterator<Item = u8>) {
    for id in ids {
        let value = HolderInfo::for_this_process(&format!("filler-{id}")).to_value();
        let _: () = c
            .pset_ex(lease_key(&ns.namespace(), id), value, 30_000)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_three_nodes_get_thirty_two_distinct_ids_and_one_clear_error() {
    let ns = TestNs::new("wid-33");
    let mut tasks = Vec::new();
    for i in 0..33 {
        let url = ns.url.clone();
        let namespace = ns.namespace();
        tasks.push(tokio::spawn(async move {
            let c = redis_conn::connect(&SecretUrl::parse(&url, &["redis"]).unwrap())
                .await
                .unwrap();
            RedisWorkerIds::builder(c, namespace, format!("node-{i:02}"))
                .ttl(Duration::from_millis(1500))
                .start()
                .await
        }));
    }
    let mut held = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => held.push(a),
            Err(e) => errors.push(e),
        }
    }
    let ids: HashSet<u8> = held
        .iter()
        .map(|a| a.lease().worker_id().unwrap())
        .collect();
    assert_eq!(held.len(), 32);
    assert_eq!(ids, (0..32).collect::<HashSet<u8>>());
    assert_eq!(errors.len(), 1);
    let msg = errors[0].to_string();
    assert!(
        matches!(
            errors[0],
            WorkerIdError::NoFreeId {
                in_use: 32,
                total: 32,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.starts_with("no free worker ID: 32 of 32 in use (holders: node-"),
        "{msg}"
    );

    let slots = read_leases(&mut conn(&ns).await, &ns.namespace())
        .await
        .unwrap();
    assert!(slots.iter().all(
        |s| matches!(&s.lease, SlotLease::Held { holder, .. } if holder.node.starts_with("node-"))
    ));
    for a in &held {
        a.release().await.unwrap();
    }
    let slots = read_leases(&mut conn(&ns).await, &ns.namespace())
        .await
        .unwrap();
    assert!(
        slots
            .iter()
            .all(|s| s.lease == SlotLease::Free && s.ttl_ms.is_none())
    );
    assert!(
        slots
            .iter()
            .all(|s| matches!(s.last_ts, SlotLastTs::At { .. }))
    );
}

#[tokio::test]
async fn deleting_the_lease_key_fences_the_generator_then_it_reacquires() {
    let ns = TestNs::new("wid-del");
    let ids = start(&ns, "node-a").await.unwrap();
    let lease = ids.lease();
    let generator = Snowflake::new(lease.clone());
    let before = generator.next_id().await.unwrap();
    let first_id = lease.worker_id().unwrap();

    let _: () = conn(&ns)
        .await
        .del(lease_key(&ns.namespace(), first_id))
        .await
        .unwrap();
    eventually("the generator refuses after the key is deleted", || {
        matches!(generator.try_next_id(), Err(SnowflakeError::NoLease { .. }))
    })
    .await;
    eventually("a worker ID is re-acquired", || {
        lease.status() == LeaseStatus::Held
    })
    .await;
    let after = generator.next_id().await.unwrap();
    assert_eq!(lease.generation(), 2);
    let new_id = lease.worker_id().unwrap();
    assert_eq!(decode(after).unwrap().worker_id, new_id);
    // The least recently used ID is preferred: the lost one was just used.
    assert_ne!(new_id, first_id);
    assert_ne!(before, after);
    ids.release().await.unwrap();
}

#[tokio::test]
async fn a_lease_taken_over_fences_until_a_free_id_is_reacquired() {
    let ns = TestNs::new("wid-take");
    let mut c = conn(&ns).await;
    occupy(&mut c, &ns, 1..32).await;
    let ids = start(&ns, "node-a").await.unwrap();
    let lease = ids.lease();
    assert_eq!(lease.worker_id(), Some(0));
    let generator = Snowflake::new(lease.clone());
    let before = generator.next_id().await.unwrap();

    // Another holder takes ID 0 over; every other ID is held.
    let intruder = HolderInfo::for_this_process("intruder").to_value();
    let _: () = c
        .pset_ex(lease_key(&ns.namespace(), 0), &intruder, 30_000)
        .await
        .unwrap();
    eventually("the generator refuses after the takeover", || {
        matches!(generator.try_next_id(), Err(SnowflakeError::NoLease { .. }))
    })
    .await;
    assert_eq!(lease.status(), LeaseStatus::Lost);
    tokio::time::sleep(TTL).await;
    assert!(generator.try_next_id().is_err(), "no free ID: still fenced");

    // The intruder goes away: ID 0 is free again and re-acquired; the new
    // IDs come after every ID issued under the lost lease.
    assert!(
        force_free(&mut c, &ns.namespace(), 0, &intruder)
            .await
            .unwrap()
    );
    eventually("ID 0 is re-acquired", || {
        lease.status() == LeaseStatus::Held
    })
    .await;
    let after = tokio::time::timeout(LIVENESS, generator.next_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decode(after).unwrap().worker_id, 0);
    assert!(after > before);
    ids.release().await.unwrap();
}

#[tokio::test]
async fn paused_renewals_fence_the_generator_within_the_ttl_and_resume_after() {
    let ns = TestNs::new("wid-pause");
    let ids = start(&ns, "node-a").await.unwrap();
    let generator = Snowflake::new(ids.lease());
    generator.next_id().await.unwrap();
    ids.pause_renewals(true);
    let fenced_after = eventually("the generator refuses once renewals stop", || {
        matches!(generator.try_next_id(), Err(SnowflakeError::NoLease { .. }))
    })
    .await;
    assert!(
        fenced_after < TTL,
        "fenced after {fenced_after:?}, the TTL is {TTL:?}"
    );
    // The deadline is ttl - margin after the last renewal, at most ttl/3 ago.
    assert!(
        fenced_after >= Duration::from_millis(200),
        "fenced after {fenced_after:?}"
    );
    match generator.try_next_id() {
        Err(e) => assert!(e.to_string().contains("not renewed in time"), "{e}"),
        Ok(id) => panic!("issued {id} while fenced"),
    }
    ids.pause_renewals(false);
    let id = tokio::time::timeout(LIVENESS, async {
        loop {
            if let Ok(id) = generator.try_next_id() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert!(decode(id).is_ok());
    ids.release().await.unwrap();
}

#[tokio::test]
async fn a_worker_id_used_until_a_near_second_waits_until_the_clock_passes_it() {
    let ns = TestNs::new("wid-floor");
    let mut c = conn(&ns).await;
    let floor = unix_now() + 1;
    for id in 0..32 {
        let _: () = c
            .set(last_ts_key(&ns.namespace(), id), floor)
            .await
            .unwrap();
    }
    let ids = start(&ns, "node-a").await.unwrap();
    let generator = Snowflake::new(ids.lease());
    assert!(matches!(
        generator.try_next_id(),
        Err(SnowflakeError::MustWait { .. })
    ));
    let id = tokio::time::timeout(LIVENESS, generator.next_id())
        .await
        .unwrap()
        .unwrap();
    assert!(decode(id).unwrap().unix_seconds > floor);
    ids.release().await.unwrap();
}

#[tokio::test]
async fn a_worker_id_used_until_a_far_second_is_refused_until_then() {
    let ns = TestNs::new("wid-far");
    let mut c = conn(&ns).await;
    let floor = unix_now() + 60;
    for id in 0..32 {
        let _: () = c
            .set(last_ts_key(&ns.namespace(), id), floor)
            .await
            .unwrap();
    }
    let ids = start(&ns, "node-a").await.unwrap();
    let generator = Snowflake::new(ids.lease());
    match generator.try_next_id() {
        Err(SnowflakeError::WorkerIdUsedUntil { until_unix, .. }) => assert_eq!(until_unix, floor),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Release must not lower last_ts below what earlier holders reached.
    ids.release().await.unwrap();
    let id = ids.lease().worker_id();
    assert_eq!(id, None);
    let slots = read_leases(&mut c, &ns.namespace()).await.unwrap();
    assert!(slots.iter().all(|s| s.last_ts
        == SlotLastTs::At {
            unix_seconds: floor
        }));
}

#[tokio::test]
async fn release_persists_the_last_issued_second_and_frees_the_lease() {
    let ns = TestNs::new("wid-rel");
    let mut c = conn(&ns).await;
    let ids = start(&ns, "node-a").await.unwrap();
    let worker = ids.lease().worker_id().unwrap();
    let generator = Snowflake::new(ids.lease());
    let mut last = 0;
    for _ in 0..1000 {
        last = generator.next_id().await.unwrap();
    }
    // While held, last_ts is ahead of the clock (the renewal cap).
    let held: u64 = c.get(last_ts_key(&ns.namespace(), worker)).await.unwrap();
    assert!(held >= decode(last).unwrap().unix_seconds);
    ids.release().await.unwrap();
    let exists: bool = c.exists(lease_key(&ns.namespace(), worker)).await.unwrap();
    assert!(!exists);
    let released: u64 = c.get(last_ts_key(&ns.namespace(), worker)).await.unwrap();
    assert_eq!(released, decode(last).unwrap().unix_seconds);
    assert!(matches!(
        generator.try_next_id(),
        Err(SnowflakeError::NoLease { .. })
    ));
    assert_eq!(ids.lease().status(), LeaseStatus::Released);
}

#[tokio::test]
async fn garbage_in_worker_keys_is_reported_unreadable_and_skipped() {
    let ns = TestNs::new("wid-garbage");
    let n = ns.namespace();
    let mut c = conn(&ns).await;
    let _: () = c.set(lease_key(&n, 0), "garbage").await.unwrap();
    let _: () = c.hset(lease_key(&n, 1), "f", "v").await.unwrap();
    let _: () = c.set(last_ts_key(&n, 2), "soon").await.unwrap();

    let ids = start(&ns, "node-a").await.unwrap();
    assert_eq!(
        ids.lease().worker_id(),
        Some(3),
        "0 and 1 occupied, 2 unusable"
    );

    let slots = read_leases(&mut c, &n).await.unwrap();
    assert_eq!(slots.len(), 32);
    match &slots[0].lease {
        SlotLease::Unreadable { reason, raw } => {
            assert!(reason.contains(&lease_key(&n, 0)), "{reason}");
            assert_eq!(raw.as_deref(), Some("garbage"));
        }
        other => panic!("slot 0: {other:?}"),
    }
    match &slots[1].lease {
        SlotLease::Unreadable { reason, .. } => {
            assert!(reason.contains(&lease_key(&n, 1)), "{reason}")
        }
        other => panic!("slot 1: {other:?}"),
    }
    match &slots[2].last_ts {
        SlotLastTs::Unreadable { reason } => {
            assert!(reason.contains(&last_ts_key(&n, 2)), "{reason}")
        }
        other => panic!("slot 2: {other:?}"),
    }
    assert_eq!(slots[2].lease, SlotLease::Free);
    match &slots[3].lease {
        SlotLease::Held { holder, .. } => assert_eq!(holder.node, "node-a"),
        other => panic!("slot 3: {other:?}"),
    }
    assert!(slots[3].ttl_ms.is_some_and(|t| t <= 900));

    // Force-free is compare-and-delete.
    assert!(!force_free(&mut c, &n, 0, "other").await.unwrap());
    assert!(force_free(&mut c, &n, 0, "garbage").await.unwrap());
    let exists: bool = c.exists(lease_key(&n, 0)).await.unwrap();
    assert!(!exists);
    assert!(matches!(
        force_free(&mut c, &n, 32, "x").await,
        Err(WorkerIdError::OutOfRange(32))
    ));
    ids.release().await.unwrap();
}

#[tokio::test]
async fn the_error_lists_holders_and_unusable_ids_when_none_is_free() {
    let ns = TestNs::new("wid-full");
    let mut c = conn(&ns).await;
    occupy(&mut c, &ns, 0..31).await;
    let _: () = c.set(last_ts_key(&ns.namespace(), 31), "x").await.unwrap();
    let err = start(&ns, "node-z").await.err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.starts_with("no free worker ID: 31 of 32 in use (holders: filler-0, filler-1,"),
        "{msg}"
    );
    assert!(msg.contains("… 21 more"), "{msg}");
    assert!(msg.contains(&last_ts_key(&ns.namespace(), 31)), "{msg}");
}

#[tokio::test]
async fn from_config_picks_redis_leases_or_a_random_single_node_id() {
    let random = from_config(&Config::default(), "solo").await.unwrap();
    assert_eq!(random.backend(), "random");
    let lease = random.lease();
    assert!(lease.worker_id().is_some_and(|id| id < 32));
    assert!(lease.is_valid());
    assert_eq!(lease.status(), LeaseStatus::Fixed);

    let ns = TestNs::new("wid-cfg");
    let config = Config {
        namespace: ns.namespace(),
        worker_id_redis: Some(SecretUrl::parse(&ns.url, &["redis"]).unwrap()),
        ..Config::default()
    };
    let leased = from_config(&config, "node-a").await.unwrap();
    assert_eq!(leased.backend(), "redis");
    assert_eq!(leased.lease().worker_id(), Some(0));
    assert!(
        leased
            .lease()
            .remaining()
            .is_some_and(|r| r > Duration::from_secs(5))
    );
    leased.release().await.unwrap();
}

#[tokio::test]
async fn builder_options_out_of_range_are_refused() {
    let ns = TestNs::new("wid-opts");
    let short = RedisWorkerIds::builder(conn(&ns).await, ns.namespace(), "a")
        .ttl(Duration::from_millis(100))
        .start()
        .await;
    assert!(matches!(short, Err(WorkerIdError::InvalidOptions(_))));
    let margin = RedisWorkerIds::builder(conn(&ns).await, ns.namespace(), "a")
        .ttl(Duration::from_secs(1))
        .margin(Duration::from_millis(600))
        .start()
        .await;
    assert!(matches!(margin, Err(WorkerIdError::InvalidOptions(_))));
}
