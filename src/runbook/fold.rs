//! What the journal says about one run: the fold of its events that resume,
//! the audit and the console's run view read.

use super::backup::BackupRecord;
use super::cluster::Actor;
use super::journal::{Entry, Event, RunEnd, StepResult};
use super::plan::StepKind;
use std::collections::BTreeMap;

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
}

impl RunState {
    /// The state of the last run in `entries`, if any.
    pub fn last(entries: &[Entry]) -> Option<RunState> {
        let start = entries
            .iter()
            .rposition(|e| matches!(e.event, Event::RunStarted { .. }))?;
        Self::from_run(&entries[start..])
    }

    /// The state of the run starting at `entries[0]` (entries of other runs
    /// are ignored).
    pub fn from_run(entries: &[Entry]) -> Option<RunState> {
        let first = entries.first()?;
        let Event::RunStarted {
            cluster,
            target_version,
            previous_version,
            by,
            ..
        } = &first.event
        else {
            return None;
        };
        let mut st = RunState {
            run_id: first.run_id.clone(),
            cluster: cluster.clone(),
            target_version: target_version.clone(),
            previous_version: previous_version.clone(),
            started_by: by.clone(),
            started_at_ms: first.at_ms,
            results: BTreeMap::new(),
            attempts: BTreeMap::new(),
            backup: None,
            rollback: None,
            finished: None,
        };
        for e in entries.iter().skip(1).filter(|e| e.run_id == st.run_id) {
            match &e.event {
                Event::StepStarted { step, attempt, .. } => {
                    st.attempts.insert(*step, *attempt);
                }
                Event::StepFinished { step, result } => {
                    st.results.insert(*step, result.clone());
                }
                Event::Backup { record } => st.backup = Some(record.clone()),
                Event::RollbackStarted { reason } => st.rollback = Some(reason.clone()),
                Event::RunFinished { outcome, .. } => st.finished = Some(*outcome),
                _ => {}
            }
        }
        Some(st)
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
