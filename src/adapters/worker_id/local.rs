//! A random worker ID with no Redis: for a single node only, since two
//! nodes may draw the same ID and then issue the same snowflake IDs.

use super::{WORKER_IDS, WorkerIdAllocator, WorkerIdError, WorkerLease};
use std::sync::Arc;

/// A worker ID drawn at random, never renewed, never expiring.
#[derive(Debug)]
pub struct RandomWorkerId {
    node: String,
    lease: Arc<WorkerLease>,
}

impl RandomWorkerId {
    /// Draw a random worker ID; logs a warning that this is single-node only.
    pub fn new(node_id: impl Into<String>) -> Self {
        let node = node_id.into();
        let id = rand::random_range(0..WORKER_IDS);
        tracing::warn!(
            node = %node,
            worker_id = id,
            "REDIS_URL is not set: using random worker ID {id}; snowflake IDs are unique \
             for a single node only (set REDIS_URL to lease worker IDs in a cluster)"
        );
        Self {
            node,
            lease: WorkerLease::fixed(id),
        }
    }

    /// The node id given at construction.
    pub fn node(&self) -> &str {
        &self.node
    }
}

#[async_trait::async_trait]
impl WorkerIdAllocator for RandomWorkerId {
    fn lease(&self) -> Arc<WorkerLease> {
        Arc::clone(&self.lease)
    }

    fn backend(&self) -> &'static str {
        "random"
    }

    async fn release(&self) -> Result<(), WorkerIdError> {
        self.lease.close();
        Ok(())
    }
}
