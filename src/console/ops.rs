//! What the console may change on a cluster: the [`ClusterActions`] trait
//! (implemented later over the adapters), and [`Operation`], one request an
//! operator confirmed, with the words the confirmation dialog shows.

use crate::console::format;

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
/// use clusterops::console::ops::{ClusterActions, DeadLetter};
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
}

/// One change an operator asked for, carrying what they saw when asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Turn maintenance on.
    SetMaintenance {
        /// Why, typed by the operator.
        reason: String,
    },
    /// Turn maintenance off.
    ClearMaintenance {
        /// Who set it.
        by: String,
        /// Why it was set.
        reason: String,
    },
    /// Delete a held lock.
    ForceReleaseLock {
        /// Lock name.
        name: String,
        /// Holder seen.
        holder: String,
        /// Whether the holder was live.
        holder_live: bool,
        /// Fencing token seen.
        fencing_token: u64,
        /// How long it had been held, ms.
        age_ms: u64,
    },
    /// Free the worker-ID lease of a dead node.
    FreeLease {
        /// The worker ID.
        worker_id: u8,
        /// The dead holder.
        holder: String,
    },
    /// Put dead letters back on their queue.
    RequeueDeadLetters {
        /// Queue name.
        queue: String,
        /// Dead letters seen.
        count: u64,
    },
    /// Delete dead letters.
    PurgeDeadLetters {
        /// Queue name.
        queue: String,
        /// Dead letters seen.
        count: u64,
    },
}

impl Operation {
    /// The dialog's title.
    pub fn title(&self) -> &'static str {
        match self {
            Operation::SetMaintenance { .. } => "Set maintenance",
            Operation::ClearMaintenance { .. } => "Clear maintenance",
            Operation::ForceReleaseLock { .. } => "Force-release lock",
            Operation::FreeLease { .. } => "Free worker-ID lease",
            Operation::RequeueDeadLetters { .. } => "Requeue dead letters",
            Operation::PurgeDeadLetters { .. } => "Purge dead letters",
        }
    }

    /// Exactly what will happen, one line each, for the confirmation dialog.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Operation::SetMaintenance { reason } => vec![
                "Sets the cluster's maintenance flag.".into(),
                format!("reason: {reason}"),
            ],
            Operation::ClearMaintenance { by, reason } => vec![
                "Clears the cluster's maintenance flag.".into(),
                format!("set by {by}: {reason}"),
            ],
            Operation::ForceReleaseLock {
                name,
                holder,
                holder_live,
                fencing_token,
                age_ms,
            } => vec![
                format!(
                    "Deletes lock {name}, held {} by {holder} ({}).",
                    format::age(*age_ms),
                    live_word(*holder_live)
                ),
                format!("fencing token {fencing_token}: nothing happens if the token changed."),
                if *holder_live {
                    format!("{holder} is not told and may still act as the holder.")
                } else {
                    "The holder is not live; the next acquirer gets a new token.".into()
                },
            ],
            Operation::FreeLease { worker_id, holder } => vec![
                format!("Deletes the lease on worker ID {worker_id}, held by dead node {holder}."),
                format!("Nothing happens if {holder} no longer holds it."),
                format!("A starting node may then take worker ID {worker_id}."),
            ],
            Operation::RequeueDeadLetters { queue, count } => vec![
                format!(
                    "Moves {} dead letters of queue {queue} back onto it.",
                    format::count(*count)
                ),
                "They will be delivered to consumers again.".into(),
            ],
            Operation::PurgeDeadLetters { queue, count } => vec![
                format!(
                    "Deletes {} dead letters of queue {queue}.",
                    format::count(*count)
                ),
                "This cannot be undone.".into(),
            ],
        }
    }

    /// One line naming the operation, for the Events view.
    pub fn summary(&self) -> String {
        match self {
            Operation::SetMaintenance { reason } => format!("set maintenance ({reason})"),
            Operation::ClearMaintenance { .. } => "clear maintenance".into(),
            Operation::ForceReleaseLock {
                name,
                fencing_token,
                ..
            } => {
                format!("force-release lock {name} (token {fencing_token})")
            }
            Operation::FreeLease { worker_id, holder } => {
                format!("free worker ID {worker_id} ({holder})")
            }
            Operation::RequeueDeadLetters { queue, .. } => {
                format!("requeue dead letters of {queue}")
            }
            Operation::PurgeDeadLetters { queue, .. } => format!("purge dead letters of {queue}"),
        }
    }

    /// Carry it out.
    pub async fn run(&self, actions: &dyn ClusterActions) -> Result<String, String> {
        match self {
            Operation::SetMaintenance { reason } => actions.set_maintenance(reason).await,
            Operation::ClearMaintenance { .. } => actions.clear_maintenance().await,
            Operation::ForceReleaseLock {
                name,
                fencing_token,
                ..
            } => actions.force_release_lock(name, *fencing_token).await,
            Operation::FreeLease { worker_id, holder } => {
                actions.free_lease(*worker_id, holder).await
            }
            Operation::RequeueDeadLetters { queue, .. } => {
                actions.requeue_dead_letters(queue).await
            }
            Operation::PurgeDeadLetters { queue, .. } => actions.purge_dead_letters(queue).await,
        }
    }
}

fn live_word(live: bool) -> &'static str {
    if live { "live" } else { "not live" }
}
