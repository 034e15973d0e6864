//! Redis-only lock behaviour: the stored value format, lost detection when
//! the key is deleted or Redis dies, extend seen in Redis, the read-only
//! inspector (including garbage keys) and the admin force-release.

use crate::common;

use clusterops::adapters::lock::{
    ForceReleaseOutcome, HolderValue, LockBackend, LockError, RedisLock, fence_key, force_release,
    lock_key, read_holder, read_holders,
};
use clusterops::config::SecretUrl;
use common::{PrivateRedis, TestNs};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

const SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(10);
const PATIENCE: Duration = Duration::from_secs(5);

async fn lock_on(url: &str, ns: &TestNs, node: &str) -> RedisLock {
    let url = SecretUrl::parse(url, &["redis"]).unwrap();
    RedisLock::connect(&url, ns.namespace(), node)
        .await
        .unwrap()
}

async fn lock(ns: &TestNs, node: &str) -> RedisLock {
    lock_on(&ns.url, ns, node).await
}

async fn raw(ns: &TestNs) -> redis::aio::MultiplexedConnection {
    redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Wait until `cond` holds, up to PATIENCE.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_lock_key_holds_token_acquire_time_guard_and_node_as_documented() {
    let ns = TestNs::new("lock-value");
    let lock = lock(&ns, "node|with|pipes").await;
    let mut conn = raw(&ns).await;
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let guard = lock.try_acquire("jobs", LONG_TTL).await.unwrap().unwrap();
    let key = lock_key(&ns.namespace(), "jobs");
    let value: Vec<u8> = conn.get(&key).await.unwrap();
    let parsed = HolderValue::parse(&value).unwrap();
    assert_eq!(parsed.fencing_token, guard.fencing_token());
    assert_eq!(parsed.holder_node, "node|with|pipes");
    assert_eq!(parsed.guard_id.len(), 16);
    // Stamped by the acquiring node's clock, at the acquire.
    assert!(parsed.acquired_at_ms >= before_ms && parsed.acquired_at_ms < before_ms + 5_000);
    assert_eq!(parsed.encode().into_bytes(), value);
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(pttl > 0 && pttl <= 10_000, "pttl {pttl}");
    let fence: u64 = conn.get(fence_key(&ns.namespace(), "jobs")).await.unwrap();
    assert_eq!(fence, guard.fencing_token());
    let fence_ttl: i64 = conn.pttl(fence_key(&ns.namespace(), "jobs")).await.unwrap();
    assert_eq!(fence_ttl, -1, "the fencing counter never expires");
    guard.release().await.unwrap();
    let exists: bool = conn.exists(&key).await.unwrap();
    assert!(!exists, "release deletes the key");
}

#[tokio::test]
async fn a_lock_deleted_behind_the_holders_back_is_reported_lost_by_the_watchdog() {
    let ns = TestNs::new("lock-deleted");
    let lock = lock(&ns, "node-a").await;
    // Renewed every second; the guard would give up on its own only after
    // 3 s without a confirmed renewal.
    let ttl = Duration::from_secs(3);
    let guard = lock.acquire("victim", ttl, PATIENCE).await.unwrap();
    let _: i64 = raw(&ns)
        .await
        .del(lock_key(&ns.namespace(), "victim"))
        .await
        .unwrap();
    let deleted_at = Instant::now();
    eventually("guard marked lost", || guard.is_lost()).await;
    assert!(
        deleted_at.elapsed() < Duration::from_millis(2_500),
        "lost only after {:?}: the renewal did not notice the deletion",
        deleted_at.elapsed()
    );
    assert!(matches!(guard.check(), Err(LockError::Lost { .. })));
    // Another holder can take it; the old guard's release does not touch it.
    let fresh = lock.try_acquire("victim", LONG_TTL).await.unwrap().unwrap();
    assert!(matches!(guard.release().await, Err(LockError::Lost { .. })));
    assert!(
        lock.try_acquire("victim", LONG_TTL)
            .await
            .unwrap()
            .is_none()
    );
    fresh.release().await.unwrap();
}

#[tokio::test]
async fn extend_sets_the_ttl_in_redis_and_a_non_holder_cannot_extend() {
    let ns = TestNs::new("lock-extend");
    let a = lock(&ns, "node-a").await;
    let b = lock(&ns, "node-b").await;
    let mut conn = raw(&ns).await;
    let key = lock_key(&ns.namespace(), "ext");
    let guard = a.acquire("ext", SHORT_TTL, PATIENCE).await.unwrap();
    guard.extend(LONG_TTL).await.unwrap();
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(pttl > 5_000, "extend did not set the TTL: {pttl}");

    // Someone else took the lock (deleted and re-acquired) before the
    // holder's watchdog noticed: the holder's compare-and-pexpire fails.
    let _: i64 = conn.del(&key).await.unwrap();
    let other = b.try_acquire("ext", LONG_TTL).await.unwrap().unwrap();
    let err = guard.extend(LONG_TTL).await.unwrap_err();
    assert!(
        matches!(err, LockError::Lost { ref name, .. } if name == "ext"),
        "{err}"
    );
    assert!(guard.is_lost());
    let holder = b.read_holder("ext").await.unwrap().unwrap();
    assert_eq!(holder.holder_node, "node-b");
    assert_eq!(holder.fencing_token, other.fencing_token());
    other.release().await.unwrap();
    drop(guard);
}

#[tokio::test]
async fn the_inspector_reads_holders_tokens_and_ttls_without_taking_locks() {
    let ns = TestNs::new("lock-inspect");
    let a = lock(&ns, "node-a").await;
    let b = lock(&ns, "node-b").await;
    let ga = a.try_acquire("alpha", LONG_TTL).await.unwrap().unwrap();
    let gb = b
        .try_acquire("beta:with:colons", SHORT_TTL)
        .await
        .unwrap()
        .unwrap();
    let mut conn = a.connection();
    let seen = read_holders(&mut conn, &ns.namespace()).await.unwrap();
    assert!(seen.unreadable.is_empty(), "{:?}", seen.unreadable);
    let names: Vec<&str> = seen.holders.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta:with:colons"]);
    let alpha = &seen.holders[0];
    assert_eq!(alpha.holder_node, "node-a");
    assert_eq!(alpha.fencing_token, ga.fencing_token());
    assert!(alpha.ttl_left > Duration::ZERO && alpha.ttl_left <= LONG_TTL);
    let beta = &seen.holders[1];
    assert_eq!(beta.holder_node, "node-b");
    assert_eq!(beta.fencing_token, gb.fencing_token());
    assert!(beta.ttl_left <= SHORT_TTL);

    let one = read_holder(&mut conn, &ns.namespace(), "alpha")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&one.holder_node, one.fencing_token),
        (&alpha.holder_node, alpha.fencing_token)
    );
    assert_eq!(
        (&one.guard_id, one.acquired_at_ms),
        (&alpha.guard_id, alpha.acquired_at_ms)
    );
    assert!(
        read_holder(&mut conn, &ns.namespace(), "free")
            .await
            .unwrap()
            .is_none()
    );
    // Reading took nothing: the holders still hold.
    ga.check().unwrap();
    gb.check().unwrap();
    assert!(b.try_acquire("alpha", LONG_TTL).await.unwrap().is_none());
    let json = serde_json::to_value(&seen).unwrap();
    assert!(json["holders"][0]["ttl_left_ms"].as_u64().unwrap() > 0);
    ga.release().await.unwrap();
    gb.release().await.unwrap();
    assert!(a.read_holders().await.unwrap().holders.is_empty());
}

