//! The plan: the ordered upgrade steps and the rollback steps, each with
//! what it will do, built from the runbook configuration before anything
//! runs, so the operator reads it first.

use super::config::RunbookConfig;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of an upgrade or of its rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// 1. The `check` suite.
    Preflight,
    /// 2. Set maintenance, wait until every node reports it.
    Drain,
    /// 3. Stop every node, wait until none is alive and all leases are free.
    StopNodes,
    /// 4. Back up the database.
    Backup,
    /// 5. Start one node alone on the target version; wait until migrated.
    UpgradeFirst,
    /// 6. Health, status, smoke checks, operator's confirmation.
    Verify,
    /// 7. Start the other nodes, one at a time.
    Rollout,
    /// 8. Clear maintenance; check through the load balancer.
    RestoreTraffic,
    /// Rollback 1: stop the new node(s).
    RollbackStop,
    /// Rollback 2: restore the backup.
    RollbackRestore,
    /// Rollback 3: start every node on the previous version.
    RollbackStart,
    /// Rollback 4: clear maintenance.
    RollbackRestoreTraffic,
}

impl StepKind {
    /// The upgrade steps, in order.
    pub const UPGRADE: [StepKind; 8] = [
        StepKind::Preflight,
        StepKind::Drain,
        StepKind::StopNodes,
        StepKind::Backup,
        StepKind::UpgradeFirst,
        StepKind::Verify,
        StepKind::Rollout,
        StepKind::RestoreTraffic,
    ];

    /// The rollback steps, in order.
    pub const ROLLBACK: [StepKind; 4] = [
        StepKind::RollbackStop,
        StepKind::RollbackRestore,
        StepKind::RollbackStart,
        StepKind::RollbackRestoreTraffic,
    ];

    /// The snake_case id used in the journal.
    pub fn id(self) -> &'static str {
        match self {
            StepKind::Preflight => "preflight",
            StepKind::Drain => "drain",
            StepKind::StopNodes => "stop_nodes",
            StepKind::Backup => "backup",
            StepKind::UpgradeFirst => "upgrade_first",
            StepKind::Verify => "verify",
            StepKind::Rollout => "rollout",
            StepKind::RestoreTraffic => "restore_traffic",
            StepKind::RollbackStop => "rollback_stop",
            StepKind::RollbackRestore => "rollback_restore",
            StepKind::RollbackStart => "rollback_start",
            StepKind::RollbackRestoreTraffic => "rollback_restore_traffic",
        }
    }

    /// A short title an operator reads.
    pub fn title(self) -> &'static str {
        match self {
            StepKind::Preflight => "Preflight",
            StepKind::Drain => "Drain",
            StepKind::StopNodes => "Stop every node",
            StepKind::Backup => "Back up the database",
            StepKind::UpgradeFirst => "Upgrade one node",
            StepKind::Verify => "Verify",
            StepKind::Rollout => "Roll out",
            StepKind::RestoreTraffic => "Restore traffic",
            StepKind::RollbackStop => "Rollback: stop the new nodes",
            StepKind::RollbackRestore => "Rollback: restore the backup",
            StepKind::RollbackStart => "Rollback: start the previous version",
            StepKind::RollbackRestoreTraffic => "Rollback: restore traffic",
        }
    }

    /// Whether this is a rollback step.
    pub fn is_rollback(self) -> bool {
        StepKind::ROLLBACK.contains(&self)
    }

    /// Whether a failure here offers a rollback (steps 5 to 8: the new
    /// version has touched the database).
    pub fn offers_rollback(self) -> bool {
        matches!(
            self,
            StepKind::UpgradeFirst
                | StepKind::Verify
                | StepKind::Rollout
                | StepKind::RestoreTraffic
        )
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One step as planned: what it is and what it will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Which step.
    pub kind: StepKind,
    /// What it will do, in a few lines.
    pub description: String,
}

/// The whole plan of one upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Cluster name.
    pub cluster: String,
    /// Version to upgrade to.
    pub target_version: String,
    /// Executor kind (`process`, `command`, `kubernetes`, `manual`).
    pub executor: String,
    /// The upgrade steps.
    pub steps: Vec<PlannedStep>,
    /// The rollback steps (run on a failure at steps 5-8, or on request).
    pub rollback: Vec<PlannedStep>,
}

impl Plan {
    /// The plan of an upgrade of `config`'s cluster to `target`; the
    /// executor descriptions come from `describe` (the executor's wording).
    pub fn build(
        config: &RunbookConfig,
        target: &str,
        describe: &dyn Fn(StepKind) -> String,
    ) -> Plan {
        let step = |kind| PlannedStep {
            kind,
            description: describe(kind),
        };
        Plan {
            cluster: config.cluster.name.clone(),
            target_version: target.to_string(),
            executor: config.executor.kind().to_string(),
            steps: StepKind::UPGRADE.iter().map(|k| step(*k)).collect(),
            rollback: StepKind::ROLLBACK.iter().map(|k| step(*k)).collect(),
        }
    }

    /// The description of one step.
    pub fn describe(&self, kind: StepKind) -> &str {
        self.steps
            .iter()
            .chain(&self.rollback)
            .find(|s| s.kind == kind)
            .map(|s| s.description.as_str())
            .unwrap_or("")
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Upgrade of cluster {} to version {} (executor: {})",
            self.cluster, self.target_version, self.executor
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "\n{}. {}", i + 1, s.kind.title())?;
            for line in s.description.lines() {
                writeln!(f, "   {line}")?;
            }
        }
        writeln!(f, "\nOn a failure at steps 5-8, or when the operator asks:")?;
        for (i, s) in self.rollback.iter().enumerate() {
            writeln!(f, "\nR{}. {}", i + 1, s.kind.title())?;
            for line in s.description.lines() {
                writeln!(f, "   {line}")?;
            }
        }
        Ok(())
    }
}
