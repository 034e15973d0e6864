//! [`InProcessExecutor`]: the runbook's [`Executor`] for the demo's nodes.
//! Stopping a node ends its runtime in this process (it drains, frees its
//! worker ID and leaves); starting one "installs" the version (the demo's
//! release: a version ending in [`BROKEN_SUFFIX`] is a release whose
//! migration loses the app's records, so verification fails) and starts a
//! runtime on it, which migrates the shared store's schema.

use super::nodes::Shared;
use super::workload::NODE_IDS;
use crate::node::version::AppVersion;
use crate::runbook::executor::check_value;
use crate::runbook::{ExecError, Executor, NodeSlot, StepIo};
use std::sync::Arc;

/// A version ending in this is the demo's bad release: its migration drops
/// the app's records, the verify step's smoke check finds the demo record
/// missing, and the operator sees a failure and a rollback.
pub const BROKEN_SUFFIX: &str = "-broken";

/// Whether `version` is the demo's bad release.
pub fn is_broken(version: &str) -> bool {
    version.ends_with(BROKEN_SUFFIX)
}

/// Stops and starts the demo's in-process nodes.
pub struct InProcessExecutor {
    shared: Arc<Shared>,
}

impl InProcessExecutor {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn running_version(&self, id: &str) -> Option<String> {
        self.shared
            .nodes
            .lock()
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.version.clone())
    }

    /// The demo's release of `version`, run once before the first node
    /// starts on it (while the store's schema is still older): a broken
    /// release drops the records (and the shared cache that still holds
    /// some of them).
    async fn install(&self, version: &AppVersion, io: &dyn StepIo) {
        if !is_broken(version.as_str()) {
            return;
        }
        let dropped = self.shared.store.with_memory(|data| {
            let migrated = data
                .schema_version()
                .and_then(|s| AppVersion::parse(s).ok())
                .is_some_and(|s| s >= *version);
            (!migrated).then(|| data.drop_records())
        });
        if let Some(Some(n)) = dropped {
            let _ = self.shared.cache.clear().await;
            io.line(&format!(
                "installing {version}: its migration drops the records table ({n} records \
                 lost; the demo's bad release)"
            ));
        }
    }
}

#[async_trait::async_trait]
impl Executor for InProcessExecutor {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn slots(&self) -> Vec<NodeSlot> {
        NODE_IDS
            .iter()
            .enumerate()
            .map(|(index, id)| NodeSlot {
                index,
                name: id.to_string(),
                node_id: Some(id.to_string()),
            })
            .collect()
    }

    fn describe_stop(&self) -> String {
        "end each node's runtime in this process (it drains, frees its worker ID and leaves \
         the registry)"
            .to_string()
    }

    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        format!("start {} in this process on version {version}", slot.name)
    }

    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        for id in NODE_IDS {
            match self.running_version(id) {
                Some(v) => {
                    io.line(&format!("stopping {id} (version {v})"));
                    self.shared.stop_node(id).await;
                    io.line(&format!("{id} stopped"));
                }
                None => io.line(&format!("{id} is not running")),
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        slot: &NodeSlot,
        version: &str,
        io: &dyn StepIo,
    ) -> Result<(), ExecError> {
        check_value("version", version)?;
        let err = |message: String| ExecError::Process {
            node: slot.name.clone(),
            message,
        };
        let parsed = AppVersion::parse(version).map_err(err)?;
        if !NODE_IDS.contains(&slot.name.as_str()) {
            return Err(err(format!(
                "not a demo node (expected one of {NODE_IDS:?})"
            )));
        }
        match self.running_version(&slot.name) {
            Some(v) if v == version => {
                io.line(&format!("{} already runs {version}", slot.name));
                return Ok(());
            }
            Some(v) => {
                io.line(&format!("stopping {} (version {v}) first", slot.name));
                self.shared.stop_node(&slot.name).await;
            }
            None => {}
        }
        self.install(&parsed, io).await;
        if let Some(v) = self.shared.versions.lock().get_mut(slot.index) {
            *v = version.to_string();
        }
        self.shared.start_node(slot.index).await.map_err(err)?;
        io.line(&format!(
            "{} started in this process on version {version}",
            slot.name
        ));
        Ok(())
    }
}
