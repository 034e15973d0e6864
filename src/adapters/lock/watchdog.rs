//! The watchdog that renews held locks: one task per backend instance and
//! tokio runtime (not one per guard, so acquiring spawns nothing), which
//! sleeps until the earliest renewal is due and renews each due guard in a
//! task of its own.

use super::guard::Shared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Id};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// How often an idle watchdog looks anyway.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The watchdogs of one backend instance, one per runtime it is used on
/// (usually one). A watchdog dies with its runtime, like the guards'
/// holder would.
#[derive(Default)]
pub(crate) struct Watchdogs {
    by_runtime: Mutex<Vec<(Id, Arc<Watchdog>, AbortHandle)>>,
}

impl Drop for Watchdogs {
    fn drop(&mut self) {
        for (_, _, task) in self.by_runtime.lock().drain(..) {
            task.abort();
        }
    }
}

impl Watchdogs {
    /// Have `shared` renewed from now on by the current runtime's watchdog;
    /// `None` outside a tokio runtime.
    pub(crate) fn register(&self, shared: &Arc<Shared>) -> Option<Registration> {
        let handle = Handle::try_current().ok()?;
        let id = handle.id();
        let watchdog = {
            let mut all = self.by_runtime.lock();
            all.retain(|(_, _, task)| !task.is_finished());
            match all.iter().find(|(rt, _, _)| *rt == id) {
                Some((_, w, _)) => Arc::clone(w),
                None => {
                    let w = Arc::new(Watchdog::default());
                    let task = handle.spawn(run(Arc::clone(&w))).abort_handle();
                    all.push((id, Arc::clone(&w), task));
                    w
                }
            }
        };
        let key = {
            let mut state = watchdog.state.lock();
            state.next_key += 1;
            let key = state.next_key;
            state.guards.insert(key, Arc::downgrade(shared));
            key
        };
        watchdog.schedule(shared.next_renewal());
        Some(Registration { watchdog, key })
    }
}

/// A guard's place in a watchdog; dropping it stops the renewals.
pub(crate) struct Registration {
    watchdog: Arc<Watchdog>,
    key: u64,
}

impl Registration {
    /// The guard's next renewal moved to `at`.
    pub(crate) fn reschedule(&self, at: Instant) {
        self.watchdog.schedule(at);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.watchdog.state.lock().guards.remove(&self.key);
    }
}

#[derive(Default)]
pub(crate) struct Watchdog {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    guards: HashMap<u64, Weak<Shared>>,
    next_key: u64,
    /// When the task will look again (`None`: not planned yet).
    next_wake: Option<Instant>,
}

impl Watchdog {
    /// Make sure the task looks again no later than `at`. Wakes it only
    /// when `at` is earlier than it planned, so a steady stream of acquires
    /// costs no wake-ups.
    fn schedule(&self, at: Instant) {
        let mut state = self.state.lock();
        if state.next_wake.is_none_or(|planned| at < planned) {
            state.next_wake = Some(at);
            drop(state);
            self.wake.notify_one();
        }
    }
}

async fn run(watchdog: Arc<Watchdog>) {
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut state = watchdog.state.lock();
            let mut next: Option<Instant> = None;
            state.guards.retain(|_, weak| {
                let Some(shared) = weak.upgrade() else {
                    return false;
                };
                if shared.is_finished() {
                    return false;
                }
                if !shared.renewing.load(Ordering::Acquire) {
                    let at = shared.next_renewal();
                    if at <= now {
                        shared.renewing.store(true, Ordering::Release);
                        due.push(shared);
                    } else {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                true
            });
            // With nothing due, still look again within IDLE_TICK: a new
            // guard is then due later than the planned look and needs no
            // wake-up (a steady stream of acquires wakes nothing).
            let next = next.unwrap_or(now + IDLE_TICK);
            state.next_wake = Some(next);
            next
        };
        for shared in due {
            tokio::spawn(renew(shared, Arc::clone(&watchdog)));
        }
        tokio::select! {
            _ = watchdog.wake.notified() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
}

/// One renewal; on failure, retry sooner until the TTL may have passed,
/// then the guard is lost.
async fn renew(shared: Arc<Shared>, watchdog: Arc<Watchdog>) {
    let ttl = shared.ttl();
    let sent = Instant::now();
    match shared.lease.renew(ttl).await {
        Ok(true) => shared.confirm(sent, ttl),
        Ok(false) => {
            if !shared.is_finished() {
                shared.mark_lost("renewal found it gone or taken");
            }
        }
        Err(e) => {
            if !shared.is_lost() {
                let left = shared.valid_for();
                tracing::warn!(
                    lock = %shared.name,
                    error = %e,
                    "lock renewal failed; retrying while {left:?} of TTL may be left"
                );
                let retry = (ttl / 10).min(left).max(Duration::from_millis(1));
                shared.set_next_renewal(Instant::now() + retry);
            }
        }
    }
    shared.renewing.store(false, Ordering::Release);
    if !shared.is_finished() {
        watchdog.schedule(shared.next_renewal());
    }
}
