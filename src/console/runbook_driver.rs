//! Driving an upgrade from the console (`clusterops console --runbook
//! runbook.toml`): [`RunDriver`] runs the runbook engine on a background
//! task (start, resume, roll back, abort, interrupt) and
//! [`ConsoleOperator`] turns each of the engine's questions into a dialog
//! and sends the operator's answer back. The engine journals every decision
//! with the console user as its author (the runbook's audit); each action
//! and answer is also appended to the console's audit file.

use crate::clock::now_ms;
use crate::console::action::Action;
use crate::operate::{AuditRecord, append_json_line};
use crate::runbook::backup_store::StoreBackup;
use crate::runbook::{
    Actor, ClusterOps, Decision, Executor, Interrupt, Operator, Progress, Prompt, RunOutcome,
    Runbook, RunbookConfig, RunbookError,
};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the operator asks the runbook to do from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookOp {
    /// Upgrade every node to this version.
    Start {
        /// Target version.
        target: String,
    },
    /// Continue the unfinished run.
    Resume,
    /// Roll the unfinished run back.
    Rollback,
    /// End the unfinished run as aborted, changing nothing.
    Abort,
    /// Stop the run in progress at its next safe point.
    Interrupt,
}

impl RunbookOp {
    /// The dialog's title.
    pub fn title(&self) -> &'static str {
        match self {
            RunbookOp::Start { .. } => "Start the upgrade",
            RunbookOp::Resume => "Continue the run",
            RunbookOp::Rollback => "Roll the run back",
            RunbookOp::Abort => "Abort the run",
            RunbookOp::Interrupt => "Interrupt the run",
        }
    }

    /// The name in the console's audit file.
    pub fn audit_name(&self) -> &'static str {
        match self {
            RunbookOp::Start { .. } => "runbook-start",
            RunbookOp::Resume => "runbook-resume",
            RunbookOp::Rollback => "runbook-rollback",
            RunbookOp::Abort => "runbook-abort",
            RunbookOp::Interrupt => "runbook-interrupt",
        }
    }
}

/// What the engine task does.
enum Job {
    Start(String),
    Resume,
    Rollback,
    Abort,
}

struct Pending {
    prompt: Prompt,
    reply: oneshot::Sender<Decision>,
}

#[derive(Default)]
struct Inner {
    outbox: Option<mpsc::UnboundedSender<Action>>,
    pending: Option<Pending>,
    task: Option<JoinHandle<()>>,
    interrupt: Option<Interrupt>,
}

impl Inner {
    fn send(&self, action: Action) {
        if let Some(tx) = &self.outbox {
            let _ = tx.send(action);
        }
    }

    fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

/// Runs the runbook for the console, one run at a time.
pub struct RunDriver {
    config: RunbookConfig,
    cluster: Arc<dyn ClusterOps>,
    executor: Option<Arc<dyn Executor>>,
    store_backup: Option<Arc<dyn StoreBackup>>,
    suggest_next: bool,
    state_dir: PathBuf,
    actor: Actor,
    audit_path: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
}

impl RunDriver {
    /// A driver for the cluster of `config`, reached through `cluster`, with
    /// the journal under `state_dir`; the executor is the configuration's.
    pub fn new(config: RunbookConfig, cluster: Arc<dyn ClusterOps>, state_dir: PathBuf) -> Self {
        Self {
            config,
            cluster,
            executor: None,
            store_backup: None,
            suggest_next: false,
            state_dir,
            actor: Actor::current(),
            audit_path: None,
            inner: Arc::default(),
        }
    }

    /// Use this executor instead of the configuration's (tests).
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Back up this in-process store (`backup.kind = "memory"`, the demo).
    pub fn with_store_backup(mut self, store: Arc<dyn StoreBackup>) -> Self {
        self.store_backup = Some(store);
        self
    }

    /// Prefill the version prompt with the next version after the one the
    /// nodes run (the demo).
    pub fn with_suggested_version(mut self) -> Self {
        self.suggest_next = true;
        self
    }

    /// What the version prompt starts with: the next minor version after
    /// the one most nodes of `snap` run, when asked for
    /// ([`Self::with_suggested_version`]); else empty.
    pub fn suggested_version(&self, snap: Option<&crate::inspect::Snapshot>) -> String {
        if !self.suggest_next {
            return String::new();
        }
        let Some(nodes) = snap.and_then(|s| s.nodes.ok()) else {
            return String::new();
        };
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in nodes {
            *counts.entry(n.app_version.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, c)| *c)
            .and_then(|(v, _)| crate::node::version::AppVersion::parse(v).ok())
            .map(|v| v.next())
            .unwrap_or_default()
    }

    /// Record decisions as this person (default: this process's user@host).
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Also append every action and answer to this console audit file.
    pub fn with_audit(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_path = Some(path.into());
        self
    }

    /// Where the driver sends questions, progress and outcomes (the app's
    /// outbox).
    pub fn attach(&self, outbox: mpsc::UnboundedSender<Action>) {
        self.inner.lock().outbox = Some(outbox);
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.inner.lock().running()
    }

