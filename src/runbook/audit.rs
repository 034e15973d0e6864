//! The audit: who ran which upgrade, when, every decision (confirm, skip,
//! retry, abort, rollback) and how it ended, read back from the journals
//! in the state directory (`clusterops audit`).

use super::backup::BackupRecord;
use super::backups::{ActionKind, BackupAction};
use super::cluster::Actor;
use super::journal::{self, Entry, Event, JournalError, RunEnd, StepResult};
use super::operator::{Decision, PromptKind};
use super::plan::StepKind;
use crate::clock::datetime;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditDecision {
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

/// How one step ended (each attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditStep {
    /// Unix ms.
    pub at_ms: u64,
    /// Step.
    pub step: StepKind,
    /// Result.
    pub result: StepResult,
}

/// One interruption of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditInterruption {
    /// Unix ms.
    pub at_ms: u64,
    /// The step running or about to run.
    pub step: Option<StepKind>,
    /// What interrupted it (`SIGINT`, …).
    pub reason: String,
    /// Who ran the interrupted runbook.
    pub by: Actor,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRun {
    /// The journal it was read from.
    pub journal: PathBuf,
    /// Cluster.
    pub cluster: String,
    /// Run id.
    pub run_id: String,
    /// Target version.
    pub target_version: String,
    /// Previous version.
    pub previous_version: Option<String>,
    /// Who started it.
    pub started_by: Actor,
    /// When.
    pub started_at_ms: u64,
    /// Resumes: who and when.
    pub resumed: Vec<(Actor, u64)>,
    /// Interruptions (Ctrl-C, a signal, the console): who, when, why, at
    /// which step.
    pub interrupted: Vec<AuditInterruption>,
    /// Step results in order.
    pub steps: Vec<AuditStep>,
    /// Decisions in order.
    pub decisions: Vec<AuditDecision>,
    /// The backup.
    pub backup: Option<BackupRecord>,
    /// Why the rollback started.
    pub rollback: Option<String>,
    /// How it ended (`None`: unfinished).
    pub outcome: Option<RunEnd>,
    /// Who ended it and when.
    pub finished: Option<(Actor, u64)>,
}

/// Every run found, oldest first, and notes about the files read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Runs.
    pub runs: Vec<AuditRun>,
    /// Deletions and restores of backups outside runs (`clusterops
    /// backup`), oldest first.
    pub backup_actions: Vec<BackupAction>,
    /// E.g. a truncated last line that was left out.
    pub notes: Vec<String>,
}

impl Audit {
    /// Only `cluster`'s runs and actions, only run `run` (and the actions on
    /// its backup), only the `last` most recent runs (and actions).
    pub fn filter(mut self, cluster: Option<&str>, run: Option<&str>, last: Option<usize>) -> Self {
        if let Some(c) = cluster {
            self.runs.retain(|r| r.cluster == c);
            self.backup_actions.retain(|a| a.cluster == c);
        }
        if let Some(id) = run {
            self.runs.retain(|r| r.run_id == id);
            self.backup_actions
                .retain(|a| a.run_id.as_deref() == Some(id));
        }
        if let Some(n) = last {
            let drop_runs = self.runs.len().saturating_sub(n);
            self.runs.drain(..drop_runs);
            let drop_actions = self.backup_actions.len().saturating_sub(n);
            self.backup_actions.drain(..drop_actions);
        }
        self
    }
}

/// Read every `<state dir>/<cluster>/journal.jsonl`. A truncated last line
/// is left out with a note; a garbage line is an error naming file and line.
pub fn read(state_dir: &Path) -> Result<Audit, JournalError> {
    let mut audit = Audit::default();
    let dirs = match std::fs::read_dir(state_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(audit),
        Err(source) => {
            return Err(JournalError::Io {
                path: state_dir.to_path_buf(),
                action: "list the state directory",
                source,
            });
        }
    };
    let mut cluster_dirs: Vec<PathBuf> = dirs.filter_map(Result::ok).map(|d| d.path()).collect();
    cluster_dirs.sort();
    for dir in &cluster_dirs {
        let (actions, notes) = super::backups::read_actions(&dir.join("backups.jsonl"));
        audit.backup_actions.extend(actions);
        audit.notes.extend(notes);
    }
    audit.backup_actions.sort_by_key(|a| a.at_ms);
    let paths = cluster_dirs
        .iter()
        .map(|d| d.join("journal.jsonl"))
        .filter(|p| p.is_file());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| JournalError::Io {
            path: path.clone(),
            action: "read it",
            source,
        })?;
        let (entries, truncated) = journal::parse(&path, &text, true)?;
        if let Some(line) = truncated {
            audit.notes.push(format!(
                "{} line {line} is truncated (the runbook stopped while writing it) and was left out",
                path.display()
            ));
        }
        audit.runs.extend(runs(&path, &entries));
    }
    audit.runs.sort_by_key(|r| r.started_at_ms);
    Ok(audit)
}

