//! The Redis lock backend: atomic acquire (set-if-absent with PX TTL plus
//! the fencing counter, or a place in the lock's FIFO wait queue, in one
//! script), compare-and-pexpire renewals, compare-and-delete release that
//! PUBLISHes the next waiter's id on the channel of the instance it waits
//! on, and each instance's lazily started subscriber to its own channel,
//! which wakes the waiter a message names.
//! Scripts: `scripts.rs`; key layout and value format: docs/redis-keys.md,
//! "Distributed lock".

use super::guard::Lease;
use super::inspect::{self, ForceReleaseOutcome, LockHolderInfo, LockInspection};
use super::keys::{fence_key, lock_key, release_channel, wait_key, wait_until_key, wake_channel};
use super::scripts::{ACQUIRE, LEAVE, RELEASE, RENEW};
use super::waiters::{Acquirer, Attempt, Waiters};
use super::watchdog::Watchdogs;
use super::{LockError, LockGuard, new_guard_id, ttl_ms, validate_node_id};
use crate::adapters::redis_conn::SharedConn;
use crate::adapters::redis_conn::{self, CONNECT_TIMEOUT};
use crate::config::{Namespace, SecretUrl};
use futures::StreamExt;
use parking_lot::Mutex;
use redis::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How long a first waiter waits for the release subscription before
/// relying on polling alone.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

/// Locks in Redis, shared by every node using the same namespace.
/// Clones share the connection and the release subscriber.
#[derive(Clone)]
pub struct RedisLock {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    namespace: Namespace,
    conn: SharedConn,
    url: String,
    /// `<ns>:lock-released`, the prefix of every instance's channel.
    channel_prefix: String,
    /// This instance's random id (16 hex digits): the first part of its
    /// waiter ids and the last of its channel.
    instance: String,
    /// Numbers this instance's waiters.
    next_waiter: AtomicU64,
    waiters: Arc<Waiters>,
    watchdogs: Watchdogs,
    listener: Mutex<Option<(AbortHandle, watch::Receiver<bool>)>>,
    /// Acquire scripts run (a debug counter: wake-ups show as attempts).
    attempts: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((task, _)) = self.listener.lock().take() {
            task.abort();
        }
    }
}

impl RedisLock {
    /// Connect to `url` and lock under `namespace` as `node_id`. The
    /// release subscription is opened on the first contended acquire.
    pub async fn connect(
        url: &SecretUrl,
        namespace: Namespace,
        node_id: impl Into<String>,
    ) -> Result<Self, LockError> {
        let node_id = validate_node_id(node_id.into())?;
        let conn = redis_conn::connect(url).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                node_id,
                channel_prefix: release_channel(&namespace),
                instance: new_guard_id(),
                next_waiter: AtomicU64::new(0),
                namespace,
                conn,
                url: url.masked().to_string(),
                waiters: Arc::default(),
                watchdogs: Watchdogs::default(),
                listener: Mutex::new(None),
                attempts: AtomicU64::new(0),
            }),
        })
    }

    /// Change how often a waiter re-tries when no release notification
    /// arrives (default 50–200 ms, drawn at random each time). A longer
    /// interval only matters if notifications are lost.
    pub fn set_poll_interval(&self, min: Duration, max: Duration) {
        self.inner.waiters.set_poll_interval(min, max);
    }

    /// How long a waiter of this instance keeps its place in a lock's wait
    /// queue without refreshing it (3 poll intervals, at least 250 ms): a
    /// waiter whose process died blocks the queue no longer than this.
    pub fn wait_keepalive(&self) -> Duration {
        self.inner.waiters.keepalive()
    }

    /// How many acquire attempts (acquire scripts) this instance and its
    /// clones have sent: one per `try_acquire`, one per wake-up or poll of a
    /// waiter. A debug counter for tests and benches.
    pub fn acquire_attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }

    /// The namespace the locks live under.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// The shared command connection (for the read-only inspector).
    pub fn connection(&self) -> SharedConn {
        self.inner.conn.clone()
    }

    /// Every lock of the namespace (read-only); see [`inspect::read_holders`].
    pub async fn read_holders(&self) -> Result<LockInspection, LockError> {
        inspect::read_holders(&mut self.connection(), &self.inner.namespace).await
    }

    /// One lock (read-only); see [`inspect::read_holder`].
    pub async fn read_holder(&self, name: &str) -> Result<Option<LockHolderInfo>, LockError> {
        inspect::read_holder(&mut self.connection(), &self.inner.namespace, name).await
    }

    /// Admin: delete `name` if its fencing token is `expected_token`, and
    /// wake its waiters; see [`inspect::force_release`].
    pub async fn force_release(
        &self,
        name: &str,
        expected_token: u64,
    ) -> Result<ForceReleaseOutcome, LockError> {
        inspect::force_release(
            &mut self.connection(),
            &self.inner.namespace,
            name,
            expected_token,
        )
        .await
    }

    /// The release subscriber's readiness, starting it if needed.
    fn listener_ready(&self) -> watch::Receiver<bool> {
        let mut slot = self.inner.listener.lock();
        if let Some((_, ready)) = slot.as_ref() {
            return ready.clone();
        }
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(listen(
            self.inner.conn.clone(),
            wake_channel(&self.inner.namespace, &self.inner.instance),
            self.inner.url.clone(),
            Arc::clone(&self.inner.waiters),
            tx,
        ));
        *slot = Some((task.abort_handle(), rx.clone()));
        rx
    }
}

