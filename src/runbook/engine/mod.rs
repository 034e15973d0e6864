//! The engine: takes the runbook lock, journals every event (mirrored to the
//! cluster in order, in the background), runs the steps in order, asks the
//! operator what to do on a failure (retry, skip, abort, roll back), and
//! resumes a run from its journal.

use super::backup::BackupRecord;
use super::cluster::{Actor, LockRequest, RunbookLockGuard};
use super::executor::StepIo;
use super::journal::{self, Event, Journal, RunEnd, RunState, StepLine, StepResult, StepStart};
use super::operator::{Decision, Progress, Prompt, PromptKind};
use super::plan::{Plan, StepKind};
use super::{RunOutcome, Runbook, RunbookError};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod entry;
mod last_words;

/// What a step asks the engine to do next, besides "done".
pub(crate) enum Flow {
    /// The step is done.
    Done,
    /// The operator chose to roll back (at a prompt inside the step).
    Rollback(String),
    /// The operator chose to abort (at a prompt inside the step).
    Abort(String),
}

/// One run in progress.
pub(crate) struct Engine<'r> {
    pub(crate) rb: &'r Runbook,
    pub(crate) journal: Arc<Journal>,
    pub(crate) run_id: String,
    pub(crate) target: String,
    pub(crate) previous: Option<String>,
    pub(crate) plan: Plan,
    pub(crate) backup: Mutex<Option<BackupRecord>>,
    results: Mutex<std::collections::BTreeMap<StepKind, StepResult>>,
    attempts: Mutex<std::collections::BTreeMap<StepKind, u32>>,
    journal_error: Mutex<Option<String>>,
    mirror: Mutex<Option<mpsc::UnboundedSender<String>>>,
    mirror_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn RunbookLockGuard>>>,
    /// Whether the interruption is journaled (by the engine, or by the
    /// last words of a second signal).
    interruption_said: Arc<Mutex<bool>>,
    /// The step running, for the last words.
    current_step: Arc<Mutex<Option<StepKind>>>,
}