#[tokio::test]
async fn garbage_in_lock_keys_is_reported_as_unreadable_with_the_key_name() {
    let ns = TestNs::new("lock-garbage");
    let lock = lock(&ns, "node-a").await;
    let mut conn = raw(&ns).await;
    let key = |n: &str| lock_key(&ns.namespace(), n);
    // A lock key of the layout before hash tags, with a good value and TTL.
    let old = format!("{}:lock:old", ns.name);
    let _: () = conn
        .set_ex(&old, "1|1700000000000|0123456789abcdef|node-x", 60)
        .await
        .unwrap();
    let _: () = conn.set_ex(key("text"), "not a lock", 60).await.unwrap();
    let _: () = conn.hset(key("hash"), "f", "v").await.unwrap();
    let _: () = conn
        .set(key("forever"), "1|1700000000000|0123456789abcdef|node-x")
        .await
        .unwrap();
    let _: () = conn
        .set_ex(key("badtoken"), "x|1|0123456789abcdef|n", 60)
        .await
        .unwrap();
    let guard = lock.try_acquire("good", LONG_TTL).await.unwrap().unwrap();

    let seen = lock.read_holders().await.unwrap();
    assert_eq!(seen.holders.len(), 1);
    assert_eq!(seen.holders[0].name, "good");
    let mut bad: Vec<(String, String)> = seen
        .unreadable
        .iter()
        .map(|u| (u.key.clone(), u.reason.clone()))
        .collect();
    bad.sort();
    let keys: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            old.clone(),
            key("badtoken"),
            key("forever"),
            key("hash"),
            key("text")
        ]
    );
    let layout = "not in the hash-tagged layout";
    assert!(bad[0].1.contains(layout), "{}", bad[0].1);
    assert!(bad[1].1.contains("fencing token"), "{}", bad[1].1);
    assert!(bad[2].1.contains("no TTL"), "{}", bad[2].1);
    assert!(bad[3].1.contains("WRONGTYPE"), "{}", bad[3].1);
    assert!(bad[4].1.contains("not a lock"), "{}", bad[4].1);

    match lock.read_holder("hash").await {
        Err(LockError::Unreadable { key: k, .. }) => assert_eq!(k, key("hash")),
        other => panic!("expected unreadable, got {other:?}"),
    }
    // Garbage occupies the name: acquiring does not overwrite it or fail.
    assert!(lock.try_acquire("text", SHORT_TTL).await.unwrap().is_none());
    assert!(lock.try_acquire("hash", SHORT_TTL).await.unwrap().is_none());
    guard.release().await.unwrap();
}

