//! [`LockGuard`]: a held lock with its fencing token, the watchdog that
//! renews its TTL, lost detection, explicit and on-drop release.

use super::watchdog::{Registration, Watchdogs};
use super::{LockError, validate_ttl};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// What a guard needs from its backend: compare-and-renew and
/// compare-and-delete of exactly this holder's entry.
#[async_trait::async_trait]
pub(crate) trait Lease: Send + Sync + 'static {
    /// Set the entry's TTL to `ttl` if it is still this holder's; `false`
    /// when it is gone or someone else's.
    async fn renew(&self, ttl: Duration) -> Result<bool, LockError>;
    /// Delete the entry (and wake waiters) if it is still this holder's;
    /// `false` when it is gone or someone else's.
    async fn release(&self) -> Result<bool, LockError>;
}

pub(crate) struct Shared {
    pub(crate) name: String,
    token: u64,
    pub(crate) lease: Box<dyn Lease>,
    /// Sticky: once lost, always lost.
    lost: AtomicBool,
    /// Released or dropped: no more renewals.
    done: AtomicBool,
    /// A renewal is in flight (set and cleared by the watchdog).
    pub(crate) renewing: AtomicBool,
    timing: Mutex<Timing>,
}

struct Timing {
    /// The TTL renewals use.
    ttl: Duration,
    /// Until when the lock is known to be ours: send time of the last
    /// confirmed write plus its TTL (the server applied it no earlier).
    valid_until: Instant,
    /// When the watchdog renews next.
    next_renewal: Instant,
}

impl Shared {
    pub(crate) fn is_lost(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return true;
        }
        if Instant::now() >= self.timing.lock().valid_until {
            self.mark_lost("its TTL passed without a confirmed renewal");
            return true;
        }
        false
    }

    /// Released, dropped or lost: nothing more to renew.
    pub(crate) fn is_finished(&self) -> bool {
        self.done.load(Ordering::Acquire) || self.is_lost()
    }

    pub(crate) fn mark_lost(&self, why: &str) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::warn!(lock = %self.name, token = self.token, "lock lost: {why}");
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.timing.lock().ttl
    }

    pub(crate) fn next_renewal(&self) -> Instant {
        self.timing.lock().next_renewal
    }

    pub(crate) fn set_next_renewal(&self, at: Instant) {
        self.timing.lock().next_renewal = at;
    }

    /// How long the lock is still known to be ours.
    pub(crate) fn valid_for(&self) -> Duration {
        self.timing
            .lock()
            .valid_until
            .saturating_duration_since(Instant::now())
    }

    /// A write of `ttl` sent at `sent` was confirmed: valid until
    /// `sent + ttl`, next renewal at `sent + ttl / 3`.
    pub(crate) fn confirm(&self, sent: Instant, ttl: Duration) {
        let mut timing = self.timing.lock();
        if !self.lost.load(Ordering::Acquire) {
            *timing = Timing {
                ttl,
                valid_until: sent + ttl,
                next_renewal: sent + ttl / 3,
            };
        }
    }

    fn lost_error(&self) -> LockError {
        LockError::Lost {
            name: self.name.clone(),
            token: self.token,
        }
    }
}

/// A held lock. Dropping it releases the lock in the background (when a
/// tokio runtime is available; otherwise the lock expires after its TTL);
/// [`LockGuard::release`] releases it and reports the outcome.
///
/// While the guard lives, the backend's watchdog renews the TTL every
/// `ttl / 3`.
/// Leaking the guard (`std::mem::forget`) keeps the lock held for as long
/// as the runtime runs; it expires one TTL after the process dies.
pub struct LockGuard {
    shared: Arc<Shared>,
    watchdog: Option<Registration>,
}

