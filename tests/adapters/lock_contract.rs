//! The lock contract, run against the local backend and against Redis:
//! mutual exclusion, fencing tokens, TTL expiry after a holder crash,
//! prompt wake-up on release, try/extend/release/drop behaviour.

use crate::common;

use clusterops::adapters::lock::{LocalLock, LockBackend, LockBackendExt, LockError, RedisLock};
use clusterops::config::SecretUrl;
use common::TestNs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(10);
/// TTL of holders that "crash": long enough that the survivor surely sees
/// the lock still held right after the crash.
const CRASH_TTL: Duration = Duration::from_millis(1000);
/// Generous liveness bound: nothing in these tests should take this long.
const PATIENCE: Duration = Duration::from_secs(5);

/// Makes adapter instances of one backend that share their locks: clones
/// of one `LocalLock`, or separate Redis connections on one namespace.
#[derive(Clone)]
enum Harness {
    Local(LocalLock),
    Redis(String, clusterops::config::Namespace),
}

impl Harness {
    fn local() -> Self {
        Harness::Local(LocalLock::new("node-local").unwrap())
    }

    fn redis(ns: &TestNs) -> Self {
        Harness::Redis(ns.url.clone(), ns.namespace())
    }

    /// A new adapter instance (for Redis: its own connections) as `node`,
    /// polling every `poll` when no release notification arrives.
    async fn instance_polling(&self, node: &str, poll: Duration) -> Arc<dyn LockBackend> {
        match self {
            Harness::Local(lock) => {
                lock.set_poll_interval(poll, poll);
                Arc::new(lock.clone())
            }
            Harness::Redis(url, ns) => {
                let url = SecretUrl::parse(url, &["redis"]).unwrap();
                let lock = RedisLock::connect(&url, ns.clone(), node).await.unwrap();
                lock.set_poll_interval(poll, poll);
                Arc::new(lock)
            }
        }
    }

    async fn instance(&self, node: &str) -> Arc<dyn LockBackend> {
        self.instance_polling(node, Duration::from_millis(100))
            .await
    }

    /// Acquire `name` on a runtime of its own (another "process"), then shut
    /// that runtime down: the guard is returned, but its watchdog and (for
    /// Redis) its connection are gone, as after a crash.
    fn acquire_on_dying_runtime(
        &self,
        name: &str,
        ttl: Duration,
    ) -> clusterops::adapters::lock::LockGuard {
        let harness = self.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let guard = rt.block_on(async {
                let lock = harness.instance("node-doomed").await;
                lock.try_acquire(&name, ttl)
                    .await
                    .unwrap()
                    .expect("lock is free")
            });
            rt.shutdown_timeout(Duration::from_secs(1));
            guard
        })
        .join()
        .unwrap()
    }
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Harness::local()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let label = stringify!($test);
                    let ns = super::TestNs::new(&label[..label.len().min(40)]);
                    super::$test(super::Harness::redis(&ns)).await;
                    // Every guard has been released; only the fencing
                    // counters (no TTL) may be left, and TestNs removes them.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let left: Vec<String> = ns.keys().into_iter().filter(|k| !k.contains(":lock-fence:")).collect();
                    assert!(left.is_empty(), "lock keys left behind: {left:?}");
                }
            )*
        }
    };
}

contract!(
    concurrent_read_modify_writes_under_the_lock_lose_no_update,
    fencing_tokens_strictly_increase_across_instances,
    a_crashed_holder_frees_the_lock_after_its_ttl,
    a_waiter_wakes_on_release_without_waiting_for_its_poll,
    try_acquire_on_a_held_lock_returns_none,
    extend_renews_a_held_lock_and_fails_once_the_lock_is_lost,
    a_dropped_guard_releases_the_lock,
    run_exclusive_returns_the_output_and_releases,
    a_waiter_gives_up_with_a_timeout_while_the_lock_stays_held,
    bad_names_and_ttls_are_refused,
);

