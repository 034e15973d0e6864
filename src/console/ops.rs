//! [`Operation`]: one change an operator asked for in the console and
//! confirmed, with the words the confirmation dialog shows. The changes
//! themselves are [`crate::operate`]'s.

use crate::console::format;
use crate::operate::ClusterActions;

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
    /// Pause every node's consumers of a queue.
    PauseQueue {
        /// Queue name.
        queue: String,
        /// Why, recorded in the flag and the audit file.
        reason: String,
    },
    /// Let a paused queue's consumers take messages again.
    ResumeQueue {
        /// Queue name.
        queue: String,
        /// Who paused it.
        by: String,
        /// Why it was paused.
        reason: String,
    },
}

/// The reason recorded when a queue is paused from the console.
pub const CONSOLE_PAUSE_REASON: &str = "paused from the console";

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
            Operation::PauseQueue { .. } => "Pause queue",
            Operation::ResumeQueue { .. } => "Resume queue",
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
            Operation::PauseQueue { queue, reason } => vec![
                format!("Pauses every node's consumers of queue {queue}."),
                "Running handlers finish; nothing new is taken until resumed.".into(),
                format!("reason: {reason}"),
            ],
            Operation::ResumeQueue { queue, by, reason } => vec![
                format!("Resumes the consumers of queue {queue} on every node."),
                format!("paused by {by}: {reason}"),
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
            Operation::PauseQueue { queue, .. } => format!("pause queue {queue}"),
            Operation::ResumeQueue { queue, .. } => format!("resume queue {queue}"),
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
            Operation::PauseQueue { queue, reason } => actions.pause_queue(queue, reason).await,
            Operation::ResumeQueue { queue, .. } => actions.resume_queue(queue).await,
        }
    }
}

fn live_word(live: bool) -> &'static str {
    if live { "live" } else { "not live" }
}
