//! What an operator may change on a live cluster: the [`ClusterActions`]
//! trait the console (and the `maintenance` command) call, the dead letters
//! it lists. [`LiveActions`](super::LiveActions) implements it over the
//! adapters; the console's demo implements it over its in-process nodes.

/// One dead letter as the Queues view lists it (no payload: it may hold
/// personal data or secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Message id.
    pub id: String,
    /// Milliseconds since it was dead-lettered, when known.
    pub age_ms: Option<u64>,
    /// Delivery attempts, when known.
    pub attempts: Option<u32>,
    /// Why it died, one line.
    pub reason: String,
}

/// The changes an operator can make from the console. Every method returns
/// a one-line outcome (`Ok` for done, `Err` for why not), appended to the
/// Events view. Implementations must be safe against races: each call names
/// what the operator saw (a holder, a fencing token) and must change nothing
/// when the cluster no longer matches.
///
/// ```
/// use clusterops::operate::{ClusterActions, DeadLetter};
/// struct Refuse;
/// #[async_trait::async_trait]
/// impl ClusterActions for Refuse {
///     async fn set_maintenance(&self, _: &str) -> Result<String, String> { Err("no".into()) }
///     async fn clear_maintenance(&self) -> Result<String, String> { Err("no".into()) }
///     async fn force_release_lock(&self, _: &str, _: u64) -> Result<String, String> { Err("no".into()) }
///     async fn free_lease(&self, _: u8, _: &str) -> Result<String, String> { Err("no".into()) }
///     async fn requeue_dead_letters(&self, _: &str) -> Result<String, String> { Err("no".into()) }
///     async fn purge_dead_letters(&self, _: &str) -> Result<String, String> { Err("no".into()) }
///     async fn list_dead_letters(&self, _: &str, _: usize) -> Result<Vec<DeadLetter>, String> { Ok(vec![]) }
/// }
/// ```
#[async_trait::async_trait]
pub trait ClusterActions: Send + Sync {
    /// Set the cluster's maintenance flag with this reason.
    async fn set_maintenance(&self, reason: &str) -> Result<String, String>;
    /// Clear the maintenance flag.
    async fn clear_maintenance(&self) -> Result<String, String>;
    /// Delete lock `name` only if its fencing token is still `fencing_token`.
    async fn force_release_lock(&self, name: &str, fencing_token: u64) -> Result<String, String>;
    /// Delete the lease on `worker_id` only if `holder` still holds it.
    async fn free_lease(&self, worker_id: u8, holder: &str) -> Result<String, String>;
    /// Move the dead letters of `queue` back onto it.
    async fn requeue_dead_letters(&self, queue: &str) -> Result<String, String>;
    /// Delete the dead letters of `queue`.
    async fn purge_dead_letters(&self, queue: &str) -> Result<String, String>;
    /// Read (without changing) up to `limit` dead letters of `queue`, oldest first.
    async fn list_dead_letters(&self, queue: &str, limit: usize)
    -> Result<Vec<DeadLetter>, String>;
    /// Pause every node's consumers of `queue` with this reason (running
    /// handlers finish; nothing new is taken until resumed).
    async fn pause_queue(&self, queue: &str, reason: &str) -> Result<String, String> {
        let _ = reason;
        Err(format!("cannot pause {queue} here"))
    }
    /// Let the consumers of `queue` take messages again.
    async fn resume_queue(&self, queue: &str) -> Result<String, String> {
        Err(format!("cannot resume {queue} here"))
    }
}
