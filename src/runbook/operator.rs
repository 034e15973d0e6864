//! The operator: whoever answers the runbook's questions and watches its
//! progress. The terminal, the console and tests each implement
//! [`Operator`]; [`AutoOperator`] is `--yes`.

pub use super::journal::{StepLine, StepResult, StepStart};
use super::plan::StepKind;
use serde::{Deserialize, Serialize};

/// An operator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Yes, go on.
    Confirm,
    /// Run the failed step again.
    Retry,
    /// Go on without this step (recorded).
    Skip,
    /// Stop the run here; the cluster stays as it is.
    Abort,
    /// Roll back to the previous version and the backup.
    Rollback,
}

impl Decision {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Confirm => "confirm",
            Decision::Retry => "retry",
            Decision::Skip => "skip",
            Decision::Abort => "abort",
            Decision::Rollback => "rollback",
        }
    }
}

/// Why the engine asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    /// The preflight found warnings: go on?
    Warnings,
    /// The first upgraded node passed its checks: roll out?
    Verify,
    /// The manual executor's instruction: done?
    ManualAction,
    /// A step failed: retry, skip, abort (or roll back)?
    Failure,
}

/// A question to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Why.
    pub kind: PromptKind,
    /// The step asking.
    pub step: StepKind,
    /// What to decide, in a few lines.
    pub message: String,
    /// Accepted answers; anything else counts as the last one.
    pub choices: Vec<Decision>,
}

/// Something the operator may want to see now. Not journaled as such
/// (steps journal their output lines themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A step starts; the description says what it will do.
    StepStarted(StepStart),
    /// One line of a step's output.
    Output(StepLine),
    /// Backup bytes written so far.
    Bytes {
        /// Step.
        step: StepKind,
        /// Bytes written.
        written: u64,
    },
    /// A step ended.
    StepFinished {
        /// Step.
        step: StepKind,
        /// How (shown as `succeeded`, `failed: …` or `skipped`).
        result: StepResult,
    },
    /// A note from the engine (journal mirror failures, lock, resume).
    Note {
        /// The text.
        text: String,
    },
}

/// Whoever answers questions and watches progress.
#[async_trait::async_trait]
pub trait Operator: Send + Sync {
    /// Ask; the answer should be one of `prompt.choices`.
    async fn confirm(&self, prompt: &Prompt) -> Decision;

    /// Show progress (must not block).
    fn progress(&self, event: &Progress);
}

/// `--yes`: confirms warnings and the verification; on a failure it rolls
/// back when allowed and configured, else aborts. It never skips, and it
/// cannot perform a manual executor's instructions (it aborts there).
#[derive(Debug, Clone)]
pub struct AutoOperator {
    rollback_on_failure: bool,
    print: bool,
}

impl AutoOperator {
    /// `rollback_on_failure`: answer a failure at steps 5-8 with a rollback.
    /// `print`: write progress lines to stderr.
    pub fn new(rollback_on_failure: bool, print: bool) -> Self {
        Self {
            rollback_on_failure,
            print,
        }
    }
}

#[async_trait::async_trait]
impl Operator for AutoOperator {
    async fn confirm(&self, prompt: &Prompt) -> Decision {
        let answer = match prompt.kind {
            PromptKind::Warnings | PromptKind::Verify => Decision::Confirm,
            PromptKind::ManualAction => Decision::Abort,
            PromptKind::Failure => {
                if self.rollback_on_failure && prompt.choices.contains(&Decision::Rollback) {
                    Decision::Rollback
                } else {
                    Decision::Abort
                }
            }
        };
        if self.print {
            say(format_args!(
                "? {} -> {} (--yes)",
                prompt.message.lines().next().unwrap_or(""),
                answer.as_str()
            ));
        }
        answer
    }

    fn progress(&self, event: &Progress) {
        if self.print {
            say(format_args!("{}", format_progress(event)));
        }
    }
}

/// Write one line to stderr, ignoring failures: after a SIGHUP (the SSH
/// session dropped) the terminal is gone and `eprintln!` would panic.
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// One line for a terminal.
pub fn format_progress(event: &Progress) -> String {
    match event {
        Progress::StepStarted(StepStart {
            step,
            attempt,
            description,
        }) => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            format!(
                "== {}{again}: {}",
                step.title(),
                description.lines().next().unwrap_or("")
            )
        }
        Progress::Output(StepLine { line, .. }) => format!("   {line}"),
        Progress::Bytes { written, .. } => format!("   {written} bytes written"),
        Progress::StepFinished { step, result } => format!("-- {}: {result}", step.title()),
        Progress::Note { text } => format!("note: {text}"),
    }
}