    /// The question waiting for an answer, if any.
    pub fn pending_prompt(&self) -> Option<Prompt> {
        self.inner.lock().pending.as_ref().map(|p| p.prompt.clone())
    }

    /// Who decides.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// What `op` will do, one line each, for the confirmation dialog.
    pub fn describe(&self, op: &RunbookOp) -> Vec<String> {
        match op {
            RunbookOp::Start { target } => {
                let plan = match &self.executor {
                    Some(ex) => Runbook::plan_with(&self.config, ex.as_ref(), target),
                    None => Runbook::plan(&self.config, &self.state_dir, target),
                };
                match plan {
                    Ok(plan) => {
                        let mut lines = vec![
                            format!(
                                "Upgrade cluster {} to version {target} ({} executor)",
                                self.config.cluster.name, plan.executor
                            ),
                            format!("as {}; each question opens a dialog here:", self.actor),
                        ];
                        for (i, s) in plan.steps.iter().enumerate() {
                            lines.push(format!("{}. {}", i + 1, s.kind.title()));
                        }
                        lines.push(
                            "The cluster is in maintenance (503) until the last step.".to_string(),
                        );
                        lines
                    }
                    Err(e) => vec![format!("cannot plan it: {e}")],
                }
            }
            RunbookOp::Resume => vec![
                "Continue the unfinished run from its first step not done (a step that was \
                 running when it stopped runs again)."
                    .to_string(),
            ],
            RunbookOp::Rollback => vec![
                "Roll the unfinished run back: stop every node, restore its backup, start the \
                 previous version, clear maintenance."
                    .to_string(),
            ],
            RunbookOp::Abort => vec![
                "End the unfinished run as aborted. Nothing in the cluster changes: \
                 maintenance stays as it is."
                    .to_string(),
            ],
            RunbookOp::Interrupt => vec![
                "Stop the run at its next safe point: the step in progress stops (it runs \
                 again on resume), the interruption is journaled, the runbook lock is released."
                    .to_string(),
            ],
        }
    }

    /// Carry out a confirmed `op`: starts the engine on its own task (its
    /// questions come back as [`Action::RunbookAsk`], its end as
    /// [`Action::RunbookFinished`]). Returns the one-line outcome of asking.
    pub fn execute(&self, op: RunbookOp) -> Result<String, String> {
        let result = self.execute_inner(&op);
        self.audit(
            op.audit_name(),
            match &op {
                RunbookOp::Start { target } => format!("upgrade to {target}"),
                _ => self.config.cluster.name.clone(),
            },
            &result,
        );
        result
    }

    fn execute_inner(&self, op: &RunbookOp) -> Result<String, String> {
        let mut inner = self.inner.lock();
        let job = match op {
            RunbookOp::Start { target } => Job::Start(target.clone()),
            RunbookOp::Resume => Job::Resume,
            RunbookOp::Rollback => Job::Rollback,
            RunbookOp::Abort => Job::Abort,
            RunbookOp::Interrupt => {
                return match (&inner.interrupt, inner.running()) {
                    (Some(i), true) => {
                        i.trigger(&format!("interrupted from the console by {}", self.actor));
                        Ok("interrupting at the next safe point".to_string())
                    }
                    _ => Err("no run in progress from this console".to_string()),
                };
            }
        };
        if inner.running() {
            return Err(
                "a run is already in progress from this console (I interrupts it)".to_string(),
            );
        }
        if let RunbookOp::Start { target } = op {
            crate::runbook::check_version(target).map_err(|e| e.to_string())?;
        }
        let interrupt = Interrupt::new();
        let operator: Arc<dyn Operator> = Arc::new(ConsoleOperator {
            inner: self.inner.clone(),
        });
        let (config, cluster, executor, store_backup) = (
            self.config.clone(),
            self.cluster.clone(),
            self.executor.clone(),
            self.store_backup.clone(),
        );
        let (state_dir, actor) = (self.state_dir.clone(), self.actor.clone());
        let shared = self.inner.clone();
        let audit = self.audit_path.clone();
        let stop = interrupt.clone();
        let task = tokio::spawn(async move {
            let runbook = match executor {
                Some(ex) => Ok(Runbook::with_executor(
                    config, cluster, operator, ex, state_dir,
                )),
                None => Runbook::new(config, cluster, operator, state_dir).await,
            };
            let outcome = match runbook {
                Ok(rb) => {
                    let mut rb = rb.with_actor(actor.clone()).with_interrupt(stop);
                    if let Some(store) = store_backup {
                        rb = rb.with_store_backup(store);
                    }
                    match job {
                        Job::Start(target) => rb.run(&target).await,
                        Job::Resume => rb.resume().await,
                        Job::Rollback => rb.rollback().await,
                        Job::Abort => {
                            rb.abort(&format!("aborted from the console by {actor}"))
                                .await
                        }
                    }
                }
                Err(e) => Err(e),
            };
            let outcome = outcome_line(&outcome);
            if let Some(path) = audit {
                write_audit(&path, &actor, "runbook-finished", "run", &outcome);
            }
            shared.lock().send(Action::RunbookFinished {
                outcome,
                at_ms: now_ms(),
            });
        });
        inner.task = Some(task);
        inner.interrupt = Some(interrupt);
        Ok(match op {
            RunbookOp::Start { target } => format!("upgrade to {target} started"),
            RunbookOp::Resume => "resuming the run".to_string(),
            RunbookOp::Rollback => "rolling the run back".to_string(),
            RunbookOp::Abort => "aborting the run".to_string(),
            RunbookOp::Interrupt => String::new(),
        })
    }

