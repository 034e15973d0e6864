//! [`Interrupt`]: a request to stop a run at the next safe point (Ctrl-C,
//! SIGTERM or SIGHUP in the terminal, a key in the console). The engine
//! stops the step in progress at its next await point -- journal appends
//! are synchronous, so no line is ever half-written -- journals the
//! interruption, releases the runbook lock and returns
//! [`super::RunOutcome::Interrupted`]; the run stays resumable.

use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::watch;

/// A cloneable "stop at the next safe point" signal. The first
/// [`Interrupt::trigger`] wins; later ones are ignored (and say so).
///
/// ```
/// # use clusterops::runbook::interrupt::Interrupt;
/// let stop = Interrupt::new();
/// assert!(stop.trigger("SIGINT"));
/// assert!(!stop.trigger("SIGTERM"));
/// assert_eq!(stop.reason().as_deref(), Some("SIGINT"));
/// ```
#[derive(Clone)]
pub struct Interrupt {
    tx: Arc<watch::Sender<Option<String>>>,
    last_words: Arc<Mutex<Option<LastWords>>>,
}

/// What [`Interrupt::exit_now`] runs, given the reason to journal.
pub type LastWords = Box<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt")
            .field("reason", &self.reason())
            .field("last_words", &self.last_words.lock().is_some())
            .finish()
    }
}

impl Default for Interrupt {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupt {
    /// Not triggered yet.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
            last_words: Arc::new(Mutex::new(None)),
        }
    }

    /// While a run is in progress, what [`Interrupt::exit_now`] runs: the
    /// engine journals the interruption there (unless it already did) and
    /// closes the journal. `None` once the run is over.
    pub fn set_last_words(&self, words: Option<LastWords>) {
        *self.last_words.lock() = words;
    }

    /// A second signal: the process exits right after this returns,
    /// without waiting for the safe point. Runs the last words, if a run is
    /// in progress, with the reason to journal (`SIGINT, then SIGINT: exited
    /// at once`), so the journal still says the run was interrupted and no
    /// line is cut by the exit.
    pub fn exit_now(&self, signal: &str) {
        let first = self.reason().unwrap_or_else(|| signal.to_string());
        let reason = format!("{first}, then {signal}: exited at once");
        if let Some(words) = self.last_words.lock().as_ref() {
            words(&reason);
        }
    }

    /// Ask the run to stop; `reason` is journaled (`SIGINT`, `SIGHUP`,
    /// `interrupted from the console by …`). Returns whether this call was
    /// the first.
    pub fn trigger(&self, reason: &str) -> bool {
        let mut first = false;
        self.tx.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(reason.to_string());
                first = true;
            }
            first
        });
        first
    }

    /// Why, once triggered.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    /// Whether it was triggered.
    pub fn is_triggered(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Wait until triggered (returns at once if it already was).
    pub async fn triggered(&self) -> String {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`: it cannot be dropped while we wait.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_on_the_first_trigger_only() {
        let stop = Interrupt::new();
        let waiter = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.triggered().await })
        };
        tokio::task::yield_now().await;
        assert!(!stop.is_triggered());
        assert!(stop.trigger("SIGHUP"));
        assert!(!stop.trigger("SIGINT"));
        assert_eq!(waiter.await.unwrap(), "SIGHUP");
        assert_eq!(stop.triggered().await, "SIGHUP");
    }
}
