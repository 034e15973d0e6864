//! Snowflake IDs under real Redis leases: two workers never collide, IDs
//! strictly increase per worker and decode back to their fields; the
//! `clusterops id decode` command.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::adapters::snowflake::{Snowflake, decode};
use clusterops::adapters::worker_id::{RedisWorkerIds, WorkerIdAllocator};
use clusterops::config::SecretUrl;
use common::TestNs;
use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PER_WORKER: usize = 200_000;

async fn start(ns: &TestNs, node: &str) -> RedisWorkerIds {
    let conn = redis_conn::connect(&SecretUrl::parse(&ns.url, &["redis"]).unwrap())
        .await
        .unwrap();
    RedisWorkerIds::builder(conn, ns.namespace(), node)
        .ttl(Duration::from_millis(1500))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_from_two_workers_never_collide_and_increase_per_worker() {
    let ns = TestNs::new("sf-two");
    let a = start(&ns, "node-a").await;
    let b = start(&ns, "node-b").await;
    assert_ne!(a.lease().worker_id(), b.lease().worker_id());
    let run = |ids: &RedisWorkerIds| {
        let generator = Arc::new(Snowflake::new(ids.lease()));
        tokio::task::spawn_blocking(move || {
            (0..PER_WORKER)
                .map(|_| generator.next_id_blocking().unwrap())
                .collect::<Vec<u64>>()
        })
    };
    let (from_a, from_b) = (run(&a), run(&b));
    let (from_a, from_b) = (from_a.await.unwrap(), from_b.await.unwrap());

    for (ids, lease) in [(&from_a, a.lease()), (&from_b, b.lease())] {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing per worker"
        );
        let worker = lease.worker_id().unwrap();
        assert!(
            ids.iter()
                .all(|id| decode(*id).unwrap().worker_id == worker)
        );
        // 200,000 IDs need at least four distinct seconds at 65,536 a second.
        let seconds: HashSet<u64> = ids
            .iter()
            .map(|id| decode(*id).unwrap().unix_seconds)
            .collect();
        assert!(seconds.len() >= 4, "{} seconds", seconds.len());
    }
    let all: HashSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all.len(), 2 * PER_WORKER, "no duplicates across workers");
    a.release().await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test]
async fn issued_ids_decode_to_the_lease_worker_and_the_current_time() {
    let ns = TestNs::new("sf-decode");
    let a = start(&ns, "node-a").await;
    let generator = Snowflake::new(a.lease());
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = generator.next_id().await.unwrap();
    let second = generator.next_id().await.unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let d = decode(first).unwrap();
    assert_eq!(Some(d.worker_id), a.lease().worker_id());
    assert!((before..=after).contains(&d.unix_seconds));
    assert!(first < (1 << 53));
    let d2 = decode(second).unwrap();
    assert!(second > first);
    assert!(d2.sequence == d.sequence + 1 || d2.unix_seconds > d.unix_seconds);
    a.release().await.unwrap();
}

fn clusterops(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterops"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_decode_command_prints_the_fields_and_refuses_bad_input() {
    // (1_700_000_000 - 1605024000) << 21 | 7 << 16 | 42
    let id = ((1_700_000_000u64 - 1_605_024_000) << 21) | (7 << 16) | 42;
    let (code, out, _) = clusterops(&["id", "decode", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("2023-11-14T22:13:20Z (1700000000)"), "{out}");
    assert!(out.contains("worker_id   7"), "{out}");
    assert!(out.contains("sequence    42"), "{out}");

    let (code, out, _) = clusterops(&["id", "decode", "--json", &id.to_string()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["worker_id"], 7);
    assert_eq!(v["sequence"], 42);
    assert_eq!(v["unix_seconds"], 1_700_000_000u64);
    assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");

    for bad in ["abc", "-5", "9007199254740992", "1e9"] {
        let (code, out, err) = clusterops(&["id", "decode", bad]);
        assert_eq!(code, 2, "{bad}");
        assert!(out.is_empty(), "{bad}: {out}");
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(err.starts_with("error: "), "{bad}: {err}");
    }
}