/// Subscribe to the release channel and wake the waiter each message names
/// (if it waits on this instance); on a
/// lost connection, wake everyone (notifications may have been missed) and
/// resubscribe with backoff.
async fn listen(
    conn: SharedConn,
    channel: String,
    url: String,
    waiters: Arc<Waiters>,
    ready: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut pubsub = conn.pubsub().await.map_err(|e| e.reason)?;
            pubsub
                .subscribe(&channel)
                .await
                .map_err(|e| redis_conn::describe(&e))?;
            Ok::<_, String>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(mut pubsub)) => {
                backoff = Duration::from_millis(100);
                ready.send_replace(true);
                waiters.wake_all();
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    match std::str::from_utf8(msg.get_payload_bytes()) {
                        Ok(waiter) => waiters.wake(waiter),
                        Err(_) => {
                            tracing::debug!(%channel, "non-UTF-8 lock release message ignored")
                        }
                    }
                }
                ready.send_replace(false);
                waiters.wake_all();
                tracing::warn!(%url, %channel, "lock release subscription closed; resubscribing");
            }
            Ok(Err(e)) => {
                tracing::warn!(%url, %channel, error = %e, "cannot subscribe to lock releases; waiters poll meanwhile");
            }
            Err(_) => {
                tracing::warn!(%url, %channel, "subscribing to lock releases timed out; waiters poll meanwhile");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl Acquirer for RedisLock {
    const KIND: &'static str = "redis";

    fn acquiring_node(&self) -> &str {
        &self.inner.node_id
    }

    async fn attempt(
        &self,
        name: &str,
        ttl: Duration,
        waiter: Option<&str>,
    ) -> Result<Attempt, LockError> {
        let ns = &self.inner.namespace;
        let key = lock_key(ns, name);
        let suffix = format!(
            "|{}|{}|{}",
            crate::clock::now_ms(),
            new_guard_id(),
            self.inner.node_id
        );
        let mut conn = self.inner.conn.clone();
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let reply: Value = ACQUIRE
            .key(&key)
            .key(fence_key(ns, name))
            .key(wait_key(ns, name))
            .key(wait_until_key(ns, name))
            .arg(ttl_ms(ttl))
            .arg(&suffix)
            .arg(waiter.unwrap_or(""))
            .arg(ttl_ms(self.inner.waiters.keepalive()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LockError::redis(format!("acquiring lock {name:?}"), e))?;
        match reply {
            Value::Int(token) if token > 0 => {
                let token = token.unsigned_abs();
                let lease = RedisLease {
                    inner: Arc::clone(&self.inner),
                    key,
                    wait_keys: [wait_key(ns, name), wait_until_key(ns, name)],
                    name: name.to_string(),
                    value: format!("{token}{suffix}"),
                };
                Ok(Attempt::Acquired(LockGuard::new(
                    name,
                    token,
                    ttl,
                    sent,
                    Box::new(lease),
                    &self.inner.watchdogs,
                )))
            }
            Value::Array(items) => match items.as_slice() {
                [Value::Int(pttl)] => Ok(Attempt::Held {
                    ttl_left: u64::try_from(*pttl).ok().map(Duration::from_millis),
                }),
                _ => Err(unexpected(&key, "acquire")),
            },
            _ => Err(unexpected(&key, "acquire")),
        }
    }

    fn new_waiter_id(&self) -> String {
        let n = self.inner.next_waiter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n:x}|{}", self.inner.instance, self.inner.node_id)
    }

    fn notifications_ready(&self) -> bool {
        self.inner
            .listener
            .lock()
            .as_ref()
            .is_some_and(|(_, ready)| *ready.borrow())
    }

    async fn leave(&self, name: &str, waiter: &str) -> Result<(), LockError> {
        leave(&self.inner, name, waiter).await
    }

    fn leave_later(&self, name: &str, waiter: &str) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, name, waiter) = (
            Arc::clone(&self.inner),
            name.to_string(),
            waiter.to_string(),
        );
        handle.spawn(async move {
            if let Err(e) = leave(&inner, &name, &waiter).await {
                tracing::debug!(lock = %name, error = %e, "leaving the wait queue failed; the place expires");
            }
        });
    }

    async fn prepare_wait(&self, deadline: Instant) {
        let mut ready = self.listener_ready();
        if *ready.borrow() {
            return;
        }
        let limit = SUBSCRIBE_WAIT.min(deadline.saturating_duration_since(Instant::now()));
        let _ = tokio::time::timeout(limit, ready.wait_for(|r| *r)).await;
    }

    fn waiters(&self) -> &Arc<Waiters> {
        &self.inner.waiters
    }
}