    /// Answer the question waiting; `false` when none waits or `decision`
    /// is not one of its choices.
    pub fn answer(&self, decision: Decision) -> bool {
        let pending = {
            let mut inner = self.inner.lock();
            match &inner.pending {
                Some(p) if p.prompt.choices.contains(&decision) => inner.pending.take(),
                _ => None,
            }
        };
        let Some(p) = pending else {
            return false;
        };
        let target = format!("{} ({:?})", p.prompt.step.title(), p.prompt.kind);
        self.audit(
            "runbook-decision",
            target,
            &Ok(decision.as_str().to_string()),
        );
        p.reply.send(decision).is_ok()
    }

    /// Before the console exits: interrupt a run in progress and wait (at
    /// most `within`) for it to journal that and release the lock. Returns
    /// whether a run was stopped in time (`None`: none was running).
    pub async fn shutdown(&self, within: Duration) -> Option<bool> {
        let (task, interrupt) = {
            let mut inner = self.inner.lock();
            (inner.task.take(), inner.interrupt.clone())
        };
        let task = task.filter(|t| !t.is_finished())?;
        if let Some(i) = interrupt {
            i.trigger(&format!("the console of {} quit", self.actor));
        }
        if tokio::time::timeout(within, task).await.is_err() {
            tracing::warn!("the runbook did not stop in time; its lock expires after its TTL");
            return Some(false);
        }
        Some(true)
    }

    fn audit(&self, action: &str, target: String, result: &Result<String, String>) {
        if let Some(path) = &self.audit_path {
            write_audit(path, &self.actor, action, &target, result);
        }
    }
}

fn write_audit(
    path: &std::path::Path,
    actor: &Actor,
    action: &str,
    target: &str,
    r: &Result<String, String>,
) {
    let (outcome, detail) = match r {
        Ok(s) => ("ok", s.clone()),
        Err(s) => ("refused", s.clone()),
    };
    let record = AuditRecord {
        who: actor.to_string(),
        at_ms: now_ms(),
        action: action.to_string(),
        target: target.to_string(),
        outcome: outcome.to_string(),
        detail,
    };
    if let Err(e) = append_json_line(path, &record) {
        tracing::warn!(path = %path.display(), error = %e, "cannot append to the console audit file");
    }
}

/// One line for the status bar and the Events view.
pub fn outcome_line(outcome: &Result<RunOutcome, RunbookError>) -> Result<String, String> {
    match outcome {
        Ok(RunOutcome::Completed { run_id }) => Ok(format!("run {run_id}: upgrade completed")),
        Ok(RunOutcome::RolledBack { run_id }) => Ok(format!(
            "run {run_id}: rolled back to the previous version and the backup"
        )),
        Ok(RunOutcome::Aborted { run_id, at }) => Ok(format!(
            "run {run_id}: aborted{}",
            at.map(|s| format!(" at {}", s.title())).unwrap_or_default()
        )),
        Ok(RunOutcome::Paused { run_id, after }) => {
            Ok(format!("run {run_id}: paused after {}", after.title()))
        }
        Ok(RunOutcome::Interrupted { run_id, at, reason }) => Ok(format!(
            "run {run_id}: interrupted ({reason}){}; C continues it, B rolls it back, A aborts it",
            at.map(|s| format!(" during {}", s.title()))
                .unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The console's [`Operator`]: each question becomes
/// [`Action::RunbookAsk`] (a dialog) and waits for [`RunDriver::answer`];
/// progress goes to the app as [`Action::RunbookProgress`].
pub struct ConsoleOperator {
    inner: Arc<Mutex<Inner>>,
}

/// Withdraws an unanswered question when the engine stops waiting
/// (the run was interrupted).
struct Withdraw(Arc<Mutex<Inner>>);

impl Drop for Withdraw {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        if inner.pending.take().is_some() {
            inner.send(Action::RunbookAskWithdrawn);
        }
    }
}

#[async_trait::async_trait]
impl Operator for ConsoleOperator {
    async fn confirm(&self, prompt: &Prompt) -> Decision {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.lock();
            if inner.outbox.is_none() {
                return Decision::Abort;
            }
            inner.pending = Some(Pending {
                prompt: prompt.clone(),
                reply: tx,
            });
            inner.send(Action::RunbookAsk(prompt.clone()));
        }
        let _withdraw = Withdraw(self.inner.clone());
        // The console gone (the sender dropped): abort, as at end of input.
        rx.await.unwrap_or(Decision::Abort)
    }

    fn progress(&self, event: &Progress) {
        self.inner
            .lock()
            .send(Action::RunbookProgress(event.clone()));
    }
}
