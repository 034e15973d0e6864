//! The guided upgrade runbook: a plan of steps (preflight, drain, stop,
//! backup, upgrade one node, verify, roll out, restore traffic, and the
//! rollback), run by an engine that journals every event, resumes after a
//! crash, and asks an [`Operator`] whenever a human must decide. The
//! cluster itself is reached through [`ClusterOps`]; nodes are stopped and
//! started by an [`Executor`]. No terminal needed: the CLI, the console and
//! the tests each bring their own operator.
//!
//! ```no_run
//! # use clusterops::runbook::*;
//! # use std::sync::Arc;
//! # async fn demo(ops: Arc<dyn ClusterOps>) -> Result<(), RunbookError> {
//! let config = RunbookConfig::load("runbook.toml".as_ref())?;
//! let state_dir = default_state_dir().unwrap_or_else(|| ".clusterops".into());
//! println!("{}", Runbook::plan(&config, &state_dir, "3")?);
//! let operator = Arc::new(AutoOperator::new(config.rollback.automatic, true));
//! let runbook = Runbook::new(config, ops, operator, state_dir).await?;
//! match runbook.run("3").await? {
//!     RunOutcome::Completed { .. } => println!("upgraded"),
//!     other => println!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

pub mod audit;
pub mod backup;
mod backup_db;
pub mod backup_store;
pub mod backups;
pub mod cluster;
pub mod config;
mod config_executor;
pub mod config_ranges;
mod engine;
pub mod executor;
pub mod fold;
pub mod interrupt;
pub mod journal;
mod journal_read;
mod journal_writer;
pub mod live;
pub mod operator;
pub mod plan;
pub mod probe;
mod steps;
pub mod terminal;
pub mod view;

pub use cluster::{
    Actor, ClusterError, ClusterOps, HeldLease, LockAcquireError, LockRequest, RunbookLockGuard,
};
pub use config::RunbookConfig;
pub use executor::{ExecError, Executor, NodeSlot, StepIo};
pub use interrupt::Interrupt;
pub use journal::{JournalError, RunEnd, RunState};
pub use operator::{AutoOperator, Decision, Operator, Progress, Prompt, PromptKind};
pub use plan::{Plan, StepKind};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `$XDG_STATE_HOME/clusterops`, else `~/.local/state/clusterops`
/// (`--state-dir` overrides it).
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("clusterops"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/clusterops"))
}

/// A runbook could not start, resume or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The journal cannot be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Another runbook holds the lock (or it could not be taken).
    #[error(transparent)]
    Lock(#[from] LockAcquireError),
    /// The runbook lock was lost mid-run.
    #[error(
        "the runbook lock was lost before step {step} (it expired or was taken over); the run \
         stopped; check who holds it, then `clusterops upgrade --resume`"
    )]
    LockLost {
        /// The step that was about to run.
        step: StepKind,
    },
    /// The executor could not be set up.
    #[error(transparent)]
    Executor(#[from] ExecError),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A version that is not accepted.
    #[error("version {0:?} is not accepted: expected {safe}", safe = config::SAFE_VALUE)]
    InvalidVersion(String),
    /// `run` while the journal's last run is unfinished.
    #[error(
        "run {run_id} (upgrade to {target}) in {path} is unfinished; continue it with \
         `clusterops upgrade --resume`, or end it with `clusterops upgrade --abort`"
    )]
    Unfinished {
        /// The unfinished run.
        run_id: String,
        /// Its target.
        target: String,
        /// The journal.
        path: PathBuf,
    },
    /// `resume`/`abort` without an unfinished run.
    #[error("no unfinished run in {path}; start one with `clusterops upgrade --to <version>`")]
    NothingToResume {
        /// The journal.
        path: PathBuf,
    },
}

/// How a call to [`Runbook::run`] or [`Runbook::resume`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Upgraded.
    Completed {
        /// Run id.
        run_id: String,
    },
    /// Rolled back to the previous version and the backup.
    RolledBack {
        /// Run id.
        run_id: String,
    },
    /// Stopped by the operator.
    Aborted {
        /// Run id.
        run_id: String,
        /// The step where it stopped.
        at: Option<StepKind>,
    },
    /// Interrupted (a signal, the console) at a safe point; the lock is
    /// released and resume continues.
    Interrupted {
        /// Run id.
        run_id: String,
        /// The step that was running or about to run.
        at: Option<StepKind>,
        /// What interrupted it.
        reason: String,
    },
    /// Stopped after a step on request (`until`); resume continues.
    Paused {
        /// Run id.
        run_id: String,
        /// Last step done.
        after: StepKind,
    },
}

/// A runbook for one cluster: configuration, the cluster, the operator, the
/// executor and the state directory.
pub struct Runbook {
    pub(crate) config: RunbookConfig,
    pub(crate) cluster: Arc<dyn ClusterOps>,
    pub(crate) operator: Arc<dyn Operator>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) state_dir: PathBuf,
    pub(crate) actor: Actor,
    pub(crate) interrupt: Interrupt,
    /// The in-process store backed up when `backup.kind = "memory"`.
    pub(crate) store_backup: Option<Arc<dyn backup_store::StoreBackup>>,
}

