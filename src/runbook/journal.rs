//! The journal: every runbook event appended as one JSON line to
//! `<state dir>/<cluster>/journal.jsonl` (by [`Journal`], in
//! journal_writer.rs, which says what is fsynced when), mirrored to the
//! Redis stream `<ns>:runbook:journal`; read back to resume a run and for
//! the audit.

use super::backup::BackupRecord;
use super::cluster::Actor;
use super::operator::{Decision, PromptKind};
use super::plan::StepKind;
use crate::config::Namespace;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Approximate length the Redis mirror stream is trimmed to.
pub const MIRROR_MAXLEN: u64 = 10_000;
/// Longest output line kept in the journal (longer ones are cut).
pub const MAX_LINE: usize = 2000;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepResult {
    /// Done.
    Succeeded,
    /// Failed; the operator decides next.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Skipped on the operator's decision.
    Skipped,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEnd {
    /// Every step done (or skipped): the cluster runs the target version.
    Completed,
    /// Rolled back to the previous version and the backup.
    RolledBack,
    /// Stopped by the operator; the cluster stays as the last step left it.
    Aborted,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run begins.
    RunStarted {
        /// Cluster name.
        cluster: String,
        /// Version to upgrade to.
        target_version: String,
        /// Version the nodes ran before (the rollback target).
        previous_version: Option<String>,
        /// Executor kind.
        executor: String,
        /// Who started it.
        by: Actor,
    },
    /// A run continues after a crash or a pause.
    RunResumed {
        /// Who resumed it.
        by: Actor,
    },
    /// A step begins.
    StepStarted {
        /// Step.
        step: StepKind,
        /// Attempt, from 1.
        attempt: u32,
        /// What it will do.
        description: String,
    },
    /// One line of a step's output.
    Output {
        /// Step.
        step: StepKind,
        /// The line.
        line: String,
    },
    /// A step ended.
    StepFinished {
        /// Step.
        step: StepKind,
        /// How.
        #[serde(flatten)]
        result: StepResult,
    },
    /// The operator answered a question.
    Decision {
        /// Step asking.
        step: StepKind,
        /// Why it asked.
        prompt: PromptKind,
        /// The answer.
        decision: Decision,
        /// Who answered.
        by: Actor,
    },
    /// The backup is written and verified.
    Backup {
        /// Where and what.
        #[serde(flatten)]
        record: BackupRecord,
    },
    /// The rollback begins.
    RollbackStarted {
        /// Why.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM, SIGHUP, the console) and
    /// stopped at a safe point, its lock released; resume continues it.
    RunInterrupted {
        /// The step that was running or about to run (it runs again on
        /// resume).
        step: Option<StepKind>,
        /// What interrupted it (`SIGINT`, …).
        reason: String,
        /// Who ran the interrupted runbook.
        by: Actor,
    },
    /// The run stops after a step, on request; resume continues it.
    RunPaused {
        /// Last step done.
        after: StepKind,
    },
    /// The run ended.
    RunFinished {
        /// How.
        outcome: RunEnd,
        /// Who (or what) ended it.
        by: Actor,
    },
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the file, from 1.
    pub seq: u64,
    /// Unix ms.
    pub at_ms: u64,
    /// The run.
    pub run_id: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A journal that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing the file failed.
    #[error(
        "journal {path}: cannot {action}: {source}; check the state directory (--state-dir) is writable"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The last line was cut while being written (the runbook was killed).
    #[error(
        "journal {path} line {line}: the last line is truncated (the runbook stopped while \
         writing it); run `clusterops upgrade --resume --repair-journal` to drop it, or \
         `clusterops upgrade --abort` to end the run"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// A complete line that is not a runbook event.
    #[error(
        "journal {path} line {line} is not a runbook event ({reason}); the file was edited or \
         damaged: fix or delete that line by hand, or move the file aside (keep it for the \
         audit) to start afresh"
    )]
    Garbage {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The parser's complaint.
        reason: String,
    },
}

pub use super::fold::RunState;
pub use super::journal_read::{parse, read, repair};
pub use super::journal_writer::Journal;

/// `<state dir>/<cluster>/journal.jsonl`.
pub fn journal_path(state_dir: &Path, cluster: &str) -> PathBuf {
    state_dir.join(cluster).join("journal.jsonl")
}

pub(super) fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io {
        path,
        action,
        source,
    }
}

/// Cut a line to [`MAX_LINE`] characters.
pub fn clip(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// `<ns>:runbook:journal`.
pub fn mirror_key(ns: &Namespace) -> String {
    ns.key("runbook:journal")
}

/// Mirror one journal line: `XADD <ns>:runbook:journal MAXLEN ~ 10000 *
/// entry <json>`. Returns the stream entry id.
pub async fn mirror_to_redis<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    line: &str,
) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg(mirror_key(ns))
        .arg("MAXLEN")
        .arg("~")
        .arg(MIRROR_MAXLEN)
        .arg("*")
        .arg("entry")
        .arg(line)
        .query_async(conn)
        .await
}