/// Remove `waiter` from the queue of `name` (waking the next one if it was
/// first in line for a free lock).
async fn leave(inner: &Inner, name: &str, waiter: &str) -> Result<(), LockError> {
    let ns = &inner.namespace;
    let mut conn = inner.conn.clone();
    let _: i64 = LEAVE
        .key(lock_key(ns, name))
        .key(wait_key(ns, name))
        .key(wait_until_key(ns, name))
        .arg(waiter)
        .arg(&inner.channel_prefix)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| LockError::redis(format!("leaving the wait queue of lock {name:?}"), e))?;
    Ok(())
}

fn unexpected(key: &str, script: &str) -> LockError {
    LockError::Unreadable {
        key: key.to_string(),
        reason: format!("unexpected reply to the {script} script"),
    }
}

/// One held lock: its key (and its queue's) and the exact value this
/// guard wrote.
struct RedisLease {
    inner: Arc<Inner>,
    key: String,
    wait_keys: [String; 2],
    name: String,
    value: String,
}

#[async_trait::async_trait]
impl Lease for RedisLease {
    async fn renew(&self, ttl: Duration) -> Result<bool, LockError> {
        let mut conn = self.inner.conn.clone();
        let renewed: i64 = RENEW
            .key(&self.key)
            .arg(&self.value)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LockError::redis(format!("renewing lock {:?}", self.name), e))?;
        Ok(renewed == 1)
    }

    async fn release(&self) -> Result<bool, LockError> {
        let mut conn = self.inner.conn.clone();
        let released: i64 = RELEASE
            .key(&self.key)
            .key(&self.wait_keys[0])
            .key(&self.wait_keys[1])
            .arg(&self.value)
            .arg(&self.inner.channel_prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LockError::redis(format!("releasing lock {:?}", self.name), e))?;
        Ok(released == 1)
    }
}
