//! [`DemoClusterOps`]: what the runbook asks of the cluster, for the demo's
//! in-process nodes: the preflight checks on a demo snapshot, the
//! maintenance flag the nodes follow (held in memory, no Redis), the nodes'
//! own status reports, their worker IDs, and an in-memory runbook lock.
//! There is nothing to mirror the journal to: the local journal file is
//! the whole record.

use super::nodes::Shared;
use super::source::DemoSource;
use crate::clock::now_ms;
use crate::inspect::source::SnapshotSource;
use crate::inspect::{CheckResult, checks, checks_clock};
use crate::node::maintenance::{MaintenanceFlag, MaintenanceRead};
use crate::runbook::probe;
use crate::runbook::{
    ClusterError, ClusterOps, HeldLease, LockAcquireError, LockRequest, NodeReport,
    RunbookLockGuard,
};
use std::sync::Arc;

/// The runbook's view of the in-process demo cluster.
pub struct DemoClusterOps {
    shared: Arc<Shared>,
    http: reqwest::Client,
}

impl DemoClusterOps {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            http: probe::client(),
        }
    }
}

/// The held in-memory runbook lock.
struct DemoRunbookLock {
    shared: Arc<Shared>,
    holder: String,
}

#[async_trait::async_trait]
impl RunbookLockGuard for DemoRunbookLock {
    async fn release(self: Box<Self>) -> Result<(), ClusterError> {
        let mut lock = self.shared.runbook_lock.lock();
        if lock.as_ref().is_some_and(|(h, _)| *h == self.holder) {
            *lock = None;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ClusterOps for DemoClusterOps {
    async fn preflight(&self) -> Result<Vec<CheckResult>, ClusterError> {
        let source = DemoSource {
            shared: self.shared.clone(),
            http: self.http.clone(),
        };
        let snap = source.fetch().await.map_err(ClusterError::new)?;
        // The checks that read the nodes; the demo has no Redis, RabbitMQ
        // or configuration of servers to check.
        Ok(vec![
            checks::sources_reachable(&snap),
            checks::nodes_healthy(&snap),
            checks::same_fingerprint(&snap),
            checks::same_version(&snap),
            checks::worker_id_capacity(&snap),
            checks::stale_worker_ids(&snap),
            checks_clock::clock_skew(&snap),
        ])
    }

    async fn set_maintenance(&self, by: &str, reason: &str) -> Result<(), ClusterError> {
        self.shared
            .maintenance
            .send_replace(MaintenanceRead::Set(MaintenanceFlag {
                by: by.to_string(),
                reason: reason.to_string(),
                since_ms: now_ms(),
            }));
        Ok(())
    }

    async fn clear_maintenance(&self) -> Result<bool, ClusterError> {
        let was = self.shared.maintenance.send_replace(MaintenanceRead::Clear);
        Ok(!matches!(was, MaintenanceRead::Clear))
    }

    async fn maintenance_set(&self) -> Result<bool, ClusterError> {
        Ok(!matches!(
            *self.shared.maintenance.borrow(),
            MaintenanceRead::Clear
        ))
    }

    async fn node_states(&self) -> Result<Vec<NodeReport>, ClusterError> {
        let addrs: Vec<String> = self
            .shared
            .nodes
            .lock()
            .iter()
            .map(|n| n.addr.to_string())
            .collect();
        let mut out = Vec::new();
        for addr in addrs {
            // A node that does not answer is stopping: it is not live.
            if let Ok(st) = probe::status(&self.http, &addr).await {
                out.push(NodeReport {
                    node_id: st.node_id,
                    state: st.state,
                    app_version: st.app_version,
                    schema_version: st.schema_version,
                    worker_id: st.worker_id,
                    http_addr: addr,
                });
            }
        }
        Ok(out)
    }

    async fn leases_held(&self) -> Result<Vec<HeldLease>, ClusterError> {
        Ok(self
            .node_states()
            .await?
            .into_iter()
            .filter_map(|n| {
                n.worker_id.map(|worker_id| HeldLease {
                    worker_id,
                    holder: n.node_id,
                })
            })
            .collect())
    }

    async fn acquire_runbook_lock(
        &self,
        request: &LockRequest,
    ) -> Result<Box<dyn RunbookLockGuard>, LockAcquireError> {
        let holder = request.holder();
        let mut lock = self.shared.runbook_lock.lock();
        match lock.as_ref() {
            Some((other, since)) if *other != holder => {
                return Err(LockAcquireError::refused(other.clone(), *since));
            }
            _ => *lock = Some((holder.clone(), now_ms())),
        }
        Ok(Box::new(DemoRunbookLock {
            shared: self.shared.clone(),
            holder,
        }))
    }

    async fn mirror_journal(&self, _line: &str) -> Result<(), ClusterError> {
        Ok(())
    }

    fn bypass_token(&self) -> Option<String> {
        crate::node::http::runbook_bypass_token(&self.shared.config)
    }
}