/// Group one journal's entries into runs.
pub fn runs(path: &Path, entries: &[Entry]) -> Vec<AuditRun> {
    let mut out: Vec<AuditRun> = Vec::new();
    for e in entries {
        if let Event::RunStarted {
            cluster,
            target_version,
            previous_version,
            by,
            ..
        } = &e.event
        {
            out.push(AuditRun {
                journal: path.to_path_buf(),
                cluster: cluster.clone(),
                run_id: e.run_id.clone(),
                target_version: target_version.clone(),
                previous_version: previous_version.clone(),
                started_by: by.clone(),
                started_at_ms: e.at_ms,
                resumed: Vec::new(),
                interrupted: Vec::new(),
                steps: Vec::new(),
                decisions: Vec::new(),
                backup: None,
                rollback: None,
                outcome: None,
                finished: None,
            });
            continue;
        }
        let Some(run) = out.iter_mut().rev().find(|r| r.run_id == e.run_id) else {
            continue;
        };
        match &e.event {
            Event::RunResumed { by } => run.resumed.push((by.clone(), e.at_ms)),
            Event::RunInterrupted { step, reason, by } => run.interrupted.push(AuditInterruption {
                at_ms: e.at_ms,
                step: *step,
                reason: reason.clone(),
                by: by.clone(),
            }),
            Event::StepFinished { step, result } => run.steps.push(AuditStep {
                at_ms: e.at_ms,
                step: *step,
                result: result.clone(),
            }),
            Event::Decision {
                step,
                prompt,
                decision,
                by,
            } => run.decisions.push(AuditDecision {
                at_ms: e.at_ms,
                step: *step,
                prompt: *prompt,
                decision: *decision,
                by: by.clone(),
            }),
            Event::Backup { record } => run.backup = Some(record.clone()),
            Event::RollbackStarted { reason } => run.rollback = Some(reason.clone()),
            Event::RunFinished { outcome, by } => {
                run.outcome = Some(*outcome);
                run.finished = Some((by.clone(), e.at_ms));
            }
            _ => {}
        }
    }
    out
}

/// The audit as text, one block per run.
pub fn format(audit: &Audit) -> String {
    let mut s = String::new();
    if audit.runs.is_empty() && audit.backup_actions.is_empty() {
        s.push_str("No runbook runs recorded.\n");
    }
    for r in &audit.runs {
        let outcome = match r.outcome {
            Some(RunEnd::Completed) => "completed",
            Some(RunEnd::RolledBack) => "rolled back",
            Some(RunEnd::Aborted) => "aborted",
            None => "UNFINISHED",
        };
        let _ = writeln!(
            s,
            "run {} on cluster {}: {} -> {}: {outcome}",
            r.run_id,
            r.cluster,
            r.previous_version.as_deref().unwrap_or("?"),
            r.target_version
        );
        let _ = writeln!(
            s,
            "  started  {} by {}",
            datetime(r.started_at_ms),
            r.started_by
        );
        for (by, at) in &r.resumed {
            let _ = writeln!(s, "  resumed  {} by {by}", datetime(*at));
        }
        for i in &r.interrupted {
            let _ = writeln!(
                s,
                "  interrupted {} ({}) by {}{}",
                datetime(i.at_ms),
                i.reason,
                i.by,
                i.step
                    .map(|st| format!(" during {}", st.title()))
                    .unwrap_or_default()
            );
        }
        for st in &r.steps {
            let result = match &st.result {
                StepResult::Succeeded => "succeeded".to_string(),
                StepResult::Skipped => "SKIPPED".to_string(),
                StepResult::Failed { error } => format!("FAILED: {error}"),
            };
            let _ = writeln!(
                s,
                "  {}  {:<40} {result}",
                datetime(st.at_ms),
                st.step.title()
            );
        }
        for d in &r.decisions {
            let _ = writeln!(
                s,
                "  decision {} by {}: {} at {} ({:?})",
                datetime(d.at_ms),
                d.by,
                d.decision.as_str(),
                d.step.title(),
                d.prompt
            );
        }
        if let Some(b) = &r.backup {
            let _ = writeln!(
                s,
                "  backup   {} ({} bytes, sha256 {})",
                b.file.display(),
                b.bytes,
                b.sha256
            );
        }
        if let Some(reason) = &r.rollback {
            let _ = writeln!(s, "  rollback {reason}");
        }
        if let Some((by, at)) = &r.finished {
            let _ = writeln!(s, "  ended    {} by {by}: {outcome}", datetime(*at));
        }
        s.push('\n');
    }
    for a in &audit.backup_actions {
        let what = match a.action {
            ActionKind::Deleted => "deleted",
            ActionKind::Restored => "RESTORED",
        };
        let _ = writeln!(
            s,
            "backup {what} {} by {} on cluster {}: {} ({} bytes{}) {}",
            datetime(a.at_ms),
            a.by,
            a.cluster,
            a.file.display(),
            a.bytes,
            a.run_id
                .as_deref()
                .map(|r| format!(", made by run {r}"))
                .unwrap_or_default(),
            a.detail
        );
    }
    for n in &audit.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
