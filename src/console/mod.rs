//! The operations console: a terminal UI over [`Snapshot`]s of a cluster
//! (nine views, k9s-style keys, the Runbook view following upgrade runs) that may, when not read-only, act on it
//! through [`ops::ClusterActions`] after a confirmation.
//!
//! Layers: [`tui`] owns the terminal; [`app`] runs the loop and holds the
//! state; [`views`] draw one screen each from the last snapshot; snapshots
//! arrive from a [`source::SnapshotSource`] polled on its own task.
//!
//! [`Snapshot`]: crate::inspect::Snapshot

pub mod action;
pub mod app;
mod app_contexts;
mod app_runbook;
pub mod backlog;
pub mod changes;
pub mod changes_cluster;
pub mod changes_topology;
pub mod contexts;
pub mod format;
pub mod history;
mod input;
pub mod keys;
pub mod live;
pub mod ops;
pub mod run_feed;
pub mod runbook_driver;
pub mod sample;
mod sample_topology;
pub mod source;
pub mod theme;
pub mod tui;
mod ui;
pub mod verdict;
pub mod views;

use crate::operate::ClusterActions;
use app::{App, AppOptions};
use source::SnapshotSource;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How to run the console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Offer no action.
    pub read_only: bool,
    /// How often to fetch a snapshot.
    pub refresh: Duration,
    /// Styles.
    pub theme: theme::Theme,
    /// Where snapshots come from, for the header.
    pub source_label: String,
    /// The live cluster's configuration: every check runs (snapshot mode:
    /// `None`, the snapshot-only checks).
    pub config: Option<crate::config::Config>,
}

impl ConsoleOptions {
    /// What the app needs of these options.
    fn app_options(&self) -> AppOptions {
        AppOptions {
            read_only: self.read_only,
            theme: self.theme.clone(),
            source_label: self.source_label.clone(),
            refresh: self.refresh,
        }
    }
}

/// Optional parts of a console.
#[derive(Default)]
pub struct Extras {
    /// Follow upgrade runs in the Runbook view (read on its own task).
    pub run_feed: Option<run_feed::RunFeed>,
    /// Drive upgrades from the Runbook view (not in read-only mode).
    pub runbook: Option<Arc<runbook_driver::RunDriver>>,
    /// A line the Runbook view shows about upgrades in this console.
    pub runbook_hint: Option<String>,
}

/// How often the Runbook view's run is read: the refresh interval, at most
/// one second (a run moves faster than the cluster).
pub fn run_refresh(refresh: Duration) -> Duration {
    refresh.min(Duration::from_secs(1))
}

/// Run the console until the operator quits. `actions` is `None` when
/// nothing may be changed (snapshot mode); with `read_only` it is only used
/// to look (the dead-letter list).
pub async fn run(
    options: ConsoleOptions,
    source: Arc<dyn SnapshotSource>,
    actions: Option<Arc<dyn ClusterActions>>,
) -> std::io::Result<()> {
    run_with(options, source, actions, Extras::default()).await
}

/// [`run`] over several clusters, switched with `:ctx NAME`: the poller
/// reads the active context, the dialogs act on it (`options.read_only`
/// holds for all of them).
pub async fn run_contexts(
    options: ConsoleOptions,
    contexts: contexts::Contexts,
) -> std::io::Result<()> {
    let (snap_tx, snap_rx) = mpsc::channel(4);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let refresh = Arc::new(Notify::new());
    let poller = source::spawn_poller(contexts.source(), options.refresh, snap_tx, refresh.clone());
    let mut app = App::new(options.app_options(), contexts.actions(), out_tx, refresh);
    app.set_contexts(contexts);
    tracing::info!(
        read_only = options.read_only,
        "console started over several contexts"
    );
    let mut tui = tui::Tui::enter()?;
    let result = app::run(app, &mut tui, snap_rx, out_rx).await;
    let restored = tui.exit();
    poller.abort();
    tracing::info!("console stopped");
    result.and(restored)
}

/// [`run`] with the optional parts.
pub async fn run_with(
    options: ConsoleOptions,
    source: Arc<dyn SnapshotSource>,
    actions: Option<Arc<dyn ClusterActions>>,
    extras: Extras,
) -> std::io::Result<()> {
    let (snap_tx, snap_rx) = mpsc::channel(4);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let run_poller = extras
        .run_feed
        .map(|feed| run_feed::spawn_run_poller(feed, run_refresh(options.refresh), out_tx.clone()));
    let refresh = Arc::new(Notify::new());
    let poller = source::spawn_poller(source, options.refresh, snap_tx, refresh.clone());
    let mut app = App::new(options.app_options(), actions, out_tx, refresh);
    if let Some(config) = options.config {
        app.set_checks_config(config);
    }
    if let Some(driver) = extras.runbook.clone().filter(|_| !options.read_only) {
        app.set_runbook_driver(driver);
    }
    if let Some(hint) = extras.runbook_hint {
        app.set_runbook_hint(hint);
    }
    tracing::info!(read_only = options.read_only, "console started");
    let mut tui = tui::Tui::enter()?;
    let result = app::run(app, &mut tui, snap_rx, out_rx).await;
    let restored = tui.exit();
    // A run driven from here stops at a safe point (journaled, lock
    // released) before the console exits.
    if let Some(driver) = &extras.runbook
        && driver.is_running()
    {
        crate::runbook::operator::say(format_args!(
            "stopping the upgrade run at its next safe point…"
        ));
        match driver.shutdown(Duration::from_secs(60)).await {
            Some(true) => crate::runbook::operator::say(format_args!(
                "the run is interrupted and its lock released; continue it with C in the \
                 console --runbook, or `clusterops upgrade --resume`"
            )),
            Some(false) => crate::runbook::operator::say(format_args!(
                "the run did not stop within 60 s; its runbook lock expires after its TTL, then \
                 `clusterops upgrade --resume`"
            )),
            None => {}
        }
    }
    poller.abort();
    if let Some(p) = run_poller {
        p.abort();
    }
    tracing::info!("console stopped");
    result.and(restored)
}

/// Where the console logs by default: `$XDG_STATE_HOME/clusterops/console.log`,
/// else `~/.local/state/clusterops/console.log`, else the temp directory.
pub fn default_log_path() -> PathBuf {
    match crate::operate::audit::state_dir() {
        Some(dir) => dir.join("console.log"),
        None => std::env::temp_dir().join("clusterops-console.log"),
    }
}
