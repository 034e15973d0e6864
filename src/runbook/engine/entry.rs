//! Where runs begin: a new run, a resume (or an operator's rollback) of the
//! journal's unfinished run, and an abort.

use super::Engine;
use crate::runbook::config_ranges;
use crate::runbook::journal::{self, Event, Journal, RunEnd, RunState};
use crate::runbook::operator::Progress;
use crate::runbook::plan::StepKind;
use crate::runbook::{RunOutcome, Runbook, RunbookError};

fn new_run_id() -> String {
    let stamp: String = crate::clock::datetime(crate::clock::now_ms())
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    format!(
        "{}-{}-{:04x}",
        &stamp[..8],
        &stamp[8..],
        rand::random::<u16>()
    )
}

impl<'r> Engine<'r> {
    fn open_journal(rb: &Runbook) -> Result<(Journal, Vec<journal::Entry>), RunbookError> {
        Ok(Journal::open(&rb.journal_path())?)
    }

    /// A new run.
    pub(crate) async fn start(
        rb: &'r Runbook,
        target: &str,
        until: Option<StepKind>,
    ) -> Result<RunOutcome, RunbookError> {
        // A configuration built in code skips `RunbookConfig::load`'s
        // checks: a timeout the clock cannot hold stops here, before the lock.
        config_ranges::check(&rb.config)?;
        let (journal, entries) = Self::open_journal(rb)?;
        if let Some(st) = RunState::last(&entries)
            && st.finished.is_none()
        {
            return Err(RunbookError::Unfinished {
                run_id: st.run_id,
                target: st.target_version,
                path: journal.path().to_path_buf(),
            });
        }
        let previous = previous_version(rb).await;
        let engine = Engine::new(rb, journal, new_run_id(), target.to_string(), previous);
        if let Err(e) = engine.take_lock().await {
            engine.close().await;
            return Err(e);
        }
        engine.record(Event::RunStarted {
            cluster: rb.config.cluster.name.clone(),
            target_version: engine.target.clone(),
            previous_version: engine.previous.clone(),
            executor: rb.executor.kind().to_string(),
            by: rb.actor.clone(),
        });
        engine.note(format!(
            "run {} of cluster {}: upgrade {} -> {} (journal {})",
            engine.run_id,
            rb.config.cluster.name,
            engine.previous.as_deref().unwrap_or("unknown version"),
            engine.target,
            engine.journal.path().display()
        ));
        engine.arm_last_words();
        let outcome = engine.drive(&StepKind::UPGRADE, until).await;
        engine.close().await;
        outcome
    }

    /// Continue (or roll back) the journal's unfinished run.
    pub(crate) async fn resume(
        rb: &'r Runbook,
        until: Option<StepKind>,
        rollback: bool,
    ) -> Result<RunOutcome, RunbookError> {
        config_ranges::check(&rb.config)?;
        let (journal, entries) = Self::open_journal(rb)?;
        let Some(state) = RunState::last(&entries).filter(|s| s.finished.is_none()) else {
            return Err(RunbookError::NothingToResume {
                path: journal.path().to_path_buf(),
            });
        };
        let engine = Engine::new(
            rb,
            journal,
            state.run_id.clone(),
            state.target_version.clone(),
            state.previous_version.clone(),
        );
        engine.adopt(&state);
        if let Err(e) = engine.take_lock().await {
            engine.close().await;
            return Err(e);
        }
        engine.record(Event::RunResumed {
            by: rb.actor.clone(),
        });
        engine.arm_last_words();
        if !rollback || state.rollback.is_some() {
            engine.say_repeated(&state);
        }
        let outcome = if state.rollback.is_some() {
            engine.note(format!("resuming the rollback of run {}", engine.run_id));
            engine.drive_rollback(until).await
        } else if rollback {
            engine
                .rollback(until, "the operator asked for a rollback".to_string())
                .await
        } else {
            engine.note(format!(
                "resuming run {} (upgrade to {}) at step {}",
                engine.run_id,
                engine.target,
                state.next_step().map(|s| s.title()).unwrap_or("-")
            ));
            engine.drive(&StepKind::UPGRADE, until).await
        };
        engine.close().await;
        outcome
    }

    /// On resume: say (on screen and in the journal) which step that had
    /// started runs again, and why that is safe.
    fn say_repeated(&self, state: &RunState) {
        let Some(step) = state.next_step() else {
            return;
        };
        let Some(&attempt) = state.attempts.get(&step) else {
            return;
        };
        let line = format!(
            "{} did not finish (attempt {attempt}): it runs again from its beginning; a node \
             already up on the version is not started again",
            step.title()
        );
        self.record(Event::Output {
            step,
            line: line.clone(),
        });
        self.note(line);
    }

    /// Mark the unfinished run aborted.
    pub(crate) async fn abort(rb: &'r Runbook, reason: &str) -> Result<RunOutcome, RunbookError> {
        let path = rb.journal_path();
        if path.exists()
            && let Some(line) = journal::repair(&path)?
        {
            rb.operator.progress(&Progress::Note {
                text: format!("dropped the truncated line {line} of {}", path.display()),
            });
        }
        let (journal, entries) = Self::open_journal(rb)?;
        let Some(state) = RunState::last(&entries).filter(|s| s.finished.is_none()) else {
            return Err(RunbookError::NothingToResume { path });
        };
        let engine = Engine::new(
            rb,
            journal,
            state.run_id.clone(),
            state.target_version.clone(),
            None,
        );
        if let Err(e) = engine.take_lock().await {
            engine.close().await;
            return Err(e);
        }
        let at = state.next_step();
        engine.record(Event::Output {
            step: at.unwrap_or(StepKind::RestoreTraffic),
            line: format!("aborted by {}: {reason}", rb.actor),
        });
        engine.record(Event::RunFinished {
            outcome: RunEnd::Aborted,
            by: rb.actor.clone(),
        });
        engine.close().await;
        engine.journal_failed()?;
        Ok(RunOutcome::Aborted {
            run_id: state.run_id,
            at,
        })
    }
}

/// The majority app version of the live nodes, if any.
async fn previous_version(rb: &Runbook) -> Option<String> {
    let nodes = match rb.cluster.node_states().await {
        Ok(n) => n,
        Err(e) => {
            rb.operator.progress(&Progress::Note {
                text: format!("cannot read the registry to learn the current version: {e}"),
            });
            return None;
        }
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for n in &nodes {
        *counts.entry(n.app_version.as_str()).or_default() += 1;
    }
    if counts.len() > 1 {
        rb.operator.progress(&Progress::Note {
            text: format!(
                "the nodes run different versions: {counts:?}; the rollback uses the most common"
            ),
        });
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(v, _)| v.to_string())
}
