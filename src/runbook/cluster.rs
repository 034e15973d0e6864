//! The cluster operations the runbook needs and does not own: the preflight,
//! the maintenance flag, the node registry, worker-ID leases, the cluster-wide
//! runbook lock and the Redis mirror of the journal. The CLI implements
//! [`ClusterOps`] on top of `inspect`, `node::maintenance` and the lock
//! adapter; tests implement it on a test namespace.

use crate::inspect::CheckResult;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A cluster operation failed. The message names the server or key and says
/// what to do next; the engine shows it and offers retry, skip or abort.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

impl ClusterError {
    /// A new error from any message.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// One live node as the registry and its heartbeat describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node id.
    pub node_id: String,
    /// `starting`, `running`, `maintenance`, `draining` or `error`.
    pub state: String,
    /// App version the node runs.
    pub app_version: String,
    /// Schema version the node found in the database.
    pub schema_version: Option<String>,
    /// Worker ID held.
    pub worker_id: Option<u16>,
    /// `host:port` of its HTTP server (health check and `/api/status`).
    pub http_addr: String,
}

/// A worker-ID lease that is still held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLease {
    /// The worker ID.
    pub worker_id: u16,
    /// The holder's node id.
    pub holder: String,
}

/// Who is running a runbook: the OS user and host of the runbook process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// OS user name.
    pub user: String,
    /// Host name.
    pub host: String,
}

impl Actor {
    /// The user and host of this process (`$USER`, else the uid's name).
    pub fn current() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .unwrap_or_else(|| format!("uid-{}", nix::unistd::getuid()));
        let host = crate::clock::hostname().unwrap_or_else(|| "unknown-host".to_string());
        Self { user, host }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// What the engine asks for when it takes the cluster-wide runbook lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    /// The run taking the lock.
    pub run_id: String,
    /// Who runs it.
    pub actor: Actor,
    /// Target version of the run.
    pub target_version: String,
}

impl LockRequest {
    /// The holder string to store with the lock: `runbook <run_id> by user@host`.
    pub fn holder(&self) -> String {
        format!("runbook {} by {}", self.run_id, self.actor)
    }
}

/// Why the runbook lock was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockAcquireError {
    /// Someone else holds it.
    #[error(
        "another runbook holds the cluster's runbook lock: {holder}, since {since}; wait for it \
         to finish, or ask its operator (a crashed runbook's lock expires after its TTL)"
    )]
    Refused {
        /// The holder as stored with the lock (`runbook <run id> by user@host`).
        holder: String,
        /// Unix ms when it was taken.
        since_ms: u64,
        /// `since_ms`, readable (UTC).
        since: String,
    },
    /// The lock could not be read or written.
    #[error("cannot take the runbook lock: {0}")]
    Failed(ClusterError),
}

impl LockAcquireError {
    /// A refusal, with `since` formatted from `since_ms`.
    pub fn refused(holder: impl Into<String>, since_ms: u64) -> Self {
        LockAcquireError::Refused {
            holder: holder.into(),
            since_ms,
            since: crate::clock::datetime(since_ms),
        }
    }
}

/// The held runbook lock. The engine releases it when a run ends, pauses or
/// stops on an error; a crashed runbook's lock expires after its TTL.
#[async_trait::async_trait]
pub trait RunbookLockGuard: Send + Sync {
    /// Whether the lock is still held (false when it was lost: expired or
    /// taken over). The engine checks it before every step.
    fn is_held(&self) -> bool {
        true
    }

    /// Release it.
    async fn release(self: Box<Self>) -> Result<(), ClusterError>;
}

/// Everything the runbook asks of the cluster itself. Implementations must
/// be safe to call repeatedly: the engine polls `node_states` and
/// `leases_held` while waiting, and re-runs steps after a resume.
///
/// ```no_run
/// # use clusterops::runbook::cluster::*;
/// # async fn demo(ops: &dyn ClusterOps) -> Result<(), ClusterError> {
/// ops.set_maintenance("alice@ops1", "upgrade to 3").await?;
/// let nodes = ops.node_states().await?;
/// println!("{} nodes alive", nodes.len());
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait ClusterOps: Send + Sync {
    /// The preflight: the `check` suite (`inspect::checks::run` on a fresh
    /// snapshot). A `fail` stops the run; a `warn` asks the operator.
    async fn preflight(&self) -> Result<Vec<CheckResult>, ClusterError>;

    /// Set the cluster maintenance flag (overwrite when already set).
    async fn set_maintenance(&self, by: &str, reason: &str) -> Result<(), ClusterError>;

    /// Clear the maintenance flag. Returns whether it was set.
    async fn clear_maintenance(&self) -> Result<bool, ClusterError>;

    /// Whether the maintenance flag is set now.
    async fn maintenance_set(&self) -> Result<bool, ClusterError>;

    /// Every live node in the registry (expired records are left out).
    async fn node_states(&self) -> Result<Vec<NodeReport>, ClusterError>;

    /// Worker-ID leases still held (empty: all free).
    async fn leases_held(&self) -> Result<Vec<HeldLease>, ClusterError>;

    /// Take the cluster-wide runbook lock, or say who holds it and since when.
    async fn acquire_runbook_lock(
        &self,
        request: &LockRequest,
    ) -> Result<Box<dyn RunbookLockGuard>, LockAcquireError>;

    /// Mirror one journal line (a JSON object) to the cluster, e.g. with
    /// [`super::journal::mirror_to_redis`] (`XADD <ns>:runbook:journal MAXLEN ~`).
    /// A failure is shown to the operator and does not stop the run.
    async fn mirror_journal(&self, line: &str) -> Result<(), ClusterError>;

    /// The value of the maintenance-bypass header that lets the verify
    /// step's smoke checks reach a node's app routes while maintenance is
    /// set (`node::http::runbook_bypass_token`, derived from `APP_KEY`).
    /// `None`: no bypass; smoke checks then see what users see.
    fn bypass_token(&self) -> Option<String> {
        None
    }
}
