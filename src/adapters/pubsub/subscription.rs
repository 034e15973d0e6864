//! The receiving end of one subscription, shared by every backend: an
//! unbounded, ordered queue of signals, with a hook telling the backend when
//! a message is finished (Redis cursors) and when the subscription ends.
//!
//! A slow subscriber never loses messages: they wait in its queue (memory
//! grows) and a warning is logged each time its backlog reaches another
//! multiple of [`BACKLOG_WARN_EVERY`]. On Redis its cursor stays at the last
//! message it finished, so the inspector shows the lag.

use super::Signal;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// A warning is logged each time a subscription's backlog reaches a multiple
/// of this many undelivered messages.
pub const BACKLOG_WARN_EVERY: usize = 10_000;

/// What a backend learns from a subscription.
pub(crate) trait Tracker: Send + Sync {
    /// The message last returned by `recv` is finished (the caller asked for
    /// the next one).
    fn finished(&self);
    /// The subscription was dropped; `in_flight`: the last returned message
    /// had not been followed by another `recv` (it counts as finished).
    fn closed(&self, in_flight: bool);
}

/// The backend's side of a subscription queue.
pub(crate) struct SubSender {
    tx: mpsc::UnboundedSender<Signal>,
    backlog: Arc<AtomicUsize>,
}

impl SubSender {
    /// Queue a message; false when the subscription is gone.
    pub(crate) fn send(&self, signal: Signal) -> bool {
        let channel = signal.channel.clone();
        // Counted before it is sent: `recv` on another thread may take it
        // (and count it out) at once, and must not take the count below 0
        // (an overflow panic in a debug build, found by tests/adapters/stream_trimming.rs).
        let n = self.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tx.send(signal).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if n.is_multiple_of(BACKLOG_WARN_EVERY) {
            tracing::warn!(
                channel = %channel,
                backlog = n,
                "a sync-signal subscriber is slow: {n} messages wait in its queue (none are dropped)"
            );
        }
        true
    }
}

/// A subscription to one channel. Messages arrive in publish order through
/// [`Subscription::recv`]; dropping it unsubscribes.
///
/// On Redis, a message returned by `recv` counts as handled when `recv` is
/// called again or the subscription is dropped: the node's cursor (and so
/// what a restarted node resumes from) never passes a message before that.
pub struct Subscription {
    channel: String,
    rx: mpsc::UnboundedReceiver<Signal>,
    backlog: Arc<AtomicUsize>,
    tracker: Arc<dyn Tracker>,
    in_flight: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("backlog", &self.backlog())
            .finish()
    }
}

pub(crate) fn pair(channel: &str, tracker: Arc<dyn Tracker>) -> (SubSender, Subscription) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        SubSender {
            tx,
            backlog: backlog.clone(),
        },
        Subscription {
            channel: channel.to_string(),
            rx,
            backlog,
            tracker,
            in_flight: false,
        },
    )
}

impl Subscription {
    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Messages received by this node and not yet returned by `recv`.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The next message, in publish order; `None` once the adapter was shut
    /// down and every queued message was returned. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Signal> {
        if self.in_flight {
            self.in_flight = false;
            self.tracker.finished();
        }
        let signal = self.rx.recv().await?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        self.in_flight = true;
        Some(signal)
    }

    /// The next message if one is already queued (never waits).
    pub fn try_recv(&mut self) -> Option<Signal> {
        if self.in_flight {
            self.in_flight = false;
            self.tracker.finished();
        }
        let signal = self.rx.try_recv().ok()?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        self.in_flight = true;
        Some(signal)
    }

    /// Run `handler` on every message, one at a time in publish order, on a
    /// new task. A message counts as handled once its handler future has
    /// completed. The task ends when the adapter shuts down; abort it (or
    /// drop the adapter) to unsubscribe.
    pub fn spawn_handler<F, Fut>(mut self, mut handler: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(Signal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(async move {
            while let Some(signal) = self.recv().await {
                handler(signal).await;
            }
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.tracker.closed(self.in_flight);
    }
}
