//! [`DemoStoreBackup`]: the runbook's backup of the demo's data. The
//! nodes' shared memory store (records, record events, counters, schema
//! version) is written whole to a JSON file and read back on rollback.

use super::nodes::Shared;
use crate::node::store::MemoryData;
use crate::runbook::backup_store::StoreBackup;
use std::sync::Arc;

/// Dumps and restores the demo nodes' store.
pub struct DemoStoreBackup {
    shared: Arc<Shared>,
}

impl DemoStoreBackup {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait::async_trait]
impl StoreBackup for DemoStoreBackup {
    fn describe(&self) -> String {
        "the demo nodes' memory store".to_string()
    }

    async fn dump(&self) -> Result<(Vec<u8>, String), String> {
        let data = self
            .shared
            .store
            .memory_data()
            .ok_or("the demo store is not a memory store")?;
        let bytes = serde_json::to_vec_pretty(&data).map_err(|e| e.to_string())?;
        Ok((bytes, data.summary()))
    }

    async fn restore(&self, dump: &[u8]) -> Result<String, String> {
        let data: MemoryData = serde_json::from_slice(dump)
            .map_err(|e| format!("the backup is not a dump of the demo store: {e}"))?;
        let summary = data.summary();
        self.shared
            .store
            .with_memory(|d| *d = data)
            .ok_or("the demo store is not a memory store")?;
        // What the shared cache still holds came from the data replaced.
        self.shared.cache.clear().await.map_err(|e| {
            format!("the data is restored, but the shared cache was not cleared: {e}")
        })?;
        Ok(summary)
    }
}
