//! [`Interrupt`]: a request to stop a run at the next safe point (Ctrl-C,
//! SIGTERM or SIGHUP in the terminal, a key in the console). The engine
//! stops the step in progress at its next await point -- journal appends
//! are synchronous, so no line is ever half-written -- journals the
//! interruption, releases the runbook lock and returns
//! [`super::RunOutcome::Interrupted`]; the run stays resumable.

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
#[derive(Debug, Clone)]
pub struct Interrupt {
    tx: Arc<watch::Sender<Option<String>>>,
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
