//! The handle of a running subscription (graceful stop on `shutdown` or
//! drop, hard stop on `abort`) and the pieces every backend's consumer loop
//! shares: the stop signal, running a handler with panics caught, the
//! bounded wait for in-flight handlers, and (Redis, RabbitMQ) the consumer
//! numbers in use.

use super::{Handler, HandlerResult, Message, PauseState, QueueError};
use crate::backoff::{Backoff, Retries};
use backon::Retryable;
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A running subscription. Dropping it stops its consumers gracefully in the
/// background; [`Subscription::shutdown`] does the same and waits.
#[derive(Debug)]
pub struct Subscription {
    queue: String,
    consumer: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
    paused: PauseState,
}

impl Subscription {
    pub(crate) fn new(
        queue: &str,
        consumer: String,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
        shutdown_timeout: Duration,
    ) -> Self {
        Self {
            queue: queue.to_string(),
            consumer,
            stop,
            task: Some(task),
            shutdown_timeout,
            paused: PauseState::default(),
        }
    }

    /// Share `state` with the consumer loop that updates it.
    pub(crate) fn with_pause_state(mut self, state: PauseState) -> Self {
        self.paused = state;
        self
    }

    /// Whether its consumers are paused now (the queue's pause flag as
    /// they last read it; always false on a backend without pausing).
    pub fn pause_state(&self) -> PauseState {
        self.paused.clone()
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The consumer name the backend knows this subscription by.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Stop taking messages, let in-flight handlers finish (at most
    /// `QueueOptions::shutdown_timeout`; unfinished ones are abandoned and
    /// will be redelivered) and wait until the consumers are gone.
    pub async fn shutdown(mut self) -> Result<(), QueueError> {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        // The consumer loop bounds its own wait; the margin covers one
        // blocking read and the final acknowledgements.
        let bound = self.shutdown_timeout.saturating_add(Duration::from_secs(5));
        let abort = task.abort_handle();
        match tokio::time::timeout(bound, task).await {
            Ok(_) => Ok(()),
            Err(_) => {
                abort.abort();
                Err(QueueError::ShutdownTimeout {
                    queue: self.queue.clone(),
                    timeout: bound,
                })
            }
        }
    }

    /// Stop at once, like a crash: running handlers are cancelled and their
    /// messages are not acknowledged, so the backend redelivers them (Redis:
    /// after the visibility timeout; RabbitMQ: when the channel closes).
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The consumer side of the stop signal: set by `shutdown`, by dropping the
/// [`Subscription`], or closed when the handle is gone.
#[derive(Debug, Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    pub(crate) fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// True once stopping was asked for.
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves when stopping is asked for.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Sleep for `d`, or less when stopping is asked for; true when it slept
    /// the whole time.
    pub(crate) async fn sleep(&mut self, d: Duration) -> bool {
        if self.is_set() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// Consumer numbers in use, per queue, so consumer names are stable
/// (`{node_id}-0`, `-1`, …) and a restarted node finds its own pending
/// messages under the same name.
#[derive(Debug, Default)]
pub(crate) struct ConsumerNumbers(Mutex<HashMap<String, BTreeSet<u32>>>);

impl ConsumerNumbers {
    /// The lowest number not in use on `queue`, now in use.
    pub(crate) fn claim(&self, queue: &str) -> u32 {
        let mut active = self.0.lock();
        let used = active.entry(queue.to_string()).or_default();
        let n = (0..).find(|n| !used.contains(n)).unwrap_or(0);
        used.insert(n);
        n
    }

    /// `number` is no longer in use on `queue`.
    pub(crate) fn release(&self, queue: &str, number: u32) {
        if let Some(used) = self.0.lock().get_mut(queue) {
            used.remove(&number);
        }
    }
}

/// Run the handler on one message; a panic becomes an error.
pub(crate) async fn run_handler(handler: &Handler, msg: Message) -> HandlerResult {
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(msg))) {
        Ok(fut) => fut,
        Err(panic) => return Err(panic_text(panic.as_ref())),
    };
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panic_text(panic.as_ref())),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".to_string());
    format!("handler panicked: {what}")
}

/// Wait for the tasks to finish, at most `bound`; abort the rest. Returns
/// how many were abandoned.
pub(crate) async fn drain(tasks: &mut JoinSet<()>, bound: Duration) -> usize {
    let finished =
        tokio::time::timeout(bound, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_ok() {
        return 0;
    }
    let left = tasks.len();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    left
}

/// Collect finished tasks without waiting.
pub(crate) fn reap(tasks: &mut JoinSet<()>) {
    while tasks.try_join_next().is_some() {}
}

/// The backoff of the queue's reconnect loops (consumers and publishers):
/// from 50 ms doubling, at most 2 s, with jitter so that the consumers of
/// every node come back spread out after a Redis or RabbitMQ restart, not
/// all in the same instant.
pub(crate) fn reconnect_backoff() -> Retries {
    RECONNECT.start()
}

const RECONNECT: Backoff = Backoff::jittered(Duration::from_millis(50), Duration::from_secs(2));

/// Run `op` again while it fails with an error `transient` accepts, for at
/// most `timeout` (`QueueOptions::reconnect_timeout`), waiting the
/// reconnect backoff between tries: the publishers' and acknowledgements'
/// retry loop on every backend. `server` names what was unreachable in the
/// debug log.
pub(crate) async fn retrying<T, F, Fut>(
    timeout: Duration,
    server: &'static str,
    op: F,
    transient: impl Fn(&QueueError) -> bool,
) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let deadline = super::instant_after(timeout);
    op.retry(RECONNECT.policy())
        .sleep(tokio::time::sleep)
        .when(|e| transient(e) && std::time::Instant::now() < deadline)
        .notify(|e, _| tracing::debug!(error = %e, "queue: {server} unavailable, retrying"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_consumers_reconnect_after_different_delays() {
        // Two consumers that lost the same Redis at the same moment: with
        // jitter their waits differ, so they do not all come back at once.
        let (mut a, mut b) = (reconnect_backoff(), reconnect_backoff());
        let a: Vec<Duration> = (0..8).map(|_| a.next_delay()).collect();
        let b: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_ne!(a, b);
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(differing >= 6, "{a:?} vs {b:?}");
        for d in a.iter().chain(&b) {
            assert!(
                *d >= Duration::from_millis(50) && *d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }
}
