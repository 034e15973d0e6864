//! [`RedisClusterOps`]: the runbook's [`ClusterOps`] on a real cluster, from
//! its [`Config`]: the preflight is the `check` suite on a fresh inspector
//! snapshot, the maintenance flag is `node::maintenance`, the nodes come
//! from the registry, the leases from `worker_id::read_leases`, the runbook
//! lock is the library's Redis lock (`<ns>:lock:{runbook}`) and the journal
//! is mirrored with `journal::mirror_to_redis`. Everything lives in the
//! coordination Redis (`Config::coordination_redis`).

use super::cluster::{
    ClusterError, ClusterOps, HeldLease, LockAcquireError, LockRequest, NodeReport,
    RunbookLockGuard,
};
use super::journal;
use crate::adapters::lock::{self, LockBackend, LockGuard, RedisLock};
use crate::adapters::redis_conn;
use crate::adapters::redis_conn::SharedConn;
use crate::adapters::worker_id::{self, SlotLease};
use crate::config::{Config, SecretUrl};
use crate::inspect::{CheckResult, Inspector, checks};
use crate::node::maintenance::{self, MaintenanceFlag, MaintenanceRead};
use crate::node::registry::{Registry, RegistryEntry};
use std::time::Duration;

/// Name of the runbook lock (key `<ns>:lock:{runbook}`).
pub const LOCK_NAME: &str = "runbook";

/// TTL of the runbook lock; the guard's watchdog renews it every third.
pub const LOCK_TTL: Duration = Duration::from_secs(60);

/// The runbook's view of a real cluster.
pub struct RedisClusterOps {
    config: Config,
    url: SecretUrl,
    conn: SharedConn,
    inspector: Inspector,
}

impl RedisClusterOps {
    /// Connect to the configuration's coordination Redis. A memory-only
    /// configuration is refused: a runbook needs state the nodes share.
    pub async fn connect(config: Config) -> Result<Self, ClusterError> {
        let Some((var, url)) = config.coordination_redis() else {
            return Err(ClusterError::new(
                "the configuration has no Redis (REDIS_URL or a *_REDIS_URL): a runbook needs \
                 the cluster's shared state (maintenance flag, registry, lock); pass the \
                 nodes' env file with --env-file",
            ));
        };
        let url = url.clone();
        let conn = redis_conn::connect(&url)
            .await
            .map_err(|e| ClusterError::new(format!("{var} ({url}): {e}")))?;
        Ok(Self {
            inspector: Inspector::new(config.clone()),
            config,
            url,
            conn,
        })
    }

    fn redis_err(&self, action: &str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::new(format!(
            "{action} on Redis {} failed: {e}; check that it is reachable, then retry",
            self.url
        ))
    }
}

#[async_trait::async_trait]
impl ClusterOps for RedisClusterOps {
    async fn preflight(&self) -> Result<Vec<CheckResult>, ClusterError> {
        let snap = self.inspector.snapshot().await;
        Ok(checks::run(&self.config, &snap))
    }

    async fn set_maintenance(&self, by: &str, reason: &str) -> Result<(), ClusterError> {
        let flag = MaintenanceFlag {
            by: by.to_string(),
            reason: reason.to_string(),
            since_ms: crate::clock::now_ms(),
        };
        maintenance::set(&mut self.conn.clone(), &self.config.namespace, &flag)
            .await
            .map_err(|e| self.redis_err("setting the maintenance flag", e))
    }

    async fn clear_maintenance(&self) -> Result<bool, ClusterError> {
        maintenance::clear(&mut self.conn.clone(), &self.config.namespace)
            .await
            .map_err(|e| self.redis_err("clearing the maintenance flag", e))
    }

    async fn maintenance_set(&self) -> Result<bool, ClusterError> {
        let read = maintenance::read(&mut self.conn.clone(), &self.config.namespace)
            .await
            .map_err(|e| self.redis_err("reading the maintenance flag", e))?;
        // An unreadable flag counts as set, as the nodes treat it.
        Ok(!matches!(read, MaintenanceRead::Clear))
    }