async fn concurrent_read_modify_writes_under_the_lock_lose_no_update(h: Harness) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 5;
    let nodes = [h.instance("node-a").await, h.instance("node-b").await];
    let counter = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let lock = Arc::clone(&nodes[i % 2]);
        let counter = Arc::clone(&counter);
        let tokens = Arc::clone(&tokens);
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = lock
                    .acquire("counter", Duration::from_secs(2), Duration::from_secs(20))
                    .await
                    .unwrap();
                guard.check().unwrap();
                tokens.lock().push(guard.fencing_token());
                // Read, yield, write: without the lock, updates would be lost.
                let read = counter.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                counter.store(read + 1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), (TASKS * ROUNDS) as u64);
    let tokens = tokens.lock();
    assert_eq!(tokens.len(), TASKS * ROUNDS);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens not strictly increasing in acquisition order: {tokens:?}"
    );
}

async fn fencing_tokens_strictly_increase_across_instances(h: Harness) {
    let a = h.instance("node-a").await;
    let b = h.instance("node-b").await;
    let mut last = 0;
    for i in 0..6 {
        let lock = if i % 2 == 0 { &a } else { &b };
        let guard = lock.acquire("fenced", SHORT_TTL, PATIENCE).await.unwrap();
        assert!(
            guard.fencing_token() > last,
            "token {} after {last}",
            guard.fencing_token()
        );
        last = guard.fencing_token();
        guard.release().await.unwrap();
    }
    // Another lock name has its own counter (in Redis it starts at the
    // server's clock in microseconds: tests/adapters/lock_redis.rs).
    let other = a.try_acquire("other", SHORT_TTL).await.unwrap().unwrap();
    if matches!(h, Harness::Local(_)) {
        assert_eq!(other.fencing_token(), 1);
    }
    other.release().await.unwrap();
}

async fn a_crashed_holder_frees_the_lock_after_its_ttl(h: Harness) {
    let crashed = h.acquire_on_dying_runtime("job", CRASH_TTL);
    let token = crashed.fencing_token();
    std::mem::forget(crashed);
    let lock = h.instance("node-survivor").await;
    assert!(
        lock.try_acquire("job", SHORT_TTL).await.unwrap().is_none(),
        "the TTL has not passed yet"
    );
    let started = Instant::now();
    let guard = lock.acquire("job", SHORT_TTL, PATIENCE).await.unwrap();
    assert!(started.elapsed() < PATIENCE);
    assert!(guard.fencing_token() > token);
    guard.release().await.unwrap();
}

