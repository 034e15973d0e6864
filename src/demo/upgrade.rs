//! The guided upgrade in the demo: the runbook configuration of the three
//! in-process nodes (the smoke check reads a demo record, the timeouts fit
//! nodes that start in milliseconds, the backup is the store's JSON dump)
//! and the parts the runbook engine runs with ([`DemoUpgrade`]).

use super::backup::DemoStoreBackup;
use super::cluster_ops::DemoClusterOps;
use super::executor::InProcessExecutor;
use super::nodes::{DemoCluster, SEED_RECORDS};
use super::workload::NODE_IDS;
use crate::runbook::backup_store::StoreBackup;
use crate::runbook::{ClusterOps, Executor, RunbookConfig, journal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cluster name of the demo (its journal's folder).
pub const CLUSTER: &str = "demo";

/// What the Runbook view says about the demo's upgrade.
pub const HINT: &str =
    "U upgrades (version offered: Enter); one ending in -broken fails verification";

/// What the Runbook view of `demo --redis` says instead.
pub const REDIS_HINT: &str = "the guided upgrade runs in the in-process demo (`clusterops demo` \
                              without --redis): its executor stops and starts nodes in the \
                              console's own process, not these child processes";

/// Everything the runbook engine needs to upgrade the demo.
pub struct DemoUpgrade {
    /// The runbook configuration.
    pub config: RunbookConfig,
    /// The cluster as the runbook sees it.
    pub cluster: Arc<dyn ClusterOps>,
    /// Stops and starts the in-process nodes.
    pub executor: Arc<dyn Executor>,
    /// Dumps and restores the demo's store.
    pub store: Arc<dyn StoreBackup>,
}

/// The journal of the demo's runs under `state_dir`.
pub fn journal_path(state_dir: &Path) -> PathBuf {
    journal::journal_path(state_dir, CLUSTER)
}

/// The runbook configuration of the demo.
pub fn runbook_config() -> Result<RunbookConfig, String> {
    let (record, name) = SEED_RECORDS[0];
    let mut text = format!(
        "[cluster]\nname = \"{CLUSTER}\"\n\n[executor]\nkind = \"manual\"\n\n[backup]\nkind = \"none\"\n\n\
         [[verify.smoke]]\npath = \"/api/records/{record}\"\nexpect_status = 200\nbody_contains = \"{name}\"\n\n\
         [timeouts]\ndrain_s = 15\nstop_s = 20\nfirst_node_s = 30\nnode_s = 30\nrestore_s = 20\npoll_ms = 200\n"
    );
    for id in NODE_IDS {
        text.push_str(&format!("\n[[nodes]]\nname = \"{id}\"\n"));
    }
    let mut config =
        RunbookConfig::parse(&text, "the demo's runbook").map_err(|e| e.to_string())?;
    // Set in code: a file cannot name an in-process store.
    config.backup.kind = "memory".to_string();
    Ok(config)
}

impl DemoCluster {
    /// The runbook's parts for this cluster.
    pub fn upgrade(&self) -> Result<DemoUpgrade, String> {
        Ok(DemoUpgrade {
            config: runbook_config()?,
            cluster: Arc::new(DemoClusterOps::new(self.shared.clone())),
            executor: Arc::new(InProcessExecutor::new(self.shared.clone())),
            store: Arc::new(DemoStoreBackup::new(self.shared.clone())),
        })
    }

    /// A copy of the demo's data (records, schema version).
    pub fn store_data(&self) -> Option<crate::node::store::MemoryData> {
        self.shared.store.memory_data()
    }
}
