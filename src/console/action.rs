//! [`Action`]: the only way the console's parts talk. Terminal keys become
//! actions in the views, the poller and the operation tasks send actions,
//! and the app applies them one at a time.

use crate::console::ops::Operation;
use crate::console::views::ViewId;
use crate::inspect::Snapshot;
use crate::operate::DeadLetter;

/// Something that happened or should happen in the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Leave the console.
    Quit,
    /// The clock moved (ages on screen change).
    Tick,
    /// A key was used; redraw, nothing else changes.
    Render,
    /// The terminal changed size.
    Resize,
    /// Show this view.
    SwitchView(ViewId),
    /// `:ctx NAME`: show that context (`None`: list the contexts).
    SwitchContext(Option<String>),
    /// The next view (Tab).
    NextView,
    /// The previous view (Shift-Tab).
    PrevView,
    /// Fetch a snapshot now instead of at the next refresh.
    RefreshNow,
    /// The source produced a snapshot.
    Fetched(Box<Snapshot>),
    /// The source failed; the last good snapshot stays on screen, greyed.
    FetchFailed {
        /// One line.
        reason: String,
        /// Unix ms of the failure.
        at_ms: u64,
    },
    /// Ask the operator to type the reason for maintenance.
    PromptMaintenanceReason,
    /// Ask the operator to confirm an operation.
    Ask(Operation),
    /// An operation finished.
    OperationDone {
        /// What was asked.
        op: Operation,
        /// The one-line outcome.
        outcome: Result<String, String>,
        /// Unix ms when it finished.
        at_ms: u64,
    },
    /// Fetch the dead letters of a queue for the Queues view.
    ListDeadLetters(String),
    /// The dead letters arrived.
    DeadLettersListed {
        /// Queue name.
        queue: String,
        /// The list, or why not.
        result: Result<Vec<DeadLetter>, String>,
    },
    /// Show a one-line message in the status bar.
    Status(String),
    /// The runbook run was read again (journal mirror, local journal).
    RunFetched(Box<crate::console::run_feed::RunPane>),
    /// Ask the operator which version to upgrade to.
    PromptRunbookVersion,
    /// Ask the operator to confirm a runbook operation.
    AskRunbook(crate::console::runbook_driver::RunbookOp),
    /// The runbook driven from here asks a question (a dialog).
    RunbookAsk(crate::runbook::Prompt),
    /// The runbook stopped waiting for the answer (interrupted).
    RunbookAskWithdrawn,
    /// The runbook driven from here made progress.
    RunbookProgress(crate::runbook::Progress),
    /// The runbook driven from here ended.
    RunbookFinished {
        /// One line.
        outcome: Result<String, String>,
        /// Unix ms.
        at_ms: u64,
    },
}