async fn a_waiter_wakes_on_release_without_waiting_for_its_poll(h: Harness) {
    // The waiter polls only every 30 s: acquiring within PATIENCE after the
    // release can only come from the release notification.
    let holder = h.instance("node-holder").await;
    let waiter = h
        .instance_polling("node-waiter", Duration::from_secs(30))
        .await;
    let guard = holder.acquire("wake", LONG_TTL, PATIENCE).await.unwrap();
    let waiting = tokio::spawn(async move {
        let g = waiter
            .acquire("wake", LONG_TTL, Duration::from_secs(60))
            .await
            .unwrap();
        let at = Instant::now();
        g.release().await.unwrap();
        at
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the waiter got a held lock");
    let released_at = Instant::now();
    guard.release().await.unwrap();
    let acquired_at = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("waiter was not woken")
        .unwrap();
    assert!(acquired_at >= released_at);
}

async fn try_acquire_on_a_held_lock_returns_none(h: Harness) {
    let a = h.instance("node-a").await;
    let b = h.instance("node-b").await;
    let guard = a
        .try_acquire("busy", LONG_TTL)
        .await
        .unwrap()
        .expect("free at first");
    assert!(b.try_acquire("busy", LONG_TTL).await.unwrap().is_none());
    // Not reentrant: the same instance does not get it twice either.
    assert!(a.try_acquire("busy", LONG_TTL).await.unwrap().is_none());
    assert_eq!(guard.name(), "busy");
    guard.release().await.unwrap();
    let again = b
        .try_acquire("busy", LONG_TTL)
        .await
        .unwrap()
        .expect("free after release");
    again.release().await.unwrap();
}

async fn extend_renews_a_held_lock_and_fails_once_the_lock_is_lost(h: Harness) {
    let lock = h.instance("node-a").await;
    let guard = lock.acquire("ext", SHORT_TTL, PATIENCE).await.unwrap();
    guard.extend(LONG_TTL).await.unwrap();
    assert_eq!(guard.ttl(), LONG_TTL);
    guard.check().unwrap();
    guard.release().await.unwrap();

    // A holder whose watchdog died loses the lock after its TTL; another
    // node takes it; the old guard can neither extend nor release it.
    let stale = h.acquire_on_dying_runtime("ext", CRASH_TTL);
    let fresh = lock.acquire("ext", LONG_TTL, PATIENCE).await.unwrap();
    assert!(fresh.fencing_token() > stale.fencing_token());
    assert!(stale.is_lost());
    assert!(matches!(stale.check(), Err(LockError::Lost { .. })));
    assert!(matches!(
        stale.extend(LONG_TTL).await,
        Err(LockError::Lost { .. })
    ));
    assert!(matches!(stale.release().await, Err(LockError::Lost { .. })));
    assert!(
        lock.try_acquire("ext", LONG_TTL).await.unwrap().is_none(),
        "the new holder keeps it"
    );
    fresh.check().unwrap();
    fresh.release().await.unwrap();
}

async fn a_dropped_guard_releases_the_lock(h: Harness) {
    let a = h.instance("node-a").await;
    let b = h.instance_polling("node-b", Duration::from_secs(30)).await;
    let guard = a.acquire("dropped", LONG_TTL, PATIENCE).await.unwrap();
    drop(guard);
    // Well before the 10 s TTL, and woken by the release, not by polling.
    let again = b.acquire("dropped", LONG_TTL, PATIENCE).await.unwrap();
    again.release().await.unwrap();
}

async fn run_exclusive_returns_the_output_and_releases(h: Harness) {
    let a = h.instance("node-a").await;
    let b = h.instance("node-b").await;
    let b2 = Arc::clone(&b);
    let out = a
        .run_exclusive("excl", SHORT_TTL, PATIENCE, async move {
            // Held by us during the work.
            b2.try_acquire("excl", SHORT_TTL).await.unwrap().is_none()
        })
        .await
        .unwrap();
    assert!(out, "the lock was not held during the work");
    let after = b
        .try_acquire("excl", SHORT_TTL)
        .await
        .unwrap()
        .expect("released after the work");
    after.release().await.unwrap();
}

async fn a_waiter_gives_up_with_a_timeout_while_the_lock_stays_held(h: Harness) {
    let a = h.instance("node-a").await;
    let b = h.instance("node-b").await;
    let guard = a.acquire("held", SHORT_TTL, PATIENCE).await.unwrap();
    // Longer than the TTL: the watchdog keeps it held.
    let err = b
        .acquire("held", SHORT_TTL, Duration::from_millis(700))
        .await
        .unwrap_err();
    match err {
        LockError::Timeout { name, waited } => {
            assert_eq!(name, "held");
            assert!(waited >= Duration::from_millis(700));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    guard.check().unwrap();
    guard.release().await.unwrap();
}

async fn bad_names_and_ttls_are_refused(h: Harness) {
    let a = h.instance("node-a").await;
    for name in [
        "",
        "with space",
        "glob*",
        "tag{x}",
        "open{",
        "close}",
        "x".repeat(201).as_str(),
    ] {
        assert!(
            matches!(
                a.try_acquire(name, SHORT_TTL).await,
                Err(LockError::InvalidName { .. })
            ),
            "{name:?} accepted"
        );
    }
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(5),
        Duration::from_secs(200_000),
    ] {
        assert!(matches!(
            a.acquire("ok", ttl, PATIENCE).await,
            Err(LockError::InvalidTtl { .. })
        ));
    }
    assert!(matches!(
        LocalLock::new(""),
        Err(LockError::InvalidNodeId { .. })
    ));
}
