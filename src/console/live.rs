//! Live mode: [`InspectorSource`] reads the cluster through the inspector.
//! Changes go through [`crate::operate::LiveActions`].

use crate::config::Config;
use crate::console::source::SnapshotSource;
use crate::inspect::{Inspector, Snapshot, Source};

/// Snapshots from the live cluster. A snapshot in which every configured
/// source is unreachable counts as a failed fetch, so the console keeps the
/// last good data under a banner instead of showing an empty cluster.
pub struct InspectorSource {
    inspector: Inspector,
}

impl InspectorSource {
    /// Read the cluster `config` describes.
    pub fn new(config: Config) -> Self {
        Self {
            inspector: Inspector::new(config),
        }
    }

    /// The configuration it reads with.
    pub fn config(&self) -> &Config {
        self.inspector.config()
    }
}

/// `Some(reason)` when every configured source of `snap` is unavailable
/// (and at least one is configured).
pub fn all_sources_down(snap: &Snapshot) -> Option<String> {
    fn state<T>(s: &Source<T>) -> Option<Option<String>> {
        match s {
            Source::Ok(_) => Some(None),
            Source::Unavailable { source, reason } => Some(Some(format!("{source}: {reason}"))),
            Source::NotConfigured => None,
        }
    }
    let states = [
        state(&snap.nodes),
        state(&snap.leases),
        state(&snap.locks),
        state(&snap.streams),
        state(&snap.queues),
        state(&snap.maintenance),
    ];
    let configured: Vec<Option<String>> = states.into_iter().flatten().collect();
    if configured.is_empty() || configured.iter().any(Option::is_none) {
        return None;
    }
    configured.into_iter().flatten().next()
}

#[async_trait::async_trait]
impl SnapshotSource for InspectorSource {
    async fn fetch(&self) -> Result<Snapshot, String> {
        let snap = self.inspector.snapshot().await;
        match all_sources_down(&snap) {
            Some(reason) => Err(format!("no source readable: {reason}")),
            None => Ok(snap),
        }
    }
}
