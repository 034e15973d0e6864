//! The console's live mode against real Redis: the inspector source as a
//! read-only ACL user (with key presses on the components), every
//! `LiveActions` action on real state (including refusals), and the source
//! through a Redis that is killed and restarted.

use crate::common;
use crate::console_support;

use clusterops::adapters::lock::{self, LockBackend, RedisLock};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions, RedisQueue, RetryPolicy};
use clusterops::adapters::worker_id;
use clusterops::config::{Config, SecretUrl};
use clusterops::console::action::Action;
use clusterops::console::live::InspectorSource;
use clusterops::console::source::SnapshotSource;
use clusterops::inspect::Source;
use clusterops::operate::ClusterActions;
use clusterops::operate::{AuditRecord, LiveActions};
use common::nodes::{TestCluster, eventually};
use common::{PrivateRedis, TestNs};
use console_support::{harness, key};
use crossterm::event::KeyCode;
use std::sync::Arc;
use std::time::Duration;

async fn plain_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Two dead letters on queue `poison`; returns the producer queue.
async fn dead_letters(url: &str, ns: clusterops::config::Namespace) -> RedisQueue {
    let opts = QueueOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
        ..QueueOptions::default()
    };
    let url = SecretUrl::parse(url, &["redis"]).unwrap();
    let q = RedisQueue::connect(&url, ns, "producer", opts)
        .await
        .unwrap();
    for i in 0..2 {
        q.publish("poison", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    let sub = q
        .subscribe(
            "poison",
            1,
            queue::handler(|_m| async { Err::<(), _>("bad input") }),
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            q.dead_letter_count("poison").await.unwrap_or(0) == 2
        })
        .await
    );
    sub.shutdown().await.unwrap();
    q
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_console_reads_every_source_as_a_read_only_acl_user() {
    let c = TestCluster::new("live-acl");
    let node = c.start("lva", "2").await;
    node.wait_for_health(200, Duration::from_secs(10)).await;
    let ns = c.ns.namespace();
    let _q = dead_letters(&c.ns.url, ns.clone()).await;
    let user = common::ReadOnlyUser::create(&c.ns.url, &c.ns.name);
    let ro_url = user.url.clone();
    let config = Config::all_redis(&ro_url, &c.ns.name).unwrap();
    let source = InspectorSource::new(config.clone());
    let audit = c.dir.path().join("audit.jsonl");
    let actions = Arc::new(LiveActions::new(config, "tester@host", &audit));

    let snap = source.fetch().await.expect("a snapshot as the ACL user");
    for (name, ok) in [
        ("nodes", matches!(snap.nodes, Source::Ok(_))),
        ("leases", matches!(snap.leases, Source::Ok(_))),
        ("locks", matches!(snap.locks, Source::Ok(_))),
        ("streams", matches!(snap.streams, Source::Ok(_))),
        ("queues", matches!(snap.queues, Source::Ok(_))),
        ("maintenance", matches!(snap.maintenance, Source::Ok(_))),
    ] {
        assert!(ok, "{name} reads ok as {}: {snap:#?}", user.name);
    }
    assert!(snap.servers.iter().all(|s| s.error.is_none()), "{snap:#?}");
    assert_eq!(snap.nodes.ok().unwrap()[0].id.node_id, "lva");

    // Key presses on the components: no action is offered, the dead-letter
    // list (a read) works as the ACL user.
    let mut h = harness(vec![snap.clone()], true, Some(actions.clone()));
    assert_eq!(h.app.handle_key(key(KeyCode::Char('M'))), None);
    h.app.dispatch(Some(Action::SwitchView(
        clusterops::console::views::ViewId::Queues,
    )));
    let poison_row = snap
        .queues
        .ok()
        .unwrap()
        .iter()
        .position(|q| q.name == "poison")
        .expect("the poison queue is listed");
    for _ in 0..poison_row {
        let a = h.app.handle_key(key(KeyCode::Char('j')));
        h.app.dispatch(a);
    }
    let a = h.app.handle_key(key(KeyCode::Enter));
    h.app.dispatch(a);
    let listed = tokio::time::timeout(Duration::from_secs(10), h.outbox.recv())
        .await
        .unwrap()
        .unwrap();
    match &listed {
        Action::DeadLettersListed { queue, result } => {
            assert_eq!(queue, "poison");
            let letters = result.as_ref().expect("listing is a read");
            assert_eq!(letters.len(), 2);
            assert!(letters[0].reason.contains("bad input"));
        }
        other => panic!("{other:?}"),
    }
    h.app.dispatch(Some(listed));
    for k in ['X', 'R', 'D', 'F'] {
        assert_eq!(h.app.handle_key(key(KeyCode::Char(k))), None, "{k}");
    }
    // A second snapshot still reads everything; nothing was audited.
    assert!(source.fetch().await.is_ok());
    assert!(!audit.exists(), "a read-only console records no action");
    drop(user);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_live_action_changes_real_state_and_refuses_a_stale_target() {
    let c = TestCluster::new("live-act");
    let node = c.start("lvb", "2").await;
    node.wait_for_health(200, Duration::from_secs(10)).await;
    let ns = c.ns.namespace();
    let config = Config::all_redis(&c.ns.url, &c.ns.name).unwrap();
    let audit = c.dir.path().join("state/audit-console.jsonl");
    let actions = LiveActions::new(config.clone(), "alice@ops-1", &audit);
    let mut conn = plain_conn(&c.ns.url).await;
    let source = InspectorSource::new(config);

    // Maintenance.
    let out = actions.set_maintenance("disk swap").await.unwrap();
    assert!(out.contains("alice@ops-1"), "{out}");
    let snap = source.fetch().await.unwrap();
    let m = snap.maintenance.ok().unwrap().clone().unwrap();
    assert_eq!(
        (m.by.as_str(), m.reason.as_str()),
        ("alice@ops-1", "disk swap")
    );
    actions.clear_maintenance().await.unwrap();
    assert!(actions.clear_maintenance().await.is_err(), "already clear");
    let flag: Option<String> = redis::cmd("GET")
        .arg(ns.key("maintenance"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(flag, None);

    // Lock: the wrong token changes nothing, the right one releases.
    let url = SecretUrl::parse(&c.ns.url, &["redis"]).unwrap();
    let locks = RedisLock::connect(&url, ns.clone(), "batch").await.unwrap();
    let guard = locks
        .try_acquire("nightly", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let token = guard.fencing_token();
    let wrong = actions.force_release_lock("nightly", token + 1).await;
    assert!(wrong.unwrap_err().contains("another token"));
    let held: Option<String> = redis::cmd("GET")
        .arg(lock::lock_key(&ns, "nightly"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(held.is_some(), "still held after the wrong token");
    actions.force_release_lock("nightly", token).await.unwrap();
    let held: Option<String> = redis::cmd("GET")
        .arg(lock::lock_key(&ns, "nightly"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held, None);
    assert!(actions.force_release_lock("nightly", token).await.is_err());
    drop(guard);

    // Leases: a dead holder's is freed, a live node's is refused.
    let _: () = redis::cmd("SET")
        .arg(worker_id::lease_key(&ns, 31))
        .arg(r#"{"node":"ghost","pid":7,"host":"gone","acquired_at_ms":1,"token":"t"}"#)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(actions.free_lease(31, "someone-else").await.is_err());
    actions.free_lease(31, "ghost").await.unwrap();
    let ghost: Option<String> = redis::cmd("GET")
        .arg(worker_id::lease_key(&ns, 31))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ghost, None);
    let snap = source.fetch().await.unwrap();
    let live = snap
        .leases
        .ok()
        .unwrap()
        .iter()
        .find(|l| l.holder.as_deref() == Some("lvb"))
        .expect("the node holds a worker ID")
        .worker_id;
    let refused = actions.free_lease(live, "lvb").await.unwrap_err();
    assert!(refused.contains("live node"), "{refused}");
    let kept: Option<String> = redis::cmd("GET")
        .arg(worker_id::lease_key(&ns, live))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(kept.is_some(), "a live node's lease stays");

    // Dead letters: listed, requeued, then purged.
    let q = dead_letters(&c.ns.url, ns.clone()).await;
    assert_eq!(
        actions.list_dead_letters("poison", 10).await.unwrap().len(),
        2
    );
    let out = actions.requeue_dead_letters("poison").await.unwrap();
    assert!(out.contains("requeued 2"), "{out}");
    assert_eq!(q.dead_letter_count("poison").await.unwrap(), 0);
    assert_eq!(q.stats("poison").await.unwrap().waiting, 2);
    let sub = q
        .subscribe(
            "poison",
            1,
            queue::handler(|_m| async { Err::<(), _>("still bad") }),
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            q.dead_letter_count("poison").await.unwrap_or(0) == 2
        })
        .await
    );
    sub.shutdown().await.unwrap();
    let out = actions.purge_dead_letters("poison").await.unwrap();
    assert!(out.contains("purged 2"), "{out}");
    assert_eq!(q.dead_letter_count("poison").await.unwrap(), 0);

    // Every action, done or refused, is one audit line.
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<AuditRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("set-maintenance", "ok"),
            ("clear-maintenance", "ok"),
            ("clear-maintenance", "refused"),
            ("force-release-lock", "refused"),
            ("force-release-lock", "ok"),
            ("force-release-lock", "refused"),
            ("free-lease", "refused"),
            ("free-lease", "ok"),
            ("free-lease", "refused"),
            ("requeue-dead-letters", "ok"),
            ("purge-dead-letters", "ok"),
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.who == "alice@ops-1" && r.at_ms > 0)
    );
    assert_eq!(records[4].target, format!("nightly token {token}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_source_fails_while_redis_is_down_and_recovers_after_a_restart() {
    let mut redis = PrivateRedis::start();
    let ns = TestNs::on("live-down", &redis.url());
    let config = Config::all_redis(&redis.url(), &ns.name).unwrap();
    let source = InspectorSource::new(config);
    assert!(source.fetch().await.is_ok());
    redis.kill();
    let reason = source.fetch().await.unwrap_err();
    assert!(reason.starts_with("no source readable:"), "{reason}");
    assert!(reason.contains("redis://127.0.0.1:"), "{reason}");
    redis.restart();
    assert!(
        eventually(Duration::from_secs(15), || async {
            source.fetch().await.is_ok()
        })
        .await,
        "the source recovers by itself"
    );
}
