//! [`LockGuard`]: a held lock with its fencing token, the watchdog that
//! renews its TTL, lost detection, explicit and on-drop release.

use super::{LockError, validate_ttl};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

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

struct Shared {
    name: String,
    token: u64,
    lease: Box<dyn Lease>,
    /// Sticky: once lost, always lost.
    lost: AtomicBool,
    /// Released or dropped: the watchdog stops.
    done: AtomicBool,
    /// The TTL the watchdog renews with, and the instant until which the
    /// lock is known to be ours (send time of the last confirmed write plus
    /// its TTL: the server applied it no earlier than we sent it).
    timing: Mutex<(Duration, Instant)>,
}

impl Shared {
    fn is_lost(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return true;
        }
        if Instant::now() >= self.timing.lock().1 {
            self.mark_lost("its TTL passed without a confirmed renewal");
            return true;
        }
        false
    }

    fn mark_lost(&self, why: &str) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::warn!(lock = %self.name, token = self.token, "lock lost: {why}");
        }
    }

    /// A renewal sent at `sent` with `ttl` was confirmed.
    fn confirm(&self, sent: Instant, ttl: Duration) {
        let mut timing = self.timing.lock();
        if !self.lost.load(Ordering::Acquire) {
            *timing = (ttl, sent + ttl);
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
/// While the guard lives, a watchdog task renews the TTL every `ttl / 3`.
/// Leaking the guard (`std::mem::forget`) keeps the lock held for as long
/// as the runtime runs; it expires one TTL after the process dies.
pub struct LockGuard {
    shared: Arc<Shared>,
    watchdog: Option<AbortHandle>,
}

impl LockGuard {
    /// A guard for a lock acquired with `ttl` by a request sent at `sent`.
    pub(crate) fn new(
        name: &str,
        token: u64,
        ttl: Duration,
        sent: Instant,
        lease: Box<dyn Lease>,
    ) -> Self {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            token,
            lease,
            lost: AtomicBool::new(false),
            done: AtomicBool::new(false),
            timing: Mutex::new((ttl, sent + ttl)),
        });
        let watchdog = match Handle::try_current() {
            Ok(handle) => Some(handle.spawn(watchdog(Arc::clone(&shared))).abort_handle()),
            Err(_) => {
                tracing::warn!(
                    lock = name,
                    "no tokio runtime: the lock will not be renewed"
                );
                None
            }
        };
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
        self.shared.timing.lock().0
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
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
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
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
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

/// Renew every `ttl / 3` until released; on failure, retry more often until
/// the TTL may have passed, then mark the guard lost.
async fn watchdog(shared: Arc<Shared>) {
    let mut pause = shared.timing.lock().0 / 3;
    loop {
        tokio::time::sleep(pause).await;
        if shared.done.load(Ordering::Acquire) || shared.is_lost() {
            return;
        }
        let ttl = shared.timing.lock().0;
        let sent = Instant::now();
        match shared.lease.renew(ttl).await {
            Ok(true) => {
                shared.confirm(sent, ttl);
                pause = ttl / 3;
            }
            Ok(false) => {
                if !shared.done.load(Ordering::Acquire) {
                    shared.mark_lost("renewal found it gone or taken");
                }
                return;
            }
            Err(e) => {
                if shared.is_lost() {
                    return;
                }
                let left = shared
                    .timing
                    .lock()
                    .1
                    .saturating_duration_since(Instant::now());
                tracing::warn!(
                    lock = %shared.name,
                    error = %e,
                    "lock renewal failed; retrying while {left:?} of TTL may be left"
                );
                pause = (ttl / 10).min(left).max(Duration::from_millis(1));
            }
        }
    }
}
