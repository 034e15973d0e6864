//! A run as a console shows it: every step with what it does, its result,
//! its output, and when it started and ended -- rebuilt from journal entries
//! (the local file, or the Redis mirror read elsewhere).

use super::journal::{Entry, Event, RunEnd, StepResult};
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

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    /// Run id.
    pub run_id: String,
    /// Target version.
    pub target_version: String,
    /// Previous version.
    pub previous_version: Option<String>,
    /// The upgrade steps, then the rollback steps once it started.
    pub steps: Vec<StepView>,
    /// The step running now (started, not ended), if any.
    pub running: Option<StepKind>,
    /// How it ended.
    pub finished: Option<RunEnd>,
}

/// The last run in `entries`.
pub fn last_run(entries: &[Entry]) -> Option<RunView> {
    let start = entries
        .iter()
        .rposition(|e| matches!(e.event, Event::RunStarted { .. }))?;
    let first = &entries[start];
    let Event::RunStarted {
        target_version,
        previous_version,
        ..
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
        target_version: target_version.clone(),
        previous_version: previous_version.clone(),
        steps: StepKind::UPGRADE.iter().map(|k| blank(*k)).collect(),
        running: None,
        finished: None,
    };
    let run_id = first.run_id.clone();
    for e in entries[start + 1..].iter().filter(|e| e.run_id == run_id) {
        let step_of = |view: &mut RunView, kind: StepKind| -> usize {
            match view.steps.iter().position(|s| s.kind == kind) {
                Some(i) => i,
                None => {
                    view.steps.push(blank(kind));
                    view.steps.len() - 1
                }
            }
        };
        match &e.event {
            Event::StepStarted {
                step,
                attempt,
                description,
            } => {
                let i = step_of(&mut view, *step);
                let s = &mut view.steps[i];
                s.description = description.clone();
                s.attempts = *attempt;
                s.started_at_ms = Some(e.at_ms);
                s.ended_at_ms = None;
                s.result = None;
                view.running = Some(*step);
            }
            Event::Output { step, line } => {
                let i = step_of(&mut view, *step);
                view.steps[i].output.push(line.clone());
            }
            Event::StepFinished { step, result } => {
                let i = step_of(&mut view, *step);
                view.steps[i].ended_at_ms = Some(e.at_ms);
                view.steps[i].result = Some(result.clone());
                if view.running == Some(*step) {
                    view.running = None;
                }
            }
            Event::RollbackStarted { .. } => {
                for k in StepKind::ROLLBACK {
                    step_of(&mut view, k);
                }
            }
            Event::RunFinished { outcome, .. } => {
                view.finished = Some(*outcome);
                view.running = None;
            }
            _ => {}
        }
    }
    Some(view)
}
