//! The one reducer of the journal: a fold from journal entries to a
//! [`RunSummary`] per run. Resume's [`RunState`], the audit
//! ([`super::audit::AuditRun`]) and the console's run view
//! ([`super::view::RunView`]) are derived from it. An event this version
//! does not know is counted and named in the summary (and so in the audit
//! and the view), never skipped silently.

use super::backup::BackupRecord;
use super::cluster::Actor;
use super::journal::{Entry, Event, RunEnd, StepLine, StepResult, StepStart};
use super::operator::{Decision, PromptKind};
use super::plan::StepKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Who started a run, on which cluster and executor, from which version to
/// which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunHead {
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
}

/// One step of a run: its last attempt, and its output over all attempts.
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

impl StepView {
    fn blank(kind: StepKind) -> Self {
        StepView {
            kind,
            description: String::new(),
            attempts: 0,
            started_at_ms: None,
            ended_at_ms: None,
            result: None,
            output: Vec::new(),
        }
    }
}

/// How one attempt of a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepEnded {
    /// Unix ms.
    pub at_ms: u64,
    /// Step.
    pub step: StepKind,
    /// Result.
    pub result: StepResult,
}

/// One interruption of a run (Ctrl-C, a signal, the console).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interruption {
    /// Unix ms.
    pub at_ms: u64,
    /// The step that was running or about to run.
    pub step: Option<StepKind>,
    /// What interrupted it (`SIGINT`, …).
    pub reason: String,
    /// Who ran the interrupted runbook.
    pub by: Actor,
}

/// One answer of the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionTaken {
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

/// One run as its journal tells it: the fold of its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Who started it, where, from which version to which.
    pub head: RunHead,
    /// Every resume: who and when.
    pub resumed: Vec<(Actor, u64)>,
    /// Every interruption, in order.
    pub interruptions: Vec<Interruption>,
    /// The last interruption, while not resumed since.
    pub interrupted: Option<Interruption>,
    /// Paused after this step and not resumed since.
    pub paused_after: Option<StepKind>,
    /// The upgrade steps, then the rollback steps once it started.
    pub steps: Vec<StepView>,
    /// Every end of a step, in order.
    pub step_results: Vec<StepEnded>,
    /// Every decision, in order.
    pub decisions: Vec<DecisionTaken>,
    /// The backup, once recorded.
    pub backup: Option<BackupRecord>,
    /// Why the rollback started, if it did.
    pub rollback: Option<String>,
    /// How it ended, if it did.
    pub outcome: Option<RunEnd>,
    /// Who ended it and when.
    pub finished: Option<(Actor, u64)>,
    /// The step running now (started, not ended), if any.
    pub running: Option<StepKind>,
    /// Unix ms of the last entry.
    pub last_at_ms: u64,
    /// Number of entries of this run.
    pub entries: usize,
    /// Events this version does not know (written by a newer one): how
    /// many of each, by name.
    pub unknown_events: BTreeMap<String, u32>,
}

impl RunSummary {
    /// Every run in `entries`, in the order they started. An entry belongs
    /// to the latest run started before it with its run id; entries of no
    /// started run are left out.
    pub fn fold_all(entries: &[Entry]) -> Vec<RunSummary> {
        let mut out: Vec<RunSummary> = Vec::new();
        for e in entries {
            if let Some(run) = Self::start(e) {
                out.push(run);
            } else if let Some(run) = out.iter_mut().rev().find(|r| r.head.run_id == e.run_id) {
                run.apply(e);
            }
        }
        out
    }

    /// The last run in `entries`, if any.
    pub fn last(entries: &[Entry]) -> Option<RunSummary> {
        let start = entries
            .iter()
            .rposition(|e| matches!(e.event, Event::RunStarted { .. }))?;
        Self::first(&entries[start..])
    }

    /// The run starting at `entries[0]` (`None` when it is not a start).
    pub fn first(entries: &[Entry]) -> Option<RunSummary> {
        let mut run = Self::start(entries.first()?)?;
        let run_id = run.head.run_id.clone();
        for e in entries[1..].iter().filter(|e| e.run_id == run_id) {
            run.apply(e);
        }
        Some(run)
    }

    /// `N event(s) this version does not know: name (count), …`, when
    /// there were any.
    pub fn unknown_line(&self) -> Option<String> {
        unknown_line(&self.unknown_events)
    }

    fn start(e: &Entry) -> Option<RunSummary> {
        let Event::RunStarted {
            cluster,
            target_version,
            previous_version,
            executor,
            by,
        } = &e.event
        else {
            return None;
        };
        Some(RunSummary {
            head: RunHead {
                run_id: e.run_id.clone(),
                cluster: cluster.clone(),
                executor: executor.clone(),
                target_version: target_version.clone(),
                previous_version: previous_version.clone(),
                started_by: by.clone(),
                started_at_ms: e.at_ms,
            },
            resumed: Vec::new(),
            interruptions: Vec::new(),
            interrupted: None,
            paused_after: None,
            steps: StepKind::UPGRADE
                .iter()
                .map(|k| StepView::blank(*k))
                .collect(),
            step_results: Vec::new(),
            decisions: Vec::new(),
            backup: None,
            rollback: None,
            outcome: None,
            finished: None,
            running: None,
            last_at_ms: e.at_ms,
            entries: 1,
            unknown_events: BTreeMap::new(),
        })
    }

    fn step(&mut self, kind: StepKind) -> &mut StepView {
        let i = match self.steps.iter().position(|s| s.kind == kind) {
            Some(i) => i,
            None => {
                self.steps.push(StepView::blank(kind));
                self.steps.len() - 1
            }
        };
        &mut self.steps[i]
    }

