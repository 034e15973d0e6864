//! [`LiveActions`]: the [`ClusterActions`] on a real cluster, through the
//! adapters' admin functions, each change compare-and-set against what the
//! operator saw and appended to the audit file ([`super::audit`]).

use super::actions::{ClusterActions, DeadLetter};
use super::audit::{AuditRecord, append_json_line};
use crate::adapters::redis_conn::SharedConn;
use crate::adapters::{lock, queue, worker_id};
use crate::clock::now_ms;
use crate::config::{Config, LockAdapter, SecretUrl};
use crate::node::maintenance::{self, MaintenanceFlag};
use crate::node::registry::{Registry, RegistryEntry};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Changes to the live cluster, each compare-and-set against what the
/// operator saw, each appended to the audit file.
pub struct LiveActions {
    config: Config,
    by: String,
    audit_path: PathBuf,
    conns: tokio::sync::Mutex<HashMap<String, SharedConn>>,
    queue: tokio::sync::OnceCell<Arc<dyn queue::MessageQueue>>,
}

impl LiveActions {
    /// Act on the cluster `config` describes as `by` (`user@host`, see
    /// [`operator`]), recording to `audit_path` (JSON lines). Nothing is
    /// connected until an action runs.
    pub fn new(config: Config, by: impl Into<String>, audit_path: impl Into<PathBuf>) -> Self {
        Self {
            config,
            by: by.into(),
            audit_path: audit_path.into(),
            conns: Default::default(),
            queue: Default::default(),
        }
    }

    /// The audit file.
    pub fn audit_path(&self) -> &Path {
        &self.audit_path
    }

