//! Waiting for a held lock: the per-name wake-up registry both backends
//! signal on release, and the acquire loop (try, wait for a wake-up or a
//! jittered poll, try again, until the deadline).

use super::{LockError, LockGuard};
use parking_lot::Mutex;
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Default fallback poll interval of a waiter, in case a wake-up is missed;
/// the actual pause is drawn uniformly from `POLL_MIN..=POLL_MAX` each time.
pub const POLL_MIN: Duration = Duration::from_millis(50);
/// Upper bound of the default fallback poll interval.
pub const POLL_MAX: Duration = Duration::from_millis(200);

/// The result of one acquire attempt.
pub(crate) enum Attempt {
    Acquired(LockGuard),
    /// Held by someone else; `ttl_left` is the holder's remaining TTL when
    /// known (`None`: no expiry).
    Held {
        ttl_left: Option<Duration>,
    },
}

/// What the shared waiting loop needs from a backend.
pub(crate) trait Acquirer: Send + Sync {
    /// One atomic attempt.
    fn attempt(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Attempt, LockError>> + Send;

    /// Called once before the first wait: make sure release notifications
    /// will reach [`Acquirer::waiters`] (subscribe), without waiting past
    /// `deadline`. Best effort: waiters poll anyway.
    fn prepare_wait(&self, deadline: Instant) -> impl Future<Output = ()> + Send;

    /// The registry release notifications are delivered to.
    fn waiters(&self) -> &Arc<Waiters>;
}

/// What one attempt inside the waiting loop came to.
enum Step {
    Acquired(LockGuard),
    /// Held (with the holder's TTL left when known), or Redis failed
    /// (kept: returned if the wait ends on it).
    Retry(Option<Duration>, Option<LockError>),
}

async fn step<A: Acquirer>(backend: &A, name: &str, ttl: Duration) -> Result<Step, LockError> {
    match backend.attempt(name, ttl).await {
        Ok(Attempt::Acquired(guard)) => Ok(Step::Acquired(guard)),
        Ok(Attempt::Held { ttl_left }) => Ok(Step::Retry(ttl_left, None)),
        // The connection reconnects by itself: retry until the deadline.
        // Other errors (a script error, keys in different cluster slots, a
        // missing permission) would come back on every attempt: end now.
        Err(e @ LockError::Redis { .. }) if matches!(&e, LockError::Redis { source, .. } if crate::adapters::redis_conn::is_transient(source)) =>
        {
            tracing::debug!(lock = name, error = %e, "acquire attempt failed; retrying");
            Ok(Step::Retry(None, Some(e)))
        }
        Err(e) => Err(e),
    }
}

/// Try, then wait for a release (or poll) until `wait` has passed. Redis
/// errors are retried until then; the wait ends with the last attempt's
/// error if it failed, with [`LockError::Timeout`] otherwise.
pub(crate) async fn acquire_waiting<A: Acquirer>(
    backend: &A,
    name: &str,
    ttl: Duration,
    wait: Duration,
) -> Result<LockGuard, LockError> {
    let start = Instant::now();
    let deadline = start.checked_add(wait).unwrap_or(start + super::MAX_TTL);
    let give_up = |error: Option<LockError>| {
        Err(error.unwrap_or_else(|| LockError::Timeout {
            name: name.to_string(),
            waited: start.elapsed(),
        }))
    };
    // The uncontended path: one round trip, no subscription, no registration.
    let first_error = match step(backend, name, ttl).await? {
        Step::Acquired(guard) => return Ok(guard),
        Step::Retry(_, error) => error,
    };
    if wait.is_zero() {
        return give_up(first_error);
    }
    backend.prepare_wait(deadline).await;
    let registration = backend.waiters().register(name);
    loop {
        // Listen before trying, so that a release between the attempt and
        // the wait is not missed.
        let notified = registration.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (ttl_left, error) = match step(backend, name, ttl).await? {
            Step::Acquired(guard) => return Ok(guard),
            Step::Retry(ttl_left, error) => (ttl_left, error),
        };
        let now = Instant::now();
        if now >= deadline {
            return give_up(error);
        }
        let (min, max) = *backend.waiters().poll.lock();
        let mut pause = rand::rng().random_range(min..=max);
        if error.is_some() {
            // Redis failed: poll, do not wait for a notification only.
            pause = pause.min(POLL_MAX);
        } else if let Some(left) = ttl_left {
            // The holder's TTL runs out sooner: try right after it.
            pause = pause.min(left + Duration::from_millis(1));
        }
        pause = pause.min(deadline - now);
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Lock names someone waits for, each with the [`Notify`] a release of that
/// name signals.
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
    /// The fallback poll interval range.
    poll: Mutex<(Duration, Duration)>,
}

impl Default for Waiters {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            poll: Mutex::new((POLL_MIN, POLL_MAX)),
        }
    }
}

impl Waiters {
    /// Set the fallback poll interval range (`max` below `min` is raised to
    /// `min`; both at least 1 ms).
    pub(crate) fn set_poll_interval(&self, min: Duration, max: Duration) {
        let min = min.max(Duration::from_millis(1));
        *self.poll.lock() = (min, max.max(min));
    }

    /// Start waiting for `name`; waiting ends when the registration drops.
    pub(crate) fn register(self: &Arc<Self>, name: &str) -> Registration {
        let mut map = self.map.lock();
        let entry = map
            .entry(name.to_string())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Registration {
            waiters: Arc::clone(self),
            name: name.to_string(),
            notify: Arc::clone(&entry.0),
        }
    }

    /// Wake every waiter of `name` (they all try again; one wins).
    pub(crate) fn wake(&self, name: &str) {
        if let Some((notify, _)) = self.map.lock().get(name) {
            notify.notify_waiters();
        }
    }

    /// Wake every waiter of every name (after missed notifications).
    pub(crate) fn wake_all(&self) {
        for (notify, _) in self.map.lock().values() {
            notify.notify_waiters();
        }
    }
}

/// One waiter's interest in one lock name.
pub(crate) struct Registration {
    waiters: Arc<Waiters>,
    name: String,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.waiters.map.lock();
        if let Some(entry) = map.get_mut(&self.name) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                map.remove(&self.name);
            }
        }
    }
}