impl LockGuard {
    /// A guard for a lock acquired with `ttl` by a request sent at `sent`.
    pub(crate) fn new(
        name: &str,
        token: u64,
        ttl: Duration,
        sent: Instant,
        lease: Box<dyn Lease>,
        watchdogs: &Watchdogs,
    ) -> Self {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            token,
            lease,
            lost: AtomicBool::new(false),
            done: AtomicBool::new(false),
            renewing: AtomicBool::new(false),
            timing: Mutex::new(Timing {
                ttl,
                valid_until: sent + ttl,
                next_renewal: sent + ttl / 3,
            }),
        });
        let watchdog = watchdogs.register(&shared);
        if watchdog.is_none() {
            tracing::warn!(
                lock = name,
                "no tokio runtime: the lock will not be renewed"
            );
        }
        Self { shared, watchdog }
    }

    /// The lock name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The fencing token: strictly greater than every earlier token of this
    /// lock name. Hand it to the protected resource with each write.
    pub fn fencing_token(&self) -> u64 {
        self.shared.token
    }

    /// The TTL the watchdog renews with (the acquire TTL, or the last
    /// [`LockGuard::extend`]).
    pub fn ttl(&self) -> Duration {
        self.shared.ttl()
    }

    /// Whether the lock is known to be lost (a renewal found it gone or
    /// taken, or no renewal was confirmed within the TTL). Once lost, always
    /// lost.
    pub fn is_lost(&self) -> bool {
        self.shared.is_lost()
    }

    /// `Ok` while the lock is held as far as this guard knows; call it right
    /// before a protected write (and pass [`LockGuard::fencing_token`]).
    pub fn check(&self) -> Result<(), LockError> {
        if self.shared.is_lost() {
            Err(self.shared.lost_error())
        } else {
            Ok(())
        }
    }

    /// Set the lock's TTL to `ttl` from now, and renew with `ttl` from now
    /// on. Fails with [`LockError::Lost`] when the lock is no longer ours.
    pub async fn extend(&self, ttl: Duration) -> Result<(), LockError> {
        validate_ttl(ttl)?;
        if self.shared.is_lost() {
            return Err(self.shared.lost_error());
        }
        let sent = Instant::now();
        if self.shared.lease.renew(ttl).await? {
            self.shared.confirm(sent, ttl);
            if let Some(watchdog) = &self.watchdog {
                watchdog.reschedule(self.shared.next_renewal());
            }
            self.check()
        } else {
            self.shared.mark_lost("extend found it gone or taken");
            Err(self.shared.lost_error())
        }
    }

    /// Release the lock now (compare-and-delete; no round trip when the guard
    /// already knows it is lost). Fails with [`LockError::Lost`] when it was no
    /// longer ours (whatever was done under it was not exclusive until the
    /// end), or with a Redis error (the lock then expires after its TTL).
    pub async fn release(mut self) -> Result<(), LockError> {
        self.watchdog = None;
        self.shared.done.store(true, Ordering::Release);
        if self.shared.is_lost() {
            // Not ours any more as far as we know; with the watchdog
            // stopped, a leftover entry of ours expires within its TTL.
            return Err(self.shared.lost_error());
        }
        if self.shared.lease.release().await? {
            Ok(())
        } else {
            self.shared.mark_lost("release found it gone or taken");
            Err(self.shared.lost_error())
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.watchdog = None;
        if self.shared.done.swap(true, Ordering::AcqRel) || self.shared.is_lost() {
            return;
        }
        let Ok(handle) = Handle::try_current() else {
            tracing::debug!(lock = %self.shared.name, "guard dropped without a runtime: the lock expires after its TTL");
            return;
        };
        let shared = Arc::clone(&self.shared);
        handle.spawn(async move {
            match shared.lease.release().await {
                Ok(true) => {}
                Ok(false) => shared.mark_lost("release on drop found it gone or taken"),
                Err(e) => tracing::warn!(
                    lock = %shared.name,
                    error = %e,
                    "release on drop failed: the lock expires after its TTL"
                ),
            }
        });
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.shared.name)
            .field("fencing_token", &self.shared.token)
            .field("lost", &self.shared.lost.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
