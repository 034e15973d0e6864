//! Waiting for a held lock: the wake-up registry (one entry per waiting
//! acquire, keyed by its waiter id: a release wakes the waiter it names,
//! the next in the lock's FIFO queue) and the acquire loop both backends
//! share (join the queue, wait for a wake-up or a jittered poll, try again,
//! until the deadline; leave the queue when giving up or dropped).

use super::{LockBackend, LockError, LockGuard, validate_name, validate_ttl};
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
/// A queued waiter refreshes its place at every poll; it is dropped from
/// the queue (as dead) once it has not done so for its keep-alive:
/// `KEEPALIVE_POLLS` times its longest poll interval, at least
/// [`KEEPALIVE_MIN`] (600 ms with the default interval).
pub const KEEPALIVE_POLLS: u32 = 3;
/// The shortest keep-alive of a queued waiter.
pub const KEEPALIVE_MIN: Duration = Duration::from_millis(250);

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
    /// [`LockBackend::kind`]: `"local"` or `"redis"`.
    const KIND: &'static str;

    /// [`LockBackend::node_id`]: the node id this instance acquires as.
    fn acquiring_node(&self) -> &str;

    /// One atomic attempt. `waiter` `Some(id)`: take the lock if it is free
    /// and nobody is queued before `id`, else join (or stay in) its FIFO
    /// queue and refresh the keep-alive. `None` (`try_acquire`, a zero
    /// wait): take it only if it is free and nobody is queued.
    fn attempt(
        &self,
        name: &str,
        ttl: Duration,
        waiter: Option<&str>,
    ) -> impl Future<Output = Result<Attempt, LockError>> + Send;

    /// A new waiter id (unique per waiting acquire).
    fn new_waiter_id(&self) -> String;

    /// Remove `waiter` from the queue of `name`; if it was the first in
    /// line for a free lock, wake the next one.
    fn leave(&self, name: &str, waiter: &str)
    -> impl Future<Output = Result<(), LockError>> + Send;

    /// [`Acquirer::leave`] from a `Drop` (an acquire future dropped while
    /// it waited): in the background, best effort.
    fn leave_later(&self, name: &str, waiter: &str);

    /// Whether release notifications already reach [`Acquirer::waiters`]
    /// (then a waiter registered before its first attempt needs no second
    /// attempt before it waits).
    fn notifications_ready(&self) -> bool;

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

async fn step<A: Acquirer>(
    backend: &A,
    name: &str,
    ttl: Duration,
    waiter: Option<&str>,
) -> Result<Step, LockError> {
    match backend.attempt(name, ttl, waiter).await {
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

/// A waiting acquire's place in the queue: left when dropped unless the
/// acquire succeeded (the acquire script removes the winner itself).
struct Place<'a, A: Acquirer> {
    backend: &'a A,
    name: &'a str,
    id: String,
    queued: bool,
}

impl<A: Acquirer> Drop for Place<'_, A> {
    fn drop(&mut self) {
        if self.queued {
            self.backend.leave_later(self.name, &self.id);
        }
    }
}

/// Every backend's [`LockBackend`]: the arguments checked the same way,
/// then one attempt ([`LockBackend::try_acquire`]) or the shared waiting
/// loop ([`acquire_waiting`]) over the backend's [`Acquirer`].
#[async_trait::async_trait]
impl<A: Acquirer + 'static> LockBackend for A {
    fn kind(&self) -> &'static str {
        A::KIND
    }

    fn node_id(&self) -> &str {
        self.acquiring_node()
    }

    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<LockGuard>, LockError> {
        validate_name(name)?;
        validate_ttl(ttl)?;
        Ok(match self.attempt(name, ttl, None).await? {
            Attempt::Acquired(guard) => Some(guard),
            Attempt::Held { .. } => None,
        })
    }

    async fn acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LockGuard, LockError> {
        validate_name(name)?;
        validate_ttl(ttl)?;
        acquire_waiting(self, name, ttl, wait).await
    }
}

/// Try, then wait for a release (or poll) until `wait` has passed. Redis
/// errors are retried until then; the wait ends with the last attempt's
/// error if it failed, with [`LockError::Timeout`] otherwise.
///
/// Fair: with a non-zero `wait` the first attempt joins the lock's FIFO
/// queue when the lock is taken, and a free lock goes to the queue's
/// first live waiter; each release wakes that waiter only.
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
    if wait.is_zero() {
        return match step(backend, name, ttl, None).await? {
            Step::Acquired(guard) => Ok(guard),
            Step::Retry(_, error) => give_up(error),
        };
    }
    // Armed before the first attempt: a future dropped during it may have
    // been queued; disarmed on success (the acquire script took us out).
    let mut place = Place {
        backend,
        name,
        id: backend.new_waiter_id(),
        queued: true,
    };
    let registration = if backend.notifications_ready() {
        // Registered before the first attempt, so that a release right
        // after it reaches us.
        backend.waiters().register(&place.id)
    } else {
        // The first wait of this backend instance, or the uncontended
        // path: one round trip, no subscription, no registration.
        if let Step::Acquired(guard) = step(backend, name, ttl, Some(&place.id)).await? {
            place.queued = false;
            return Ok(guard);
        }
        // Subscribe, then try again at once (a release meanwhile was not
        // heard).
        backend.prepare_wait(deadline).await;
        backend.waiters().register(&place.id)
    };
    loop {
        // Listen before trying, so that a release between the attempt and
        // the wait is not missed (a wake-up also leaves a permit).
        let notified = registration.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (ttl_left, error) = match step(backend, name, ttl, Some(&place.id)).await? {
            Step::Acquired(guard) => {
                place.queued = false;
                return Ok(guard);
            }
            Step::Retry(ttl_left, error) => (ttl_left, error),
        };
        let now = Instant::now();
        if now >= deadline {
            place.queued = false;
            if let Err(e) = backend.leave(name, &place.id).await {
                tracing::debug!(lock = name, error = %e, "leaving the wait queue failed; it expires");
            }
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

/// The waiting acquires of one backend instance, each with the [`Notify`]
/// a release naming its waiter id signals.
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
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

    /// How long a queued waiter keeps its place without refreshing it.
    pub(crate) fn keepalive(&self) -> Duration {
        let (_, max) = *self.poll.lock();
        (max * KEEPALIVE_POLLS).max(KEEPALIVE_MIN)
    }

    /// Start listening for wake-ups of waiter `id`; ends when the
    /// registration drops.
    pub(crate) fn register(self: &Arc<Self>, id: &str) -> Registration {
        let notify = Arc::new(Notify::new());
        self.map.lock().insert(id.to_string(), Arc::clone(&notify));
        Registration {
            waiters: Arc::clone(self),
            id: id.to_string(),
            notify,
        }
    }

    /// Wake waiter `id` (the next in line for a lock), if it waits here.
    pub(crate) fn wake(&self, id: &str) {
        if let Some(notify) = self.map.lock().get(id) {
            notify.notify_one();
        }
    }

    /// Wake every waiter (after notifications may have been missed).
    pub(crate) fn wake_all(&self) {
        for notify in self.map.lock().values() {
            notify.notify_one();
        }
    }
}

/// One waiting acquire's registration.
pub(crate) struct Registration {
    waiters: Arc<Waiters>,
    id: String,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.map.lock().remove(&self.id);
    }
}
