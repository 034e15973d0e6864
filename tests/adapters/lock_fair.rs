//! The Redis lock's FIFO wait queue (docs/redis-keys.md, "Distributed
//! lock"): waiters on separate connections get the lock in arrival order,
//! a release wakes only the head, a waiter that gives up or is dropped
//! leaves the queue (waking the next one when the lock is free), a dead
//! waiter blocks no longer than its keep-alive, `try_acquire` does not jump
//! the queue, and all of it on a Redis Cluster too.

use crate::common;

use clusterops::adapters::lock::{
    LockBackend, LockError, LockGuard, RedisLock, lock_key, read_waiters, wait_key,
};
use clusterops::config::SecretUrl;
use common::TestNs;
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LONG_TTL: Duration = Duration::from_secs(10);
const PATIENCE: Duration = Duration::from_secs(5);
/// A poll interval no test waits for: whatever happens sooner was caused
/// by a notification.
const NO_POLL: Duration = Duration::from_secs(30);

async fn lock_on(url: &str, ns: &TestNs, node: &str, poll: Duration) -> RedisLock {
    let url = SecretUrl::parse(url, &["redis"]).unwrap();
    let lock = RedisLock::connect(&url, ns.namespace(), node)
        .await
        .unwrap();
    lock.set_poll_interval(poll, poll);
    lock
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Wait until `cond` holds, up to PATIENCE.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many waiters the queue of `name` lists.
async fn queued(lock: &RedisLock, name: &str) -> u64 {
    read_waiters(&mut lock.connection(), lock.namespace(), name)
        .await
        .unwrap()
}

/// Start `lock` waiting for `name` and return once it is queued (the queue
/// has grown to `position + 1`) and has made its post-subscription attempt.
async fn start_waiting(
    lock: &RedisLock,
    name: &'static str,
    position: u64,
    wait: Duration,
) -> tokio::task::JoinHandle<Result<LockGuard, LockError>> {
    let before = lock.acquire_attempts();
    let waiter = lock.clone();
    let task = tokio::spawn(async move { waiter.acquire(name, LONG_TTL, wait).await });
    eventually("waiter queued", || async {
        queued(lock, name).await == position + 1 && lock.acquire_attempts() >= before + 2
    })
    .await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_separate_connections_get_the_lock_in_arrival_order() {
    let ns = TestNs::new("lock-fifo");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("fifo", LONG_TTL, PATIENCE).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        // Polling every few ms: each waiter tries the lock all the time, so
        // only the queue keeps the later ones out.
        let lock = lock_on(&ns.url, &ns, &format!("node-{i}"), Duration::from_millis(3)).await;
        let task = start_waiting(&lock, "fifo", i, Duration::from_secs(60)).await;
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let g = task.await.unwrap().unwrap();
            order.lock().push(i);
            // Hold it a moment: a later waiter barging in would show.
            tokio::time::sleep(Duration::from_millis(20)).await;
            g.release().await.unwrap();
            lock
        }));
    }
    guard.release().await.unwrap();
    for t in tasks {
        tokio::time::timeout(PATIENCE, t).await.unwrap().unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
    assert_eq!(queued(&holder, "fifo").await, 0, "the queue is empty again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_only_the_head_of_the_queue() {
    let ns = TestNs::new("lock-wake-one");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("one", LONG_TTL, PATIENCE).await.unwrap();
    let mut locks = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        let lock = lock_on(&ns.url, &ns, &format!("node-{i}"), NO_POLL).await;
        let task = start_waiting(&lock, "one", i, Duration::from_secs(60)).await;
        tasks.push(tokio::spawn(async move {
            let g = task.await.unwrap().unwrap();
            g.release().await.unwrap();
        }));
        locks.push(lock);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: u64 = locks.iter().map(RedisLock::acquire_attempts).sum();
    guard.release().await.unwrap();
    for t in tasks {
        tokio::time::timeout(PATIENCE, t).await.unwrap().unwrap();
    }
    let after: u64 = locks.iter().map(RedisLock::acquire_attempts).sum();
    // Five releases (the holder's and four waiters'), each waking only the
    // next waiter: one attempt each. Waking every waiter on each release
    // would take 5 + 4 + 3 + 2 + 1 = 15.
    assert_eq!(
        after - before,
        5,
        "acquire attempts after the first release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_times_out_leaves_the_queue_and_the_next_gets_the_release() {
    let ns = TestNs::new("lock-leave");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("leave", LONG_TTL, PATIENCE).await.unwrap();
    let quitter = lock_on(&ns.url, &ns, "node-quitter", NO_POLL).await;
    let patient = lock_on(&ns.url, &ns, "node-patient", NO_POLL).await;
    let quitting = start_waiting(&quitter, "leave", 0, Duration::from_millis(1500)).await;
    let waiting = start_waiting(&patient, "leave", 1, Duration::from_secs(60)).await;
    let err = tokio::time::timeout(PATIENCE, quitting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, LockError::Timeout { .. }), "{err}");
    assert_eq!(queued(&holder, "leave").await, 1, "the quitter left");
    // The release goes to the patient waiter (it polls every 30 s: only
    // the notification can wake it within PATIENCE).
    guard.release().await.unwrap();
    let got = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the next waiter was woken")
        .unwrap()
        .unwrap();
    got.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_head_of_a_free_lock_wakes_the_next_waiter_at_once() {
    let ns = TestNs::new("lock-drop-head");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("head", LONG_TTL, PATIENCE).await.unwrap();
    let first = lock_on(&ns.url, &ns, "node-first", NO_POLL).await;
    let second = lock_on(&ns.url, &ns, "node-second", NO_POLL).await;
    let dropped = start_waiting(&first, "head", 0, Duration::from_secs(60)).await;
    let waiting = start_waiting(&second, "head", 1, Duration::from_secs(60)).await;
    // The lock's TTL "passes" (deleted, nothing published): it is free but
    // reserved for the head, which polls only every 30 s.
    let mut conn = raw(&ns.url).await;
    let _: i64 = conn.del(lock_key(&ns.namespace(), "head")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the second waiter jumped the queue");
    // The head's acquire is cancelled (its task aborted): it leaves the
    // queue and, the lock being free, wakes the next waiter.
    dropped.abort();
    let got = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the next waiter was woken")
        .unwrap()
        .unwrap();
    assert_eq!(queued(&holder, "head").await, 0);
    got.release().await.unwrap();
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_waiter_blocks_the_lock_no_longer_than_its_keep_alive() {
    let ns = TestNs::new("lock-dead-waiter");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("dead", LONG_TTL, PATIENCE).await.unwrap();
    // A waiter in a "process" that dies: its own runtime, shut down while
    // it waits, so it never removes itself nor refreshes its keep-alive.
    let url = ns.url.clone();
    let nsn = ns.namespace();
    let keepalive = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let keepalive = rt.block_on(async {
            let url = SecretUrl::parse(&url, &["redis"]).unwrap();
            let lock = RedisLock::connect(&url, nsn, "node-doomed").await.unwrap();
            lock.set_poll_interval(Duration::from_millis(50), Duration::from_millis(100));
            let waiter = lock.clone();
            tokio::spawn(async move {
                waiter
                    .acquire("dead", LONG_TTL, Duration::from_secs(60))
                    .await
            });
            while lock.acquire_attempts() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            lock.wait_keepalive()
        });
        rt.shutdown_timeout(Duration::from_millis(100));
        keepalive
    })
    .join()
    .unwrap();
    let died = Instant::now();
    assert_eq!(
        queued(&holder, "dead").await,
        1,
        "the dead waiter is still queued"
    );
    let live = lock_on(&ns.url, &ns, "node-live", Duration::from_millis(50)).await;
    let waiting = start_waiting(&live, "dead", 1, Duration::from_secs(60)).await;
    guard.release().await.unwrap();
    let got = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the live waiter got the lock")
        .unwrap()
        .unwrap();
    let blocked = died.elapsed();
    println!(
        "dead waiter's keep-alive {keepalive:?}; the lock was free to the live waiter after {blocked:?}"
    );
    // Purged once its keep-alive passed (plus the live waiter's poll and
    // scheduling on a loaded machine), not before the dead waiter's turn.
    assert!(
        blocked <= keepalive + Duration::from_millis(600),
        "{blocked:?}"
    );
    assert_eq!(
        queued(&holder, "dead").await,
        0,
        "the dead waiter was purged"
    );
    got.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_acquire_does_not_jump_the_queue() {
    let ns = TestNs::new("lock-try-fair");
    let holder = lock_on(&ns.url, &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("fair", LONG_TTL, PATIENCE).await.unwrap();
    let waiter = lock_on(&ns.url, &ns, "node-waiter", NO_POLL).await;
    let waiting = start_waiting(&waiter, "fair", 0, Duration::from_secs(60)).await;
    let mut conn = raw(&ns.url).await;
    let _: i64 = conn.del(lock_key(&ns.namespace(), "fair")).await.unwrap();
    let other = lock_on(&ns.url, &ns, "node-other", NO_POLL).await;
    assert!(
        other.try_acquire("fair", LONG_TTL).await.unwrap().is_none(),
        "a free lock with a queued waiter is the waiter's"
    );
    waiting.abort();
    eventually("the cancelled waiter left", || async {
        queued(&holder, "fair").await == 0
    })
    .await;
    let g = other
        .try_acquire("fair", LONG_TTL)
        .await
        .unwrap()
        .expect("free, nobody waiting");
    g.release().await.unwrap();
    drop(guard);
    let keys: Vec<String> = conn.keys(wait_key(&ns.namespace(), "*")).await.unwrap();
    assert!(keys.is_empty(), "wait-queue keys left: {keys:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wait_queue_works_on_a_redis_cluster() {
    use common::cluster::RedisCluster;
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let ns = TestNs::on("rc-lock-fifo", &cluster.url(0));
    let holder = lock_on(&cluster.url(0), &ns, "node-holder", NO_POLL).await;
    let guard = holder.acquire("fifo", LONG_TTL, PATIENCE).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        // Each waiter connects through another node's URL.
        let lock = lock_on(&cluster.url(i as usize), &ns, &format!("node-{i}"), NO_POLL).await;
        let task = start_waiting(&lock, "fifo", i, Duration::from_secs(60)).await;
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let g = task.await.unwrap().unwrap();
            order.lock().push(i);
            tokio::time::sleep(Duration::from_millis(20)).await;
            g.release().await.unwrap();
        }));
    }
    let before = holder.acquire_attempts();
    guard.release().await.unwrap();
    for t in tasks {
        tokio::time::timeout(PATIENCE, t).await.unwrap().unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2]);
    assert_eq!(holder.acquire_attempts(), before);
    assert_eq!(queued(&holder, "fifo").await, 0);
}
