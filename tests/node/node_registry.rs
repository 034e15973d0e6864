//! Registry records and the maintenance flag against the real Redis.

use crate::common;

use clusterops::node::maintenance::{self, MaintenanceFlag, MaintenanceRead};
use clusterops::node::registry::{NodeRecord, Registry, RegistryEntry};
use common::TestNs;
use std::time::Duration;

fn record(id: &str, now: u64) -> NodeRecord {
    NodeRecord {
        node_id: id.into(),
        host: "h".into(),
        http_addr: "127.0.0.1:1".into(),
        pid: 1,
        app_version: "1".into(),
        schema_version: Some("1".into()),
        worker_id: Some(3),
        state: "running".into(),
        state_reason: "ready".into(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        config_fingerprint: "abc".into(),
        config_parts: Default::default(),
        storage_shared: None,
        storage_reason: None,
        clock_offset: None,
        worker_mode: Default::default(),
        process: None,
    }
}

async fn conn(ns: &TestNs) -> redis::aio::MultiplexedConnection {
    redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_node_without_heartbeats_disappears_after_its_ttl() {
    let ns = TestNs::new("registry");
    let mut c = conn(&ns).await;
    let reg = Registry::new(ns.namespace(), Duration::from_millis(400));
    let now = clusterops::clock::now_ms();
    reg.heartbeat(&mut c, &record("a", now)).await.unwrap();
    reg.heartbeat(&mut c, &record("b", now)).await.unwrap();
    let entries = reg.read_all(&mut c).await.unwrap();
    assert_eq!(entries.len(), 2);
    match &entries[0] {
        RegistryEntry::Live {
            record,
            ttl_left_ms,
        } => {
            assert_eq!(record.worker_id, Some(3));
            assert!(*ttl_left_ms > 0 && *ttl_left_ms <= 400);
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    reg.heartbeat(&mut c, &record("b", clusterops::clock::now_ms()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let entries = reg.read_all(&mut c).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    reg.remove(&mut c, "b").await.unwrap();
    assert!(reg.read_all(&mut c).await.unwrap().is_empty());
}

#[tokio::test]
async fn garbage_in_a_registry_key_is_reported_unreadable() {
    let ns = TestNs::new("registry-garbage");
    let mut c = conn(&ns).await;
    let reg = Registry::new(ns.namespace(), Duration::from_secs(5));
    let now = clusterops::clock::now_ms();
    reg.heartbeat(&mut c, &record("good", now)).await.unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(reg.index_key())
        .arg(now)
        .arg("junk")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(reg.record_key("junk"))
        .arg("{not json")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(reg.index_key())
        .arg(now)
        .arg("hashy")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(reg.record_key("hashy"))
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let entries = reg.read_all(&mut c).await.unwrap();
    let unreadable: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            RegistryEntry::Unreadable { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(unreadable.len(), 2, "{entries:?}");
    assert!(unreadable.contains(&reg.record_key("junk")));
    assert!(unreadable.contains(&reg.record_key("hashy")));
    assert_eq!(entries.len(), 3);
}

#[tokio::test]
async fn the_maintenance_flag_is_set_read_and_cleared() {
    let ns = TestNs::new("maintenance");
    let mut c = conn(&ns).await;
    let n = ns.namespace();
    assert_eq!(
        maintenance::read(&mut c, &n).await.unwrap(),
        MaintenanceRead::Clear
    );
    let flag = MaintenanceFlag {
        by: "ops@host".into(),
        reason: "upgrade to v2".into(),
        since_ms: 42,
    };
    maintenance::set(&mut c, &n, &flag).await.unwrap();
    assert_eq!(
        maintenance::read(&mut c, &n).await.unwrap(),
        MaintenanceRead::Set(flag)
    );
    assert!(maintenance::clear(&mut c, &n).await.unwrap());
    assert_eq!(
        maintenance::read(&mut c, &n).await.unwrap(),
        MaintenanceRead::Clear
    );
    let _: () = redis::cmd("LPUSH")
        .arg(maintenance::key(&n))
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(matches!(
        maintenance::read(&mut c, &n).await.unwrap(),
        MaintenanceRead::Unreadable { .. }
    ));
}