    async fn conn(&self, url: &SecretUrl) -> Result<SharedConn, String> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(url.expose()) {
            return Ok(c.clone());
        }
        let c = crate::adapters::redis_conn::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        conns.insert(url.expose().to_string(), c.clone());
        Ok(c)
    }

    async fn coordination(&self) -> Result<SharedConn, String> {
        match self.config.coordination_redis() {
            Some((_, url)) => self.conn(url).await,
            None => Err("no coordination Redis is configured (REDIS_URL or an adapter URL)".into()),
        }
    }

    async fn queue(&self) -> Result<Arc<dyn queue::MessageQueue>, String> {
        self.queue
            .get_or_try_init(|| async {
                let opts = queue::QueueOptions {
                    reconnect_timeout: Duration::from_secs(2),
                    ..Default::default()
                };
                queue::from_config_with(&self.config, "console", opts)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }

    fn record(&self, action: &str, target: &str, result: &Result<String, String>) {
        let (outcome, detail) = match result {
            Ok(d) => ("ok", d.clone()),
            Err(d) => ("refused", d.clone()),
        };
        let rec = AuditRecord {
            who: self.by.clone(),
            at_ms: now_ms(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail,
        };
        tracing::info!(action, target, outcome, by = %self.by, "operator action");
        if let Err(e) = append_json_line(&self.audit_path, &rec) {
            tracing::error!(path = %self.audit_path.display(), "cannot write the audit record: {e}");
        }
    }

    async fn do_free_lease(&self, worker_id: u8, holder: &str) -> Result<String, String> {
        let url = self
            .config
            .worker_id_redis
            .as_ref()
            .ok_or("REDIS_URL is unset: worker IDs are not leased in Redis")?;
        let mut conn = self.conn(url).await?;
        let slots = worker_id::read_leases(&mut conn, &self.config.namespace)
            .await
            .map_err(|e| e.to_string())?;
        let raw = match slots.into_iter().find(|s| s.worker_id == worker_id) {
            Some(worker_id::LeaseSlot {
                lease: worker_id::SlotLease::Held { holder: h, raw },
                ..
            }) if h.node == holder => raw,
            Some(worker_id::LeaseSlot {
                lease: worker_id::SlotLease::Held { holder: h, .. },
                ..
            }) => {
                return Err(format!(
                    "worker ID {worker_id} is now held by {}, not {holder}: nothing done",
                    h.node
                ));
            }
            _ => {
                return Err(format!(
                    "worker ID {worker_id} is not held by {holder} any more: nothing done"
                ));
            }
        };
        let mut coord = self.coordination().await?;
        let registry = Registry::new(self.config.namespace.clone(), Duration::from_secs(6));
        let entries = registry
            .read_all(&mut coord)
            .await
            .map_err(|e| format!("cannot read the node registry: {e}"))?;
        let live = entries
            .iter()
            .any(|e| matches!(e, RegistryEntry::Live { record, .. } if record.node_id == holder));
        if live {
            return Err(format!(
                "{holder} is a live node: its lease is not freed (stop the node instead)"
            ));
        }
        match worker_id::force_free(&mut conn, &self.config.namespace, worker_id, &raw).await {
            Ok(true) => Ok(format!("freed worker ID {worker_id} (was {holder})")),
            Ok(false) => Err(format!(
                "worker ID {worker_id} changed meanwhile: nothing done"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl ClusterActions for LiveActions {
    async fn set_maintenance(&self, reason: &str) -> Result<String, String> {
        let result = async {
            let mut conn = self.coordination().await?;
            let flag = MaintenanceFlag {
                by: self.by.clone(),
                reason: reason.to_string(),
                since_ms: now_ms(),
            };
            maintenance::set(&mut conn, &self.config.namespace, &flag)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("maintenance set by {}: {reason}", self.by))
        }
        .await;
        self.record("set-maintenance", reason, &result);
        result
    }

    async fn clear_maintenance(&self) -> Result<String, String> {
        let result = async {
            let mut conn = self.coordination().await?;
            match maintenance::clear(&mut conn, &self.config.namespace).await {
                Ok(true) => Ok("maintenance cleared".to_string()),
                Ok(false) => Err("maintenance was not set: nothing done".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        self.record("clear-maintenance", "maintenance", &result);
        result
    }

    async fn force_release_lock(&self, name: &str, fencing_token: u64) -> Result<String, String> {
        let result = async {
            let LockAdapter::Redis(url) = &self.config.lock else {
                return Err("LOCK_ADAPTER_DEFAULT is local: no shared lock to release".into());
            };
            let mut conn = self.conn(url).await?;
            match lock::force_release(&mut conn, &self.config.namespace, name, fencing_token).await
            {
                Ok(lock::ForceReleaseOutcome::Released) => {
                    Ok(format!("lock {name} released (token {fencing_token})"))
                }
                Ok(lock::ForceReleaseOutcome::NotHeld) => {
                    Err(format!("lock {name} is not held any more: nothing done"))
                }
                Ok(lock::ForceReleaseOutcome::TokenMismatch) => Err(format!(
                    "lock {name} has another token than {fencing_token} now: nothing done"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        self.record(
            "force-release-lock",
            &format!("{name} token {fencing_token}"),
            &result,
        );
        result
    }

    async fn free_lease(&self, worker_id: u8, holder: &str) -> Result<String, String> {
        let result = self.do_free_lease(worker_id, holder).await;
        self.record(
            "free-lease",
            &format!("worker ID {worker_id} held by {holder}"),
            &result,
        );
        result
    }

    async fn requeue_dead_letters(&self, name: &str) -> Result<String, String> {
        let result = async {
            let q = self.queue().await?;
            let n = q
                .requeue_dead_letters(name, queue::Requeue::All)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("requeued {n} dead letters of {name}"))
        }
        .await;
        self.record("requeue-dead-letters", name, &result);
        result
    }

    async fn purge_dead_letters(&self, name: &str) -> Result<String, String> {
        let result = async {
            let q = self.queue().await?;
            let n = q
                .purge_dead_letters(name)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("purged {n} dead letters of {name}"))
        }
        .await;
        self.record("purge-dead-letters", name, &result);
        result
    }

    async fn pause_queue(&self, name: &str, reason: &str) -> Result<String, String> {
        let result = async {
            let q = self.queue().await?;
            let flag = queue::PauseFlag {
                by: self.by.clone(),
                reason: reason.to_string(),
                since_ms: now_ms(),
            };
            q.pause(name, &flag).await.map_err(|e| e.to_string())?;
            Ok(format!("queue {name} paused by {}: {reason}", self.by))
        }
        .await;
        self.record("pause-queue", &format!("{name}: {reason}"), &result);
        result
    }

    async fn resume_queue(&self, name: &str) -> Result<String, String> {
        let result = async {
            let q = self.queue().await?;
            match q.resume(name).await {
                Ok(true) => Ok(format!("queue {name} resumed")),
                Ok(false) => Err(format!("queue {name} was not paused: nothing done")),
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        self.record("resume-queue", name, &result);
        result
    }

    async fn list_dead_letters(&self, name: &str, limit: usize) -> Result<Vec<DeadLetter>, String> {
        let q = self.queue().await?;
        let now = now_ms();
        let found = q
            .dead_letters(name, limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(|d| to_console(d, now)).collect())
    }
}

/// A queue dead letter as the console lists it (never the payload).
pub fn to_console(d: queue::DeadLetter, now: u64) -> DeadLetter {
    DeadLetter {
        id: d.id,
        age_ms: Some(now.saturating_sub(d.failed_at_ms)),
        attempts: Some(d.attempts),
        reason: d.error.lines().next().unwrap_or("").to_string(),
    }
}