#[tokio::test]
async fn force_release_needs_the_current_token_and_wakes_waiters() {
    let ns = TestNs::new("lock-force");
    let holder = lock(&ns, "node-stuck").await;
    let waiter = lock(&ns, "node-waiter").await;
    waiter.set_poll_interval(Duration::from_secs(30), Duration::from_secs(30));
    let guard = holder.acquire("stuck", LONG_TTL, PATIENCE).await.unwrap();
    let token = guard.fencing_token();
    let waiting = tokio::spawn(async move {
        waiter
            .acquire("stuck", LONG_TTL, Duration::from_secs(60))
            .await
    });
    let mut conn = holder.connection();
    let nsn = ns.namespace();
    assert_eq!(
        force_release(&mut conn, &nsn, "stuck", token + 1)
            .await
            .unwrap(),
        ForceReleaseOutcome::TokenMismatch
    );
    guard.check().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    assert_eq!(
        holder.force_release("stuck", token).await.unwrap(),
        ForceReleaseOutcome::Released
    );
    // The waiter polls every 30 s: only the published release wakes it.
    let taken = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("waiter woken")
        .unwrap()
        .unwrap();
    assert!(taken.fencing_token() > token);
    eventually("old holder marked lost", || guard.is_lost()).await;
    assert_eq!(
        force_release(&mut conn, &nsn, "nothing", 1).await.unwrap(),
        ForceReleaseOutcome::NotHeld
    );
    taken.release().await.unwrap();
    drop(guard);
}

#[tokio::test]
async fn a_holder_cut_off_from_redis_marks_its_guard_lost_within_the_ttl() {
    let mut server = PrivateRedis::start();
    let ns = TestNs::on("lock-cutoff", &server.url());
    let lock = lock_on(&server.url(), &ns, "node-a").await;
    let guard = lock.acquire("cut", SHORT_TTL, PATIENCE).await.unwrap();
    guard.check().unwrap();
    server.kill();
    let killed_at = Instant::now();
    eventually("guard marked lost", || guard.is_lost()).await;
    // Never before the TTL could have passed.
    assert!(killed_at.elapsed() >= SHORT_TTL / 3);
    assert!(matches!(guard.check(), Err(LockError::Lost { .. })));
    drop(guard);
}

#[tokio::test]
async fn waiters_on_two_instances_share_one_subscription_each_and_all_get_the_lock() {
    let ns = TestNs::new("lock-herd");
    let nodes = [lock(&ns, "node-a").await, lock(&ns, "node-b").await];
    let first = nodes[0].acquire("herd", LONG_TTL, PATIENCE).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let g = node
                .acquire("herd", LONG_TTL, Duration::from_secs(20))
                .await
                .unwrap();
            let token = g.fencing_token();
            g.release().await.unwrap();
            token
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.release().await.unwrap();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 8, "each waiter got its own token");
}

#[tokio::test]
async fn from_config_picks_the_configured_backend() {
    use clusterops::adapters::lock::from_config;
    use clusterops::config::{Config, LockAdapter};
    let ns = TestNs::new("lock-config");
    let url = SecretUrl::parse(&ns.url, &["redis"]).unwrap();
    let config = Config {
        namespace: ns.namespace(),
        lock: LockAdapter::Redis(url),
        ..Config::default()
    };
    let redis_lock = from_config(&config, "node-cfg").await.unwrap();
    assert_eq!(
        (redis_lock.kind(), redis_lock.node_id()),
        ("redis", "node-cfg")
    );
    let guard = redis_lock
        .try_acquire("cfg", LONG_TTL)
        .await
        .unwrap()
        .unwrap();
    let holder = read_holder(&mut raw(&ns).await, &ns.namespace(), "cfg")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.holder_node, "node-cfg");
    guard.release().await.unwrap();

    let local = from_config(&Config::default(), "node-cfg").await.unwrap();
    assert_eq!(local.kind(), "local");
    assert!(matches!(
        from_config(&config, "bad\nnode").await,
        Err(LockError::InvalidNodeId { .. })
    ));
}

