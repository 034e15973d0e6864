//! Where the console's snapshots come from: [`FileSource`] (a saved
//! `clusterops status --json`), any other [`SnapshotSource`] (its trait
//! lives in `inspect::source`), and the poller that fetches on its
//! own task at the refresh interval, backing off on errors, so the screen
//! never waits on the network.

use crate::backoff::Backoff;
use crate::clock::now_ms;
use crate::console::action::Action;
use crate::inspect::Snapshot;
pub use crate::inspect::source::SnapshotSource;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// A snapshot saved as JSON: `clusterops status --json > FILE`. Read again
/// at every refresh, so a file rewritten by a cron job stays current.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// Read snapshots from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Parse a snapshot: the [`Snapshot`] object itself, or an object holding
/// it under `"snapshot"` (a status report with more around it).
pub fn parse_snapshot(text: &str) -> Result<Snapshot, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let inner = value.get("snapshot").filter(|v| v.is_object()).cloned();
    match serde_json::from_value::<Snapshot>(value) {
        Ok(s) => Ok(s),
        Err(e) => match inner {
            Some(v) => serde_json::from_value(v).map_err(|e| format!("not a snapshot: {e}")),
            None => Err(format!("not a snapshot: {e}")),
        },
    }
}

#[async_trait::async_trait]
impl SnapshotSource for FileSource {
    async fn fetch(&self) -> Result<Snapshot, String> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        parse_snapshot(&text).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// The delay before the next fetch: the refresh interval, doubled for each
/// failure in a row, at most [`BACKOFF_CAP`] (or the interval, if longer).
pub fn backoff(every: Duration, failures: u32) -> Duration {
    // No jitter: one console polls, there is no crowd to spread out.
    Backoff::steady(every, every.max(BACKOFF_CAP)).delay(failures)
}

/// The longest wait between fetches after failures: a console left open
/// through an outage shows the cluster again at most this long after it is
/// back (a failed fetch of a refused server costs next to nothing, so
/// there is little to save by waiting longer).
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The time one fetch may take before it counts as failed.
pub fn fetch_timeout(every: Duration) -> Duration {
    (every * 3).max(Duration::from_secs(10))
}

/// Fetch at once, then every `every` (with [`backoff`] after failures) or
/// as soon as `refresh` is notified; send [`Action::Fetched`] or
/// [`Action::FetchFailed`] to `tx`. Ends when the receiver is dropped.
pub fn spawn_poller(
    source: Arc<dyn SnapshotSource>,
    every: Duration,
    tx: mpsc::Sender<Action>,
    refresh: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let action = match tokio::time::timeout(fetch_timeout(every), source.fetch()).await {
                Ok(Ok(snap)) => {
                    failures = 0;
                    Action::Fetched(Box::new(snap))
                }
                Ok(Err(reason)) => {
                    failures += 1;
                    tracing::warn!(%reason, failures, "snapshot fetch failed");
                    Action::FetchFailed {
                        reason,
                        at_ms: now_ms(),
                    }
                }
                Err(_) => {
                    failures += 1;
                    let reason = format!("no snapshot after {:?}", fetch_timeout(every));
                    tracing::warn!(%reason, failures, "snapshot fetch timed out");
                    Action::FetchFailed {
                        reason,
                        at_ms: now_ms(),
                    }
                }
            };
            if tx.send(action).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff(every, failures)) => {}
                _ = refresh.notified() => {}
                _ = tx.closed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(500), 0), ms(500));
        assert_eq!(backoff(ms(500), 1), s(1));
        assert_eq!(backoff(ms(500), 3), s(4));
        assert_eq!(backoff(ms(500), 4), s(5));
        assert_eq!(backoff(s(2), 40), s(5));
        assert_eq!(backoff(s(60), 2), s(60), "never shorter than the interval");
    }

    #[test]
    fn a_snapshot_parses_bare_or_inside_a_status_report() {
        let snap = sample::degraded();
        let bare = serde_json::to_string(&snap).unwrap();
        assert_eq!(parse_snapshot(&bare).unwrap(), snap);
        let wrapped = serde_json::json!({ "verdict": "degraded", "snapshot": snap }).to_string();
        assert_eq!(parse_snapshot(&wrapped).unwrap(), snap);
        assert!(
            parse_snapshot("{\"cluster\": 1}")
                .unwrap_err()
                .starts_with("not a snapshot")
        );
        assert!(parse_snapshot("nope").unwrap_err().starts_with("not JSON"));
    }

    struct Flaky(std::sync::atomic::AtomicU32);

    #[async_trait::async_trait]
    impl SnapshotSource for Flaky {
        async fn fetch(&self) -> Result<Snapshot, String> {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                1 => Err("connection refused".into()),
                _ => Ok(sample::healthy()),
            }
        }
    }

    #[tokio::test]
    async fn the_poller_reports_failures_and_recovers_by_itself() {
        let (tx, mut rx) = mpsc::channel(4);
        let refresh = Arc::new(Notify::new());
        let task = spawn_poller(
            Arc::new(Flaky(0.into())),
            Duration::from_millis(20),
            tx,
            refresh,
        );
        assert!(matches!(rx.recv().await, Some(Action::Fetched(_))));
        assert!(
            matches!(rx.recv().await, Some(Action::FetchFailed { reason, .. }) if reason == "connection refused")
        );
        assert!(matches!(rx.recv().await, Some(Action::Fetched(_))));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