impl<'r> Engine<'r> {
    fn new(
        rb: &'r Runbook,
        journal: Journal,
        run_id: String,
        target: String,
        previous: Option<String>,
    ) -> Self {
        let plan = rb.plan_for(&target).unwrap_or_else(|_| Plan {
            cluster: rb.config.cluster.name.clone(),
            target_version: target.clone(),
            executor: rb.executor.kind().to_string(),
            steps: Vec::new(),
            rollback: Vec::new(),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let cluster = rb.cluster.clone();
        let operator = rb.operator.clone();
        let task = tokio::spawn(async move {
            let mut failures = 0u64;
            while let Some(line) = rx.recv().await {
                if let Err(e) = cluster.mirror_journal(&line).await {
                    failures += 1;
                    if failures == 1 {
                        operator.progress(&Progress::Note {
                            text: format!(
                                "the journal mirror to the cluster failed: {e}; the local journal is complete \
                                 (further mirror failures are not shown)"
                            ),
                        });
                    }
                }
            }
        });
        Self {
            rb,
            journal: Arc::new(journal),
            run_id,
            target,
            previous,
            plan,
            backup: Mutex::new(None),
            results: Mutex::new(Default::default()),
            attempts: Mutex::new(Default::default()),
            journal_error: Mutex::new(None),
            mirror: Mutex::new(Some(tx)),
            mirror_task: Mutex::new(Some(task)),
            lock: Mutex::new(None),
            interruption_said: Arc::new(Mutex::new(false)),
            current_step: Arc::new(Mutex::new(None)),
        }
    }

    fn adopt(&self, state: &RunState) {
        *self.backup.lock() = state.backup.clone();
        *self.results.lock() = state.results.clone();
        *self.attempts.lock() = state.attempts.clone();
    }

    /// Append an event to the journal (fsynced unless an output line) and
    /// queue it for the mirror.
    pub(crate) fn record(&self, event: Event) {
        match self.journal.append(&self.run_id, event) {
            Ok((_, line)) => {
                if let Some(tx) = self.mirror.lock().as_ref() {
                    let _ = tx.send(line);
                }
            }
            Err(e) => {
                let mut slot = self.journal_error.lock();
                if slot.is_none() {
                    *slot = Some(e.to_string());
                }
            }
        }
    }

    fn journal_failed(&self) -> Result<(), RunbookError> {
        match self.journal_error.lock().take() {
            Some(msg) => Err(RunbookError::Journal(journal::JournalError::Io {
                path: self.journal.path().to_path_buf(),
                action: "append to it",
                source: std::io::Error::other(msg),
            })),
            None => Ok(()),
        }
    }

    pub(crate) fn note(&self, text: String) {
        self.rb.operator.progress(&Progress::Note { text });
    }

    /// Ask the operator and journal the answer.
    pub(crate) async fn ask(
        &self,
        step: StepKind,
        kind: PromptKind,
        message: String,
        choices: Vec<Decision>,
    ) -> Decision {
        let prompt = Prompt {
            kind,
            step,
            message,
            choices: choices.clone(),
        };
        let mut decision = self.rb.operator.confirm(&prompt).await;
        if !choices.contains(&decision) {
            decision = *choices.last().unwrap_or(&Decision::Abort);
        }
        self.record(Event::Decision {
            step,
            prompt: kind,
            decision,
            by: self.rb.actor.clone(),
        });
        decision
    }

    async fn take_lock(&self) -> Result<(), RunbookError> {
        let request = LockRequest {
            run_id: self.run_id.clone(),
            actor: self.rb.actor.clone(),
            target_version: self.target.clone(),
        };
        let guard = self.rb.cluster.acquire_runbook_lock(&request).await?;
        *self.lock.lock() = Some(guard);
        Ok(())
    }

    /// Release the lock and flush the mirror.
    async fn close(&self) {
        let guard = self.lock.lock().take();
        if let Some(g) = guard
            && let Err(e) = g.release().await
        {
            self.note(format!(
                "releasing the runbook lock failed (it expires by itself): {e}"
            ));
        }
        self.mirror.lock().take();
        let task = self.mirror_task.lock().take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.disarm_last_words();
    }

    fn is_done(&self, step: StepKind) -> bool {
        matches!(
            self.results.lock().get(&step),
            Some(StepResult::Succeeded | StepResult::Skipped)
        )
    }

    fn finish(&self, step: StepKind, result: StepResult) {
        self.results.lock().insert(step, result.clone());
        self.record(Event::StepFinished {
            step,
            result: result.clone(),
        });
        self.rb
            .operator
            .progress(&Progress::StepFinished { step, result });
    }

    fn end(&self, outcome: RunEnd) -> RunOutcome {
        self.record(Event::RunFinished {
            outcome,
            by: self.rb.actor.clone(),
        });
        let run_id = self.run_id.clone();
        match outcome {
            RunEnd::Completed => RunOutcome::Completed { run_id },
            RunEnd::RolledBack => RunOutcome::RolledBack { run_id },
            RunEnd::Aborted => RunOutcome::Aborted { run_id, at: None },
        }
    }

    fn aborted(&self, at: StepKind) -> RunOutcome {
        self.end(RunEnd::Aborted);
        RunOutcome::Aborted {
            run_id: self.run_id.clone(),
            at: Some(at),
        }
    }

    /// Journal the interruption; the caller releases the lock.
    fn interrupted(&self, at: Option<StepKind>) -> Result<RunOutcome, RunbookError> {
        let reason = self
            .rb
            .interrupt
            .reason()
            .unwrap_or_else(|| "interrupted".to_string());
        let mut said = self.interruption_said.lock();
        if !*said {
            self.record(Event::RunInterrupted {
                step: at,
                reason: reason.clone(),
                by: self.rb.actor.clone(),
            });
            *said = true;
        }
        drop(said);
        self.note(format!(
            "interrupted ({reason}){}; the run stopped at a safe point and can be resumed",
            at.map(|s| format!(" during {}", s.title()))
                .unwrap_or_default()
        ));
        self.journal_failed()?;
        Ok(RunOutcome::Interrupted {
            run_id: self.run_id.clone(),
            at,
            reason,
        })
    }

    async fn rollback(
        &self,
        until: Option<StepKind>,
        reason: String,
    ) -> Result<RunOutcome, RunbookError> {
        self.note(format!("rolling back: {reason}"));
        self.record(Event::RollbackStarted { reason });
        self.journal_failed()?;
        self.drive_rollback(until).await
    }

    async fn drive_rollback(&self, until: Option<StepKind>) -> Result<RunOutcome, RunbookError> {
        self.drive(&StepKind::ROLLBACK, until).await
    }

    /// Run `steps` in order from the first not done.
    fn drive<'a>(
        &'a self,
        steps: &'a [StepKind],
        until: Option<StepKind>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<RunOutcome, RunbookError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let rolling_back = steps.first().is_some_and(|s| s.is_rollback());
            for &step in steps {
                if self.is_done(step) {
                    continue;
                }
                loop {
                    if self.rb.interrupt.is_triggered() {
                        return self.interrupted(Some(step));
                    }
                    if !self.lock.lock().as_ref().is_some_and(|g| g.is_held()) {
                        return Err(RunbookError::LockLost { step });
                    }
                    let attempt = {
                        let mut a = self.attempts.lock();
                        let n = a.entry(step).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let description = self.plan.describe(step).to_string();
                    *self.current_step.lock() = Some(step);
                    let start = StepStart {
                        step,
                        attempt,
                        description,
                    };
                    self.record(Event::StepStarted(start.clone()));
                    self.rb.operator.progress(&Progress::StepStarted(start));
                    self.journal_failed()?;
                    let io = EngineIo { engine: self, step };
                    // The safe point: the step stops at its next await (a
                    // journal append is never split); it runs again on resume.
                    let result = tokio::select! {
                        r = self.execute(step, &io) => Some(r),
                        _ = self.rb.interrupt.triggered() => None,
                    };
                    let Some(result) = result else {
                        return self.interrupted(Some(step));
                    };
                    self.journal_failed()?;
                    match result {
                        Ok(Flow::Done) => {
                            self.finish(step, StepResult::Succeeded);
                            break;
                        }
                        Ok(Flow::Abort(reason)) => {
                            self.finish(step, StepResult::Failed { error: reason });
                            return Ok(self.aborted(step));
                        }
                        Ok(Flow::Rollback(reason)) => {
                            self.finish(
                                step,
                                StepResult::Failed {
                                    error: reason.clone(),
                                },
                            );
                            return self.rollback(until, reason).await;
                        }
                        Err(error) => {
                            self.finish(
                                step,
                                StepResult::Failed {
                                    error: error.clone(),
                                },
                            );
                            let mut choices = vec![Decision::Retry, Decision::Skip];
                            if !rolling_back && step.offers_rollback() {
                                choices.push(Decision::Rollback);
                            }
                            choices.push(Decision::Abort);
                            let message = format!(
                                "{} failed: {error}\nRetry the step, skip it (recorded), {}or abort?",
                                step.title(),
                                if choices.contains(&Decision::Rollback) {
                                    "roll back, "
                                } else {
                                    ""
                                }
                            );
                            if self.rb.interrupt.is_triggered() {
                                // It failed because of the interruption
                                // (e.g. Ctrl-C reached its child): ask nothing.
                                return self.interrupted(Some(step));
                            }
                            let asked = tokio::select! {
                                d = self.ask(step, PromptKind::Failure, message, choices) => Some(d),
                                _ = self.rb.interrupt.triggered() => None,
                            };
                            let Some(decision) = asked else {
                                return self.interrupted(Some(step));
                            };
                            match decision {
                                Decision::Retry => continue,
                                Decision::Skip => {
                                    self.finish(step, StepResult::Skipped);
                                    break;
                                }
                                Decision::Rollback => {
                                    return self
                                        .rollback(
                                            until,
                                            format!("{} failed: {error}", step.title()),
                                        )
                                        .await;
                                }
                                Decision::Abort | Decision::Confirm => {
                                    return Ok(self.aborted(step));
                                }
                            }
                        }
                    }
                }
                if until == Some(step) {
                    self.record(Event::RunPaused { after: step });
                    self.journal_failed()?;
                    return Ok(RunOutcome::Paused {
                        run_id: self.run_id.clone(),
                        after: step,
                    });
                }
            }
            let outcome = if rolling_back {
                RunEnd::RolledBack
            } else {
                RunEnd::Completed
            };
            let out = self.end(outcome);
            self.journal_failed()?;
            Ok(out)
        })
    }

    /// Who the maintenance flag names.
    pub(crate) fn by(&self) -> String {
        format!("{} (runbook {})", self.rb.actor, self.run_id)
    }

    pub(crate) fn actor(&self) -> &Actor {
        &self.rb.actor
    }
}

/// The [`StepIo`] a step gets: output lines are journaled and shown,
/// questions go to the operator and their answers are journaled.
pub(crate) struct EngineIo<'e, 'r> {
    pub(crate) engine: &'e Engine<'r>,
    pub(crate) step: StepKind,
}

#[async_trait::async_trait]
impl StepIo for EngineIo<'_, '_> {
    fn step(&self) -> StepKind {
        self.step
    }

    fn line(&self, line: &str) {
        let line = StepLine {
            step: self.step,
            line: journal::clip(line),
        };
        self.engine.record(Event::Output(line.clone()));
        self.engine.rb.operator.progress(&Progress::Output(line));
    }

    fn bytes(&self, written: u64) {
        self.engine.rb.operator.progress(&Progress::Bytes {
            step: self.step,
            written,
        });
    }

    async fn ask(&self, kind: PromptKind, message: String, choices: Vec<Decision>) -> Decision {
        self.engine.ask(self.step, kind, message, choices).await
    }
}