impl Runbook {
    /// A runbook with the executor the configuration asks for.
    pub async fn new(
        config: RunbookConfig,
        cluster: Arc<dyn ClusterOps>,
        operator: Arc<dyn Operator>,
        state_dir: PathBuf,
    ) -> Result<Self, RunbookError> {
        let executor = executor::from_config(&config, &state_dir).await?;
        Ok(Self::with_executor(
            config, cluster, operator, executor, state_dir,
        ))
    }

    /// A runbook with a given executor.
    pub fn with_executor(
        config: RunbookConfig,
        cluster: Arc<dyn ClusterOps>,
        operator: Arc<dyn Operator>,
        executor: Arc<dyn Executor>,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            config,
            cluster,
            operator,
            executor,
            state_dir,
            actor: Actor::current(),
            interrupt: Interrupt::new(),
            store_backup: None,
        }
    }

    /// Back up (and restore on rollback) this in-process store: the
    /// configuration's `backup.kind` must be `memory` (set in code; the
    /// demo's nodes share one such store).
    pub fn with_store_backup(mut self, store: Arc<dyn backup_store::StoreBackup>) -> Self {
        self.store_backup = Some(store);
        self
    }

    /// Stop at the next safe point when `interrupt` is triggered (see
    /// [`interrupt`]): the run ends as [`RunOutcome::Interrupted`].
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// The interrupt this runbook obeys.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Record decisions as someone else (a console's user, a test).
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// The plan of an upgrade to `target`, from the configuration alone
    /// (nothing is contacted). Print it with `{}`.
    pub fn plan(
        config: &RunbookConfig,
        state_dir: &Path,
        target: &str,
    ) -> Result<Plan, RunbookError> {
        check_version(target)?;
        let describer = executor::Describer::new(config, state_dir);
        Ok(steps::plan(
            config,
            target,
            &describer.slots(),
            &|s| describer.stop(s),
            &|slot, v| describer.start(slot, v),
        ))
    }

    /// The plan with this runbook's executor's wording.
    pub fn plan_for(&self, target: &str) -> Result<Plan, RunbookError> {
        Self::plan_with(&self.config, self.executor.as_ref(), target)
    }

    /// The plan of an upgrade to `target` with `executor`'s wording
    /// (nothing is contacted).
    pub fn plan_with(
        config: &RunbookConfig,
        executor: &dyn Executor,
        target: &str,
    ) -> Result<Plan, RunbookError> {
        check_version(target)?;
        let mut plan = steps::plan(
            config,
            target,
            &executor.slots(),
            &|_| executor.describe_stop(),
            &|slot, v| executor.describe_start(slot, v),
        );
        plan.executor = executor.kind().to_string();
        Ok(plan)
    }

    /// The journal file of this runbook's cluster.
    pub fn journal_path(&self) -> PathBuf {
        journal::journal_path(&self.state_dir, &self.config.cluster.name)
    }

    /// Upgrade to `target`: take the lock, journal, run every step.
    pub async fn run(&self, target: &str) -> Result<RunOutcome, RunbookError> {
        self.run_until(target, None).await
    }

    /// Like [`Runbook::run`], but pause after `until` (e.g. stop after the
    /// backup, continue later with [`Runbook::resume`]).
    pub async fn run_until(
        &self,
        target: &str,
        until: Option<StepKind>,
    ) -> Result<RunOutcome, RunbookError> {
        check_version(target)?;
        engine::Engine::start(self, target, until).await
    }

    /// Continue the journal's unfinished run from its first step not done
    /// (a step that was running when the runbook died runs again).
    pub async fn resume(&self) -> Result<RunOutcome, RunbookError> {
        self.resume_until(None).await
    }

    /// [`Runbook::resume`], pausing after `until`.
    pub async fn resume_until(&self, until: Option<StepKind>) -> Result<RunOutcome, RunbookError> {
        engine::Engine::resume(self, until, false).await
    }

    /// Roll back the journal's unfinished run (the operator's decision
    /// outside a prompt): stop, restore the backup, start the previous
    /// version, clear maintenance.
    pub async fn rollback(&self) -> Result<RunOutcome, RunbookError> {
        engine::Engine::resume(self, None, true).await
    }

    /// End the journal's unfinished run as aborted, changing nothing in the
    /// cluster (maintenance stays as it is). A truncated last line is
    /// dropped first. Takes the runbook lock while writing.
    pub async fn abort(&self, reason: &str) -> Result<RunOutcome, RunbookError> {
        engine::Engine::abort(self, reason).await
    }

    /// Drop a truncated last journal line (`--repair-journal`). Returns the
    /// line dropped, if any.
    pub fn repair_journal(&self) -> Result<Option<usize>, RunbookError> {
        let path = self.journal_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(journal::repair(&path)?)
    }
}

/// Check a version given by the operator.
pub fn check_version(v: &str) -> Result<(), RunbookError> {
    if config::is_safe_value(v) {
        Ok(())
    } else {
        Err(RunbookError::InvalidVersion(v.to_string()))
    }
}
