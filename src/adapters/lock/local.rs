//! The in-process lock backend: same semantics as the Redis one (fencing
//! tokens, TTL expiry, lost detection, FIFO wait queue with wake-one on
//! release) within one process only. Not a cluster lock.

use super::guard::Lease;
use super::inspect::LockHolderInfo;
use super::waiters::{Acquirer, Attempt, Waiters};
use super::watchdog::Watchdogs;
use super::{LockError, LockGuard, validate_node_id};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// In-process locks. Clones share the same locks.
#[derive(Clone)]
pub struct LocalLock {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    slots: Mutex<HashMap<String, Slot>>,
    waiters: Arc<Waiters>,
    watchdogs: Watchdogs,
}

/// One lock name: its fencing counter (kept after release, like the Redis
/// counter key), its current holder and its waiters in arrival order.
#[derive(Default)]
struct Slot {
    last_token: u64,
    holder: Option<Holder>,
    queue: VecDeque<String>,
}

struct Holder {
    guard_id: u64,
    token: u64,
    expires: Instant,
    acquired_at_ms: u64,
}

impl Slot {
    /// The live holder, dropping an expired one.
    fn live_holder(&mut self, now: Instant) -> Option<&mut Holder> {
        if self.holder.as_ref().is_some_and(|h| h.expires <= now) {
            self.holder = None;
        }
        self.holder.as_mut()
    }
}

impl LocalLock {
    /// In-process locks acquired as `node_id`.
    pub fn new(node_id: impl Into<String>) -> Result<Self, LockError> {
        Ok(Self {
            inner: Arc::new(Inner {
                node_id: validate_node_id(node_id.into())?,
                slots: Mutex::new(HashMap::new()),
                waiters: Arc::default(),
                watchdogs: Watchdogs::default(),
            }),
        })
    }

    /// Change how often a waiter re-tries when no release notification
    /// arrives (default 50–200 ms, drawn at random each time). A longer
    /// interval only matters if notifications are lost.
    pub fn set_poll_interval(&self, min: Duration, max: Duration) {
        self.inner.waiters.set_poll_interval(min, max);
    }

    /// The current holders (expired ones excluded), sorted by name.
    pub fn holders(&self) -> Vec<LockHolderInfo> {
        let now = Instant::now();
        let mut out: Vec<LockHolderInfo> = self
            .inner
            .slots
            .lock()
            .iter()
            .filter_map(|(name, slot)| {
                let h = slot.holder.as_ref().filter(|h| h.expires > now)?;
                Some(LockHolderInfo {
                    name: name.clone(),
                    holder_node: self.inner.node_id.clone(),
                    guard_id: format!("{:016x}", h.guard_id),
                    acquired_at_ms: h.acquired_at_ms,
                    fencing_token: h.token,
                    ttl_left: h.expires - now,
                    waiters: None,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl Acquirer for LocalLock {
    const KIND: &'static str = "local";

    fn acquiring_node(&self) -> &str {
        &self.inner.node_id
    }

    async fn attempt(
        &self,
        name: &str,
        ttl: Duration,
        waiter: Option<&str>,
    ) -> Result<Attempt, LockError> {
        let now = Instant::now();
        let guard_id = rand::random::<u64>();
        let token = {
            let mut slots = self.inner.slots.lock();
            let slot = slots.entry(name.to_string()).or_default();
            let ttl_left = slot.live_holder(now).map(|h| h.expires - now);
            let my_turn = slot
                .queue
                .front()
                .is_none_or(|head| Some(head.as_str()) == waiter);
            if ttl_left.is_some() || !my_turn {
                if let Some(me) = waiter
                    && !slot.queue.iter().any(|w| w == me)
                {
                    slot.queue.push_back(me.to_string());
                }
                return Ok(Attempt::Held { ttl_left });
            }
            if waiter.is_some() {
                slot.queue.pop_front();
            }
            slot.last_token += 1;
            slot.holder = Some(Holder {
                guard_id,
                token: slot.last_token,
                expires: now + ttl,
                acquired_at_ms: crate::clock::now_ms(),
            });
            slot.last_token
        };
        let lease = LocalLease {
            inner: Arc::clone(&self.inner),
            name: name.to_string(),
            guard_id,
        };
        Ok(Attempt::Acquired(LockGuard::new(
            name,
            token,
            ttl,
            now,
            Box::new(lease),
            &self.inner.watchdogs,
        )))
    }

    fn new_waiter_id(&self) -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    async fn leave(&self, name: &str, waiter: &str) -> Result<(), LockError> {
        self.leave_later(name, waiter);
        Ok(())
    }

    fn leave_later(&self, name: &str, waiter: &str) {
        let next = {
            let mut slots = self.inner.slots.lock();
            let Some(slot) = slots.get_mut(name) else {
                return;
            };
            let was_first = slot.queue.front().is_some_and(|w| w == waiter);
            slot.queue.retain(|w| w != waiter);
            let free = slot.live_holder(Instant::now()).is_none();
            if was_first && free {
                slot.queue.front().cloned()
            } else {
                None
            }
        };
        if let Some(next) = next {
            self.inner.waiters.wake(&next);
        }
    }

    fn notifications_ready(&self) -> bool {
        true
    }

    async fn prepare_wait(&self, _deadline: Instant) {}

    fn waiters(&self) -> &Arc<Waiters> {
        &self.inner.waiters
    }
}

struct LocalLease {
    inner: Arc<Inner>,
    name: String,
    guard_id: u64,
}

#[async_trait::async_trait]
impl Lease for LocalLease {
    async fn renew(&self, ttl: Duration) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut slots = self.inner.slots.lock();
        let Some(holder) = slots.get_mut(&self.name).and_then(|s| s.live_holder(now)) else {
            return Ok(false);
        };
        if holder.guard_id != self.guard_id {
            return Ok(false);
        }
        holder.expires = now + ttl;
        Ok(true)
    }

    async fn release(&self) -> Result<bool, LockError> {
        let now = Instant::now();
        let (released, next) = {
            let mut slots = self.inner.slots.lock();
            let Some(slot) = slots.get_mut(&self.name) else {
                return Ok(false);
            };
            let ours = slot
                .live_holder(now)
                .is_some_and(|h| h.guard_id == self.guard_id);
            if ours {
                slot.holder = None;
            }
            (ours, slot.queue.front().cloned().filter(|_| ours))
        };
        if let Some(next) = next {
            self.inner.waiters.wake(&next);
        }
        Ok(released)
    }
}
