//! What each step does (and says it will do). Every step is safe to run
//! again after a crash: draining a drained cluster, stopping stopped nodes,
//! starting a node already on the version, re-checking a recorded backup.

mod database;
mod nodes;
mod traffic;
mod wording;

pub(crate) use wording::plan;

use super::engine::{Engine, EngineIo, Flow};
use super::plan::StepKind;

/// A step's result: what next, or the error shown to the operator.
pub(crate) type StepResult = Result<Flow, String>;

pub(crate) fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Engine<'_> {
    pub(crate) async fn execute(&self, step: StepKind, io: &EngineIo<'_, '_>) -> StepResult {
        match step {
            StepKind::Preflight => self.preflight(io).await,
            StepKind::Drain => self.drain(io).await,
            StepKind::StopNodes | StepKind::RollbackStop => self.stop_nodes(io).await,
            StepKind::Backup => self.backup_db(io).await,
            StepKind::UpgradeFirst => self.upgrade_first(io).await,
            StepKind::Verify => self.verify(io).await,
            StepKind::Rollout => self.rollout(io).await,
            StepKind::RestoreTraffic => {
                let target = self.target.clone();
                self.restore_traffic(&target, io).await
            }
            StepKind::RollbackRestore => self.restore_db(io).await,
            StepKind::RollbackStart => self.start_previous(io).await,
            StepKind::RollbackRestoreTraffic => {
                let previous = self.previous.clone().unwrap_or_default();
                self.restore_traffic(&previous, io).await
            }
        }
    }

    pub(crate) fn timeouts(&self) -> &super::config::Timeouts {
        &self.rb.config.timeouts
    }
}