    /// Fold one more entry of this run in.
    fn apply(&mut self, e: &Entry) {
        self.last_at_ms = self.last_at_ms.max(e.at_ms);
        self.entries += 1;
        match &e.event {
            // A start begins another run (`fold_all`); it changes nothing here.
            Event::RunStarted { .. } => {}
            Event::RunResumed { by } => {
                self.resumed.push((by.clone(), e.at_ms));
                self.interrupted = None;
                self.paused_after = None;
                self.running = None;
            }
            Event::StepStarted(StepStart {
                step,
                attempt,
                description,
            }) => {
                let s = self.step(*step);
                s.description = description.clone();
                s.attempts = *attempt;
                s.started_at_ms = Some(e.at_ms);
                s.ended_at_ms = None;
                s.result = None;
                self.running = Some(*step);
            }
            Event::Output(StepLine { step, line }) => self.step(*step).output.push(line.clone()),
            Event::StepFinished { step, result } => {
                let s = self.step(*step);
                s.ended_at_ms = Some(e.at_ms);
                s.result = Some(result.clone());
                self.step_results.push(StepEnded {
                    at_ms: e.at_ms,
                    step: *step,
                    result: result.clone(),
                });
                if self.running == Some(*step) {
                    self.running = None;
                }
            }
            Event::Decision {
                step,
                prompt,
                decision,
                by,
            } => self.decisions.push(DecisionTaken {
                at_ms: e.at_ms,
                step: *step,
                prompt: *prompt,
                decision: *decision,
                by: by.clone(),
            }),
            Event::Backup { record } => self.backup = Some(record.clone()),
            Event::RollbackStarted { reason } => {
                self.rollback = Some(reason.clone());
                for k in StepKind::ROLLBACK {
                    self.step(k);
                }
            }
            Event::RunInterrupted { step, reason, by } => {
                let i = Interruption {
                    at_ms: e.at_ms,
                    step: *step,
                    reason: reason.clone(),
                    by: by.clone(),
                };
                self.interruptions.push(i.clone());
                self.interrupted = Some(i);
                self.running = None;
            }
            Event::RunPaused { after } => {
                self.paused_after = Some(*after);
                self.running = None;
            }
            Event::RunFinished { outcome, by } => {
                self.outcome = Some(*outcome);
                self.finished = Some((by.clone(), e.at_ms));
                self.running = None;
            }
            Event::Unknown(u) => *self.unknown_events.entry(u.event.clone()).or_default() += 1,
        }
    }
}

/// `N event(s) this version does not know: name (count), …`, when `counts`
/// is not empty.
pub fn unknown_line(counts: &BTreeMap<String, u32>) -> Option<String> {
    if counts.is_empty() {
        return None;
    }
    let total: u32 = counts.values().sum();
    let names: Vec<String> = counts.iter().map(|(n, c)| format!("{n} ({c})")).collect();
    Some(format!(
        "{total} event(s) this version does not know: {}",
        names.join(", ")
    ))
}

/// What the journal says about one run: enough to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// Run id.
    pub run_id: String,
    /// Cluster.
    pub cluster: String,
    /// Target version.
    pub target_version: String,
    /// Previous version.
    pub previous_version: Option<String>,
    /// Who started it.
    pub started_by: Actor,
    /// When.
    pub started_at_ms: u64,
    /// The latest result of every step that ended.
    pub results: BTreeMap<StepKind, StepResult>,
    /// Attempts per step.
    pub attempts: BTreeMap<StepKind, u32>,
    /// The backup, once recorded.
    pub backup: Option<BackupRecord>,
    /// Why the rollback started, if it did.
    pub rollback: Option<String>,
    /// How it ended, if it did.
    pub finished: Option<RunEnd>,
    /// Events this version does not know, by name (see [`RunSummary`]).
    pub unknown_events: BTreeMap<String, u32>,
}

impl From<RunSummary> for RunState {
    fn from(s: RunSummary) -> Self {
        RunState {
            attempts: s
                .steps
                .iter()
                .filter(|st| st.started_at_ms.is_some())
                .map(|st| (st.kind, st.attempts))
                .collect(),
            results: s
                .step_results
                .into_iter()
                .map(|end| (end.step, end.result))
                .collect(),
            run_id: s.head.run_id,
            cluster: s.head.cluster,
            target_version: s.head.target_version,
            previous_version: s.head.previous_version,
            started_by: s.head.started_by,
            started_at_ms: s.head.started_at_ms,
            backup: s.backup,
            rollback: s.rollback,
            finished: s.outcome,
            unknown_events: s.unknown_events,
        }
    }
}

impl RunState {
    /// The state of the last run in `entries`, if any.
    pub fn last(entries: &[Entry]) -> Option<RunState> {
        RunSummary::last(entries).map(RunState::from)
    }

    /// The state of the run starting at `entries[0]` (entries of other runs
    /// are ignored).
    pub fn from_run(entries: &[Entry]) -> Option<RunState> {
        RunSummary::first(entries).map(RunState::from)
    }

    /// Whether a step is done (succeeded or skipped).
    pub fn is_done(&self, step: StepKind) -> bool {
        matches!(
            self.results.get(&step),
            Some(StepResult::Succeeded | StepResult::Skipped)
        )
    }

    /// The step a resume starts with: the first upgrade (or, once the
    /// rollback started, rollback) step not done. `None` when all are done
    /// or the run has ended.
    pub fn next_step(&self) -> Option<StepKind> {
        if self.finished.is_some() {
            return None;
        }
        let steps: &[StepKind] = if self.rollback.is_some() {
            &StepKind::ROLLBACK
        } else {
            &StepKind::UPGRADE
        };
        steps.iter().copied().find(|s| !self.is_done(*s))
    }
}
