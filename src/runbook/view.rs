//! A run as a console shows it: who started it, every step with what it
//! does, its result, its output, and when it started and ended, how the run
//! ended (or that it was interrupted or paused) and what to do next --
//! derived from the journal's fold ([`super::fold::RunSummary`]) of its
//! entries (the local file, or the Redis mirror read elsewhere).

use super::backup::BackupRecord;
use super::cluster::Actor;
pub use super::fold::{DecisionTaken, Interruption, RunHead, StepView};
use super::fold::{RunSummary, unknown_line};
use super::journal::{Entry, RunEnd, StepResult};
use super::plan::StepKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    /// Who started it, where, from which version to which (flattened).
    #[serde(flatten)]
    pub head: RunHead,
    /// The last resume: who and when.
    pub resumed: Option<(Actor, u64)>,
    /// The upgrade steps, then the rollback steps once it started.
    pub steps: Vec<StepView>,
    /// The step running now (started, not ended), if any.
    pub running: Option<StepKind>,
    /// Interrupted and not resumed since.
    pub interrupted: Option<Interruption>,
    /// Paused after this step and not resumed since.
    pub paused_after: Option<StepKind>,
    /// Why the rollback started, if it did.
    pub rollback: Option<String>,
    /// The backup, once recorded.
    pub backup: Option<BackupRecord>,
    /// The last decision.
    pub last_decision: Option<DecisionTaken>,
    /// How it ended.
    pub finished: Option<RunEnd>,
    /// Who ended it and when.
    pub finished_by: Option<(Actor, u64)>,
    /// Unix ms of the last entry.
    pub last_at_ms: u64,
    /// Number of entries of this run.
    pub entries: usize,
    /// Events this version does not know, by name, and how many.
    pub unknown_events: BTreeMap<String, u32>,
}

impl From<RunSummary> for RunView {
    fn from(s: RunSummary) -> Self {
        RunView {
            head: s.head,
            resumed: s.resumed.last().cloned(),
            steps: s.steps,
            running: s.running,
            interrupted: s.interrupted,
            paused_after: s.paused_after,
            rollback: s.rollback,
            backup: s.backup,
            last_decision: s.decisions.last().cloned(),
            finished: s.outcome,
            finished_by: s.finished,
            last_at_ms: s.last_at_ms,
            entries: s.entries,
            unknown_events: s.unknown_events,
        }
    }
}

/// Where one step stands, in one word for the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Ended well.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Skipped on the operator's decision.
    Skipped,
    /// Running now.
    Running,
    /// Started, and the run was interrupted during it.
    Interrupted,
    /// Started, not ended, and the run has not ended either.
    Stopped,
    /// Started and never ended, in a run that has ended.
    NotEnded,
    /// Not started.
    Pending,
}

impl StepState {
    /// The word on the screen.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Succeeded => "succeeded",
            StepState::Failed => "FAILED",
            StepState::Skipped => "skipped",
            StepState::Running => "running",
            StepState::Interrupted => "interrupted",
            StepState::Stopped => "stopped",
            StepState::NotEnded => "not ended",
            StepState::Pending => "pending",
        }
    }
}

/// Where a run stands, in one word for the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A step runs, or the runbook is between steps or waiting for an answer.
    Running,
    /// Interrupted; resume, roll back or abort it.
    Interrupted,
    /// Paused after a step; resume continues.
    Paused,
    /// Upgraded.
    Completed,
    /// Rolled back.
    RolledBack,
    /// Aborted.
    Aborted,
}

impl RunStatus {
    /// Lowercase words.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::RolledBack => "rolled back",
            RunStatus::Aborted => "aborted",
        }
    }
}

impl RunView {
    /// Where `step` (one of [`RunView::steps`]) stands.
    pub fn step_state(&self, step: &StepView) -> StepState {
        let started = step.started_at_ms.is_some();
        match &step.result {
            Some(StepResult::Succeeded) => StepState::Succeeded,
            Some(StepResult::Failed { .. }) => StepState::Failed,
            Some(StepResult::Skipped) => StepState::Skipped,
            None if self.running == Some(step.kind) => StepState::Running,
            None if started
                && self.interrupted.as_ref().and_then(|i| i.step) == Some(step.kind) =>
            {
                StepState::Interrupted
            }
            None if started && self.finished.is_none() => StepState::Stopped,
            None if started => StepState::NotEnded,
            None => StepState::Pending,
        }
    }

    /// `N event(s) this version does not know: name (count), …`, when the
    /// journal held any.
    pub fn unknown_line(&self) -> Option<String> {
        unknown_line(&self.unknown_events)
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        match (self.finished, &self.interrupted, self.paused_after) {
            (Some(RunEnd::Completed), ..) => RunStatus::Completed,
            (Some(RunEnd::RolledBack), ..) => RunStatus::RolledBack,
            (Some(RunEnd::Aborted), ..) => RunStatus::Aborted,
            (None, Some(_), _) => RunStatus::Interrupted,
            (None, None, Some(_)) => RunStatus::Paused,
            (None, None, None) => RunStatus::Running,
        }
    }

    /// What the operator can do next, in one short line.
    pub fn next(&self) -> String {
        let prev = self
            .head
            .previous_version
            .as_deref()
            .unwrap_or("the previous version");
        match self.status() {
            RunStatus::Completed => format!(
                "nothing: every node runs {} and traffic is restored",
                self.head.target_version
            ),
            RunStatus::RolledBack => {
                format!("the nodes run {prev} on the backup's data; see why in clusterops audit")
            }
            RunStatus::Aborted => {
                "check the cluster (maintenance may be on), then start a new run".to_string()
            }
            RunStatus::Interrupted | RunStatus::Paused => {
                format!("clusterops upgrade --resume (or --rollback to {prev}, or --abort)")
            }
            RunStatus::Running => match self.running {
                Some(step) => format!("wait: {} is running", step.title()),
                None => "wait: between steps, or waiting for the operator's answer".to_string(),
            },
        }
    }
}

/// The last run in `entries`.
pub fn last_run(entries: &[Entry]) -> Option<RunView> {
    RunSummary::last(entries).map(RunView::from)
}
