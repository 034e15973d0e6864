//! A run as a console shows it: who started it, every step with what it
//! does, its result, its output, and when it started and ended, how the run
//! ended (or that it was interrupted or paused) and what to do next --
//! rebuilt from journal entries (the local file, or the Redis mirror read
//! elsewhere).

use super::backup::BackupRecord;
use super::cluster::Actor;
use super::journal::{Entry, Event, RunEnd, StepResult};
use super::operator::{Decision, PromptKind};
use super::plan::StepKind;
use serde::Serialize;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// Which step.
    pub kind: StepKind,
    /// What it does (from its last start).
    pub description: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Unix ms of its last start.
    pub started_at_ms: Option<u64>,
    /// Unix ms of its last end.
    pub ended_at_ms: Option<u64>,
    /// Its last result; `None` while not ended.
    pub result: Option<StepResult>,
    /// Its output lines, over all attempts.
    pub output: Vec<String>,
}

/// An interruption that has not been resumed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterruptionView {
    /// Unix ms.
    pub at_ms: u64,
    /// The step that was running or about to run.
    pub step: Option<StepKind>,
    /// What interrupted it.
    pub reason: String,
    /// Who ran the interrupted runbook.
    pub by: Actor,
}

/// The last decision taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    /// Unix ms.
    pub at_ms: u64,
    /// Step asking.
    pub step: StepKind,
    /// Why it asked.
    pub prompt: PromptKind,
    /// The answer.
    pub decision: Decision,
    /// Who answered.
    pub by: Actor,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    /// Run id.
    pub run_id: String,
    /// Cluster.
    pub cluster: String,
    /// Executor kind.
    pub executor: String,
    /// Target version.
    pub target_version: String,
    /// Previous version.
    pub previous_version: Option<String>,
    /// Who started it.
    pub started_by: Actor,
    /// Unix ms when it started.
    pub started_at_ms: u64,
    /// The last resume: who and when.
    pub resumed: Option<(Actor, u64)>,
    /// The upgrade steps, then the rollback steps once it started.
    pub steps: Vec<StepView>,
    /// The step running now (started, not ended), if any.
    pub running: Option<StepKind>,
    /// Interrupted and not resumed since.
    pub interrupted: Option<InterruptionView>,
    /// Paused after this step and not resumed since.
    pub paused_after: Option<StepKind>,
    /// Why the rollback started, if it did.
    pub rollback: Option<String>,
    /// The backup, once recorded.
    pub backup: Option<BackupRecord>,
    /// The last decision.
    pub last_decision: Option<DecisionView>,
    /// How it ended.
    pub finished: Option<RunEnd>,
    /// Who ended it and when.
    pub finished_by: Option<(Actor, u64)>,
    /// Unix ms of the last entry.
    pub last_at_ms: u64,
    /// Number of entries of this run.
    pub entries: usize,
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
            .previous_version
            .as_deref()
            .unwrap_or("the previous version");
        match self.status() {
            RunStatus::Completed => format!(
                "nothing: every node runs {} and traffic is restored",
                self.target_version
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
    let start = entries
        .iter()
        .rposition(|e| matches!(e.event, Event::RunStarted { .. }))?;
    let first = &entries[start];
    let Event::RunStarted {
        cluster,
        target_version,
        previous_version,
        executor,
        by,
    } = &first.event
    else {
        return None;
    };
    let blank = |kind| StepView {
        kind,
        description: String::new(),
        attempts: 0,
        started_at_ms: None,
        ended_at_ms: None,
        result: None,
        output: Vec::new(),
    };
    let mut view = RunView {
        run_id: first.run_id.clone(),
        cluster: cluster.clone(),
        executor: executor.clone(),
        target_version: target_version.clone(),
        previous_version: previous_version.clone(),
        started_by: by.clone(),
        started_at_ms: first.at_ms,
        resumed: None,
        steps: StepKind::UPGRADE.iter().map(|k| blank(*k)).collect(),
        running: None,
        interrupted: None,
        paused_after: None,
        rollback: None,
        backup: None,
        last_decision: None,
        finished: None,
        finished_by: None,
        last_at_ms: first.at_ms,
        entries: 1,
    };
    let run_id = first.run_id.clone();
    for e in entries[start + 1..].iter().filter(|e| e.run_id == run_id) {
        view.last_at_ms = view.last_at_ms.max(e.at_ms);
        view.entries += 1;
        apply(&mut view, e, &blank);
    }
    Some(view)
}

fn step_of(view: &mut RunView, kind: StepKind, blank: &dyn Fn(StepKind) -> StepView) -> usize {
    match view.steps.iter().position(|s| s.kind == kind) {
        Some(i) => i,
        None => {
            view.steps.push(blank(kind));
            view.steps.len() - 1
        }
    }
}

fn apply(view: &mut RunView, e: &Entry, blank: &dyn Fn(StepKind) -> StepView) {
    match &e.event {
        Event::StepStarted {
            step,
            attempt,
            description,
        } => {
            let i = step_of(view, *step, blank);
            let s = &mut view.steps[i];
            s.description = description.clone();
            s.attempts = *attempt;
            s.started_at_ms = Some(e.at_ms);
            s.ended_at_ms = None;
            s.result = None;
            view.running = Some(*step);
        }
        Event::Output { step, line } => {
            let i = step_of(view, *step, blank);
            view.steps[i].output.push(line.clone());
        }
        Event::StepFinished { step, result } => {
            let i = step_of(view, *step, blank);
            view.steps[i].ended_at_ms = Some(e.at_ms);
            view.steps[i].result = Some(result.clone());
            if view.running == Some(*step) {
                view.running = None;
            }
        }
        Event::RollbackStarted { reason } => {
            view.rollback = Some(reason.clone());
            for k in StepKind::ROLLBACK {
                step_of(view, k, blank);
            }
        }
        Event::RunResumed { by } => {
            view.resumed = Some((by.clone(), e.at_ms));
            view.interrupted = None;
            view.paused_after = None;
            view.running = None;
        }
        Event::RunInterrupted { step, reason, by } => {
            view.interrupted = Some(InterruptionView {
                at_ms: e.at_ms,
                step: *step,
                reason: reason.clone(),
                by: by.clone(),
            });
            view.running = None;
        }
        Event::RunPaused { after } => {
            view.paused_after = Some(*after);
            view.running = None;
        }
        Event::Decision {
            step,
            prompt,
            decision,
            by,
        } => {
            view.last_decision = Some(DecisionView {
                at_ms: e.at_ms,
                step: *step,
                prompt: *prompt,
                decision: *decision,
                by: by.clone(),
            });
        }
        Event::Backup { record } => view.backup = Some(record.clone()),
        Event::RunFinished { outcome, by } => {
            view.finished = Some(*outcome);
            view.finished_by = Some((by.clone(), e.at_ms));
            view.running = None;
        }
        Event::RunStarted { .. } => {}
    }
}