#[tokio::test]
async fn waiters_retry_promptly_when_a_redis_restart_frees_the_lock() {
    let mut server = PrivateRedis::start();
    let ns = TestNs::on("lock-restart", &server.url());
    let holder = lock_on(&server.url(), &ns, "node-holder").await;
    let waiter = lock_on(&server.url(), &ns, "node-waiter").await;
    waiter.set_poll_interval(Duration::from_secs(30), Duration::from_secs(30));
    let guard = holder.acquire("restart", LONG_TTL, PATIENCE).await.unwrap();
    let waiting = tokio::spawn(async move {
        waiter
            .acquire("restart", LONG_TTL, Duration::from_secs(60))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    // The restarted server has no data: the lock is free, but no release
    // was published. The waiter's subscriber sees its connection drop and
    // wakes it; the waiter retries (through the reconnection) at once
    // instead of after its 30 s poll.
    server.restart();
    let taken = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("waiter retried after the restart")
        .unwrap()
        .unwrap();
    assert!(taken.fencing_token() >= 1);
    eventually("old holder marked lost", || guard.is_lost()).await;
    taken.release().await.unwrap();
    drop(guard);
}

#[tokio::test]
async fn the_local_backend_lists_its_holders() {
    let lock = clusterops::adapters::lock::LocalLock::new("node-local").unwrap();
    let g = lock.try_acquire("one", LONG_TTL).await.unwrap().unwrap();
    let holders = lock.holders();
    assert_eq!(holders.len(), 1);
    assert_eq!(
        (
            holders[0].name.as_str(),
            holders[0].holder_node.as_str(),
            holders[0].fencing_token
        ),
        ("one", "node-local", g.fencing_token())
    );
    g.release().await.unwrap();
    assert!(lock.holders().is_empty());
}

#[tokio::test]
async fn a_lost_fencing_counter_restarts_above_every_token_handed_out() {
    let ns = TestNs::new("lock-fence-lost");
    let lock = lock(&ns, "node-a").await;
    let mut conn = raw(&ns).await;
    let fence = fence_key(&ns.namespace(), "jobs");
    let mut last = 0;
    for _ in 0..3 {
        let g = lock.try_acquire("jobs", LONG_TTL).await.unwrap().unwrap();
        assert!(g.fencing_token() > last);
        last = g.fencing_token();
        g.release().await.unwrap();
    }
    // As after a failover that lost the counter, or a restart without
    // persistence: the next token is still above every earlier one.
    let _: () = conn.del(&fence).await.unwrap();
    let g = lock.try_acquire("jobs", LONG_TTL).await.unwrap().unwrap();
    assert!(
        g.fencing_token() > last,
        "{} after {last}",
        g.fencing_token()
    );
    last = g.fencing_token();
    g.release().await.unwrap();
    // A counter that is behind (a stale replica promoted) is overtaken too.
    let _: () = conn.set(&fence, 5).await.unwrap();
    let g = lock.try_acquire("jobs", LONG_TTL).await.unwrap().unwrap();
    assert!(
        g.fencing_token() > last,
        "{} after {last}",
        g.fencing_token()
    );
    g.release().await.unwrap();
    // A counter ahead of the clock keeps counting from itself.
    let ahead: u64 = 9_000_000_000_000_000;
    let _: () = conn.set(&fence, ahead).await.unwrap();
    let g = lock.try_acquire("jobs", LONG_TTL).await.unwrap().unwrap();
    assert_eq!(g.fencing_token(), ahead + 1);
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_garbage_fencing_counter_is_an_error_naming_its_key() {
    let ns = TestNs::new("lock-fence-garbage");
    let lock = lock(&ns, "node-a").await;
    let mut conn = raw(&ns).await;
    let fence = fence_key(&ns.namespace(), "jobs");
    let _: () = conn.set(&fence, "not-a-number").await.unwrap();
    let err = lock
        .try_acquire("jobs", LONG_TTL)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&fence) && err.contains("not a number"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    let held: bool = conn
        .exists(lock_key(&ns.namespace(), "jobs"))
        .await
        .unwrap();
    assert!(!held, "nothing written");
}