    async fn node_states(&self) -> Result<Vec<NodeReport>, ClusterError> {
        // The TTL only matters for writing heartbeats; this only reads.
        let registry = Registry::new(self.config.namespace.clone(), Duration::from_secs(1));
        let entries = registry
            .read_all(&mut self.conn.clone())
            .await
            .map_err(|e| self.redis_err("reading the node registry", e))?;
        let mut out = Vec::new();
        for e in entries {
            match e {
                RegistryEntry::Live { record, .. } => out.push(NodeReport {
                    node_id: record.node_id,
                    state: record.state,
                    app_version: record.app_version,
                    schema_version: record.schema_version,
                    worker_id: record.worker_id,
                    http_addr: record.http_addr,
                }),
                RegistryEntry::Unreadable { key, reason } => {
                    tracing::warn!(key, reason, "unreadable registry record ignored");
                }
            }
        }
        Ok(out)
    }

    async fn leases_held(&self) -> Result<Vec<HeldLease>, ClusterError> {
        let slots = worker_id::read_leases(&mut self.conn.clone(), &self.config.namespace)
            .await
            .map_err(|e| self.redis_err("reading the worker-ID leases", e))?;
        Ok(slots
            .into_iter()
            .filter_map(|s| match s.lease {
                SlotLease::Free => None,
                SlotLease::Held { holder, .. } => Some(HeldLease {
                    worker_id: u16::from(s.worker_id),
                    holder: holder.node,
                }),
                SlotLease::Unreadable { reason, .. } => Some(HeldLease {
                    worker_id: u16::from(s.worker_id),
                    holder: format!("unreadable ({reason})"),
                }),
            })
            .collect())
    }

    async fn acquire_runbook_lock(
        &self,
        request: &LockRequest,
    ) -> Result<Box<dyn RunbookLockGuard>, LockAcquireError> {
        let failed =
            |e: lock::LockError| LockAcquireError::Failed(ClusterError::new(e.to_string()));
        let holder = request.holder();
        let backend = RedisLock::connect(&self.url, self.config.namespace.clone(), &holder)
            .await
            .map_err(failed)?;
        // Twice at most: the second time after taking back our own lock.
        for _ in 0..2 {
            if let Some(guard) = backend
                .try_acquire(LOCK_NAME, LOCK_TTL)
                .await
                .map_err(failed)?
            {
                return Ok(Box::new(RedisRunbookLock {
                    guard,
                    _backend: backend,
                }));
            }
            let mut conn = self.conn.clone();
            let Some(info) = lock::read_holder(&mut conn, &self.config.namespace, LOCK_NAME)
                .await
                .map_err(failed)?
            else {
                continue; // released meanwhile
            };
            if info.holder_node != holder {
                return Err(LockAcquireError::refused(
                    info.holder_node,
                    info.acquired_at_ms,
                ));
            }
            // The same run by the same person (a resume after a crash):
            // take its lock back instead of waiting for the TTL.
            tracing::info!(holder, "taking back this run's own runbook lock");
            lock::force_release(
                &mut conn,
                &self.config.namespace,
                LOCK_NAME,
                info.fencing_token,
            )
            .await
            .map_err(failed)?;
        }
        Err(LockAcquireError::Failed(ClusterError::new(
            "the runbook lock changed hands while it was being taken; retry",
        )))
    }

    fn bypass_token(&self) -> Option<String> {
        crate::node::http::runbook_bypass_token(&self.config)
    }

    async fn mirror_journal(&self, line: &str) -> Result<(), ClusterError> {
        journal::mirror_to_redis(&mut self.conn.clone(), &self.config.namespace, line)
            .await
            .map(|_| ())
            .map_err(|e| self.redis_err("mirroring the journal", e))
    }
}

/// The held runbook lock: the library's guard, renewed by its watchdog.
struct RedisRunbookLock {
    guard: LockGuard,
    _backend: RedisLock,
}

#[async_trait::async_trait]
impl RunbookLockGuard for RedisRunbookLock {
    fn is_held(&self) -> bool {
        !self.guard.is_lost()
    }

    async fn release(self: Box<Self>) -> Result<(), ClusterError> {
        self.guard
            .release()
            .await
            .map_err(|e| ClusterError::new(e.to_string()))
    }
}
