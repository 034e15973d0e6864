//! The console's side of a runbook it drives (`--runbook`): attaching the
//! driver, the runbook's actions (a version to type, confirmation dialogs,
//! the engine's questions and progress, the run's end) applied to the
//! [`App`].

use crate::clock::now_ms;
use crate::console::action::Action;
use crate::console::app::{App, Mode};
use crate::console::changes::Level;
use crate::console::runbook_driver::{RunDriver, RunbookOp};
use crate::console::views::ViewId;
use crate::runbook::Progress;
use std::sync::Arc;

impl App {
    /// Drive upgrades from the Runbook view with `driver` (its questions
    /// and outcomes come back through the outbox). Ignored in read-only mode.
    pub fn set_runbook_driver(&mut self, driver: Arc<RunDriver>) {
        if self.options.read_only {
            return;
        }
        driver.attach(self.outbox.clone());
        self.runbook = Some(driver);
    }

    /// Carry out a confirmed runbook operation.
    pub(crate) fn run_runbook_op(&mut self, op: RunbookOp) {
        let Some(driver) = self.runbook.clone().filter(|_| !self.options.read_only) else {
            return;
        };
        tracing::info!(operation = ?op, "runbook operation confirmed");
        let (level, text) = match driver.execute(op) {
            Ok(s) => (Level::Info, format!("runbook: {s}")),
            Err(s) => (Level::Failed, format!("runbook: {s}")),
        };
        self.status = Some(text.clone());
        self.log(now_ms(), level, text);
    }

    /// Answer the runbook's question with `decision`.
    pub(crate) fn answer_runbook(&mut self, decision: crate::runbook::Decision) -> bool {
        let Some(driver) = self.runbook.clone() else {
            return false;
        };
        let ok = driver.answer(decision);
        if ok {
            tracing::info!(decision = decision.as_str(), "runbook question answered");
            self.status = Some(format!("runbook: answered {}", decision.as_str()));
        }
        ok
    }

    /// Apply one of the runbook's actions.
    pub(crate) fn on_runbook_action(&mut self, action: Action) -> Option<Action> {
        match action {
            Action::PromptRunbookVersion if self.runbook_enabled() => {
                let prefill = self
                    .runbook
                    .as_ref()
                    .map(|d| d.suggested_version(self.snapshot.as_ref()))
                    .unwrap_or_default();
                self.mode = Mode::Version(prefill);
            }
            Action::AskRunbook(op) => {
                if let Some(d) = self.runbook.clone().filter(|_| !self.options.read_only) {
                    let lines = d.describe(&op);
                    self.mode = Mode::RunbookConfirm(op, lines);
                }
            }
            Action::RunbookAsk(prompt) if self.runbook.is_some() => {
                self.view = ViewId::Runbook;
                self.mode = Mode::RunbookPrompt(prompt);
            }
            Action::RunbookAskWithdrawn => {
                if matches!(self.mode, Mode::RunbookPrompt(_)) {
                    self.mode = Mode::Normal;
                }
            }
            Action::RunbookProgress(p) => self.on_runbook_progress(p),
            Action::RunbookFinished { outcome, at_ms } => {
                let (level, text) = match outcome {
                    Ok(s) => (Level::Done, s),
                    Err(s) => (Level::Failed, format!("runbook failed: {s}")),
                };
                tracing::info!(outcome = %text, "runbook run ended");
                if matches!(self.mode, Mode::RunbookPrompt(_)) {
                    self.mode = Mode::Normal;
                }
                self.status = Some(text.clone());
                self.log(at_ms, level, text);
                return Some(Action::RefreshNow);
            }
            _ => {}
        }
        None
    }

    fn on_runbook_progress(&mut self, p: Progress) {
        match p {
            Progress::StepStarted { step, attempt, .. } => {
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.status = Some(format!("runbook: {}{again}…", step.title()));
            }
            Progress::StepFinished { step, result } => {
                let text = format!("runbook: {}: {result}", step.title());
                let level = if result.starts_with("failed") {
                    Level::Failed
                } else {
                    Level::Info
                };
                self.log(now_ms(), level, text);
            }
            Progress::Bytes { written, .. } => {
                self.status = Some(format!(
                    "runbook: backup {} written",
                    crate::console::format::bytes(written)
                ));
            }
            Progress::Note { text } => {
                self.status = Some(format!("runbook: {text}"));
                self.log(now_ms(), Level::Info, format!("runbook: {text}"));
            }
            Progress::Output { .. } => {}
        }
    }
}
