//! Worker-ID leases in Redis: acquire one of the 32 IDs in one round trip,
//! renew it every ttl/3 from a background task, fence the generator when
//! renewals stop or the lease is lost, re-acquire, and release on shutdown.

use super::lease::mono_at;
use super::replicated;
use super::reply::{as_array, as_i64, as_u64, no_free_id};
use super::scripts::{self, ACQUIRE, RELEASE, RENEW};
use super::{DEFAULT_TTL, HolderInfo, WORKER_IDS, WorkerIdAllocator, WorkerIdError, WorkerLease};
use crate::adapters::redis_conn::SharedConn;
use crate::config::Namespace;
use parking_lot::Mutex;
use redis::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Shortest accepted TTL.
const MIN_TTL: Duration = Duration::from_millis(300);
/// How long `release` waits for an in-flight renewal before aborting it.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Options for [`RedisWorkerIds`]; finish with [`RedisWorkerIdsBuilder::start`].
#[derive(Clone)]
pub struct RedisWorkerIdsBuilder {
    conn: SharedConn,
    ns: Namespace,
    node: String,
    ttl: Duration,
    margin: Option<Duration>,
}

impl RedisWorkerIdsBuilder {
    /// Lease TTL (default 15 s, at least 300 ms). Renewals run every ttl/3.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long before the TTL would run out the generator stops issuing
    /// (default ttl/5, at most ttl/2): covers clock-rate differences between
    /// this node and Redis and a thread paused between check and issue.
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// Acquire a free worker ID (error if all 32 are in use) and start the
    /// renewal task. Needs a Tokio runtime.
    pub async fn start(self) -> Result<RedisWorkerIds, WorkerIdError> {
        if self.ttl < MIN_TTL {
            return Err(WorkerIdError::InvalidOptions(format!(
                "ttl {:?} is below {MIN_TTL:?}",
                self.ttl
            )));
        }
        let margin = self.margin.unwrap_or(self.ttl / 5);
        if margin > self.ttl / 2 {
            return Err(WorkerIdError::InvalidOptions(format!(
                "margin {margin:?} is above ttl/2 ({:?}): the lease would fence between renewals",
                self.ttl / 2
            )));
        }
        let shared = Arc::new(Shared {
            all_keys: scripts::all_keys(&self.ns),
            replicated: self.conn.is_replicated(),
            replica_wait: replicated::replica_wait(self.ttl),
            conn: self.conn,
            ns: self.ns,
            node: self.node,
            ttl: self.ttl,
            margin,
            lease: Arc::new(WorkerLease::acquiring()),
            held: Mutex::new(None),
            paused: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        });
        match shared.acquire().await {
            Ok(id) => {
                tracing::info!(node = %shared.node, worker_id = id, ns = %shared.ns, "worker ID leased");
            }
            // The master has no replica that acknowledges: start fenced and
            // try again at each renewal tick.
            Err(e @ WorkerIdError::Unconfirmed { .. }) => {
                tracing::warn!(node = %shared.node, ns = %shared.ns, "{e}");
            }
            Err(e) => return Err(e),
        }
        let task = tokio::spawn(renew_loop(Arc::clone(&shared)));
        Ok(RedisWorkerIds {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

/// A worker ID leased in Redis and kept renewed by a background task.
/// Dropping it without [`WorkerIdAllocator::release`] stops the renewals;
/// the lease then expires after its TTL.
pub struct RedisWorkerIds {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Clone)]
struct Held {
    id: u8,
    value: String,
}

struct Shared {
    conn: SharedConn,
    ns: Namespace,
    node: String,
    ttl: Duration,
    margin: Duration,
    /// Sentinel URL: lease writes count only once a replica has them.
    replicated: bool,
    replica_wait: Duration,
    all_keys: Vec<String>,
    lease: Arc<WorkerLease>,
    held: Mutex<Option<Held>>,
    paused: AtomicBool,
    stopped: AtomicBool,
    stop: Notify,
}

impl RedisWorkerIds {
    /// Start building an allocator for `node_id` on the namespace `ns`.
    pub fn builder(
        conn: SharedConn,
        ns: Namespace,
        node_id: impl Into<String>,
    ) -> RedisWorkerIdsBuilder {
        RedisWorkerIdsBuilder {
            conn,
            ns,
            node: node_id.into(),
            ttl: DEFAULT_TTL,
            margin: None,
        }
    }

    /// The node id leases are held for.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Test and operations hook: stop (or resume) renewing and
    /// re-acquiring. While paused the lease runs out and the generator
    /// fences itself within ttl - margin.
    pub fn pause_renewals(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Release);
    }
}

impl Drop for RedisWorkerIds {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl WorkerIdAllocator for RedisWorkerIds {
    fn lease(&self) -> Arc<WorkerLease> {
        Arc::clone(&self.shared.lease)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn release(&self) -> Result<(), WorkerIdError> {
        let shared = &self.shared;
        shared.stopped.store(true, Ordering::Release);
        shared.stop.notify_one();
        let task = self.task.lock().take();
        if let Some(mut task) = task
            && tokio::time::timeout(STOP_WAIT, &mut task).await.is_err()
        {
            task.abort();
        }
        let held = shared.held.lock().take();
        let closed = shared.lease.close();
        let (Some(held), Some((id, bound))) = (held, closed) else {
            return Ok(());
        };
        debug_assert_eq!(held.id, id);
        let mut conn = shared.conn.clone();
        let released: i64 = RELEASE
            .key(scripts::lease_key(&shared.ns, held.id))
            .key(scripts::last_ts_key(&shared.ns, held.id))
            .arg(&held.value)
            .arg(bound)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| WorkerIdError::Redis {
                action: "release",
                source,
            })?;
        if released == 1 {
            tracing::info!(node = %shared.node, worker_id = held.id, last_ts = bound, "worker ID released");
        } else {
            tracing::warn!(
                node = %shared.node,
                worker_id = held.id,
                "worker-ID lease was no longer ours at release (expired or taken over)"
            );
        }
        Ok(())
    }
}

async fn renew_loop(shared: Arc<Shared>) {
    let interval = shared.ttl / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shared.stop.notified() => {}
        }
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        if shared.paused.load(Ordering::Acquire) {
            continue;
        }
        let held = shared.held.lock().clone();
        match held {
            Some(held) => shared.renew(held).await,
            None => match shared.acquire().await {
                Ok(id) => tracing::info!(
                    node = %shared.node,
                    worker_id = id,
                    "worker ID re-acquired; snowflake IDs resume"
                ),
                Err(e) => tracing::warn!(node = %shared.node, "cannot re-acquire a worker ID: {e}"),
            },
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Shared {
    /// The monotonic deadline of a lease whose (re)newal was sent at `sent`.
    fn deadline(&self, sent: Instant) -> u64 {
        mono_at(sent)
            .saturating_add(u64::try_from((self.ttl - self.margin).as_nanos()).unwrap_or(0))
    }

    /// The `last_ts` this holder asks to persist: a second no ID issued
    /// before the lease is next renewed (or fenced) can exceed.
    fn cap_now(&self) -> u64 {
        crate::clock::now_secs() + ceil_secs(self.ttl)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn acquire(&self) -> Result<u8, WorkerIdError> {
        let value = HolderInfo::for_this_process(&self.node).to_value();
        let mut conn = self.conn.clone();
        let redis_err = |source| WorkerIdError::Redis {
            action: "acquire",
            source,
        };
        // Sentinel mode: the master's replication ID, for the quarantine.
        let replid = if self.replicated {
            match replicated::master_replid(&mut conn, &super::scripts::epoch_key(&self.ns))
                .await
                .map_err(redis_err)?
            {
                Some(id) => id,
                None => {
                    return Err(WorkerIdError::Unconfirmed {
                        action: "acquisition",
                        reason: format!("{} does not report itself master", conn.server()),
                    });
                }
            }
        } else {
            String::new()
        };
        let mut invocation = ACQUIRE.prepare_invoke();
        for key in &self.all_keys {
            invocation.key(key);
        }
        invocation
            .arg(&value)
            .arg(self.ttl_ms())
            .arg(self.cap_now())
            .arg(&replid)
            .arg(replicated::QUARANTINE_SKEW_SECS);
        let sent = Instant::now();
        let (reply, unconfirmed) = if self.replicated {
            let done = replicated::run_confirmed(
                &mut conn,
                &ACQUIRE,
                &invocation,
                self.replica_wait,
                true,
            )
            .await
            .map_err(redis_err)?;
            let why = if done.replicas < 1 {
                Some(format!(
                    "no replica acknowledged it within {:?}",
                    self.replica_wait
                ))
            } else if done.replid.as_deref() != Some(replid.as_str()) {
                Some("the Redis master changed during the acquisition".to_string())
            } else {
                None
            };
            (as_array(done.reply), why)
        } else {
            let reply: Vec<Value> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)?;
            (reply, None)
        };
        let bad = |reason: &str| WorkerIdError::Unreadable {
            key: scripts::worker_keys_pattern(&self.ns),
            reason: format!("acquire script replied {reply:?}: {reason}"),
        };
        let first = reply
            .first()
            .and_then(as_i64)
            .ok_or_else(|| bad("no status"))?;
        if first < 0 {
            return Err(no_free_id(&self.ns, &reply[1..]));
        }
        let id = u8::try_from(first)
            .ok()
            .filter(|id| *id < WORKER_IDS)
            .ok_or_else(|| bad("ID out of range"))?;
        let floor = reply
            .get(1)
            .and_then(as_u64)
            .ok_or_else(|| bad("no last_ts"))?;
        let cap = reply.get(2).and_then(as_u64).ok_or_else(|| bad("no cap"))?;
        if let Some(reason) = unconfirmed {
            self.lease.set_unconfirmed(true);
            self.give_back(id, &value, floor).await;
            return Err(WorkerIdError::Unconfirmed {
                action: "acquisition",
                reason: format!("worker ID {id}: {reason}"),
            });
        }
        self.lease.install(id, floor, cap, self.deadline(sent));
        self.lease.set_unconfirmed(false);
        *self.held.lock() = Some(Held { id, value });
        if floor >= crate::clock::now_secs() {
            tracing::info!(
                node = %self.node,
                worker_id = id,
                last_ts = floor,
                "worker ID was used up to a second not yet past (or its Redis master is new); \
                 IDs start after it"
            );
        }
        Ok(id)
    }

    /// Best effort: free an acquisition that is not used (not confirmed by
    /// a replica), so the ID is not blocked for a TTL. `last_ts` is set to
    /// the floor the acquisition read (nothing was issued under it).
    async fn give_back(&self, id: u8, value: &str, floor: u64) {
        let mut conn = self.conn.clone();
        let freed: Result<i64, _> = RELEASE
            .key(scripts::lease_key(&self.ns, id))
            .key(scripts::last_ts_key(&self.ns, id))
            .arg(value)
            .arg(floor)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = freed {
            tracing::debug!(node = %self.node, worker_id = id, "unconfirmed acquisition not given back: {e}");
        }
    }

    async fn renew(&self, held: Held) {
        let cap = self
            .cap_now()
            .max(self.lease.window_snapshot().issued_bound());
        let mut conn = self.conn.clone();
        let mut invocation = RENEW.prepare_invoke();
        invocation
            .key(scripts::lease_key(&self.ns, held.id))
            .key(scripts::last_ts_key(&self.ns, held.id))
            .arg(&held.value)
            .arg(self.ttl_ms())
            .arg(cap);
        let sent = Instant::now();
        let reply: Result<(Vec<Value>, i64), _> = if self.replicated {
            replicated::run_confirmed(&mut conn, &RENEW, &invocation, self.replica_wait, false)
                .await
                .map(|done| (as_array(done.reply), done.replicas))
        } else {
            invocation.invoke_async(&mut conn).await.map(|v| (v, 1))
        };
        match reply {
            Ok((values, replicas)) => match (
                values.first().and_then(as_i64),
                values.get(1).and_then(as_u64),
            ) {
                (Some(1), Some(persisted)) if replicas >= 1 => {
                    self.lease.extend(persisted, self.deadline(sent));
                    if self.lease.is_unconfirmed() {
                        self.lease.set_unconfirmed(false);
                        tracing::info!(
                            node = %self.node,
                            worker_id = held.id,
                            "a Redis replica confirms the worker-ID lease again"
                        );
                    }
                }
                (Some(1), Some(_)) => {
                    // Renewed on the master only: a failover could lose it.
                    // Keep the last confirmed cap and deadline.
                    if !self.lease.is_unconfirmed() {
                        tracing::warn!(
                            node = %self.node,
                            worker_id = held.id,
                            server = %conn.server(),
                            "no Redis replica acknowledged the worker-ID lease renewal within \
                             {:?}; IDs stop when the last confirmed renewal runs out unless a \
                             replica catches up (check INFO replication on the master)",
                            self.replica_wait
                        );
                    }
                    self.lease.set_unconfirmed(true);
                }
                _ => {
                    self.lease.fence_lost();
                    *self.held.lock() = None;
                    tracing::warn!(
                        node = %self.node,
                        worker_id = held.id,
                        "worker-ID lease lost (taken over or deleted); snowflake IDs paused \
                         until a free ID is re-acquired"
                    );
                }
            },
            Err(e) => tracing::warn!(
                node = %self.node,
                worker_id = held.id,
                "worker-ID lease renewal failed: {e}; IDs stop if no renewal succeeds \
                 within {:?}",
                self.ttl - self.margin
            ),
        }
    }
}
