//! The backups a runbook made, outside a run: list them with what the
//! journals know, verify their checksums, prune old ones (never the newest,
//! never one an unfinished run may restore) and restore one; every deletion
//! and restore is appended to `<state dir>/<cluster>/backups.jsonl`, which
//! `clusterops audit` shows.

use super::audit::Audit;
use super::backup::{self, BackupError, BackupRecord, Database};
use super::cluster::Actor;
use super::config::RunbookConfig;
use super::journal::{self, JournalError, RunState};
use crate::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Listing, pruning or restoring backups failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupsError {
    /// A folder or file could not be read, written or deleted.
    #[error("{path}: cannot {action}: {source}; check the path and its permissions")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The dump itself (checksum, restore tool).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// A restore is not safe now, or the file cannot be checked.
    #[error("{0}")]
    Refused(String),
}

/// The folder the runbook writes dumps to: `[backup] dir`, else
/// `<state dir>/<cluster>/backups`.
pub fn backup_dir(config: &RunbookConfig, state_dir: &Path) -> PathBuf {
    config
        .backup
        .dir
        .clone()
        .unwrap_or_else(|| state_dir.join(&config.cluster.name).join("backups"))
}

/// `<state dir>/<cluster>/backups.jsonl`: deletions and restores.
pub fn actions_path(state_dir: &Path, cluster: &str) -> PathBuf {
    state_dir.join(cluster).join("backups.jsonl")
}

/// One backup file and what the journals know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    /// The file.
    pub file: PathBuf,
    /// Its size now.
    pub bytes: u64,
    /// Last modified, Unix ms.
    pub modified_ms: u64,
    /// The run that made it, when a journal records it.
    pub run_id: Option<String>,
    /// That run's target version.
    pub target_version: Option<String>,
    /// That run's previous version (the one the dump holds).
    pub previous_version: Option<String>,
    /// Whether that run is unfinished (its rollback may restore this file).
    pub run_unfinished: bool,
    /// The journaled size and sha256.
    pub record: Option<BackupRecord>,
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> BackupsError {
    let path = path.to_path_buf();
    move |source| BackupsError::Io {
        path,
        action,
        source,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Attach what `audit` knows (run, versions, record) to `file`.
fn describe(file: PathBuf, bytes: u64, modified_ms: u64, audit: &Audit) -> BackupFile {
    let run = audit.runs.iter().rev().find(|r| {
        r.backup
            .as_ref()
            .is_some_and(|b| b.file.file_name() == file.file_name() && same_file(&b.file, &file))
    });
    BackupFile {
        bytes,
        modified_ms,
        run_id: run.map(|r| r.run_id.clone()),
        target_version: run.map(|r| r.target_version.clone()),
        previous_version: run.and_then(|r| r.previous_version.clone()),
        run_unfinished: run.is_some_and(|r| r.outcome.is_none()),
        record: run.and_then(|r| r.backup.clone()),
        file,
    }
}

/// Every dump (`*.dump`, `*.sql`; not a `.part` being written) in `dir`,
/// newest first. A missing folder has none.
pub fn list(dir: &Path, audit: &Audit) -> Result<Vec<BackupFile>, BackupsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, "list the backup folder")(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir, "list the backup folder"))?;
        let path = entry.path();
        let is_dump = path.extension().is_some_and(|e| e == "dump" || e == "sql");
        let meta = entry.metadata().map_err(io(&path, "stat it"))?;
        if !is_dump || !meta.is_file() {
            continue;
        }
        out.push(describe(path, meta.len(), modified_ms(&meta), audit));
    }
    out.sort_by(|a, b| {
        b.modified_ms
            .cmp(&a.modified_ms)
            .then_with(|| b.file.cmp(&a.file))
    });
    Ok(out)
}

/// A file's modification time, unix ms (0 when unknown).
fn modified_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Find `file` (a path, or a name in `dir`) among the listed backups, or
/// describe it when it lies elsewhere.
pub fn find(file: &Path, dir: &Path, audit: &Audit) -> Result<BackupFile, BackupsError> {
    let path = if !file.exists() && file.components().count() == 1 {
        dir.join(file)
    } else {
        file.to_path_buf()
    };
    let meta = std::fs::metadata(&path).map_err(io(&path, "read it"))?;
    Ok(describe(path, meta.len(), modified_ms(&meta), audit))
}

/// What [`verify`] found for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Verdict {
    /// Size and sha256 match the journal.
    Ok,
    /// They differ (the detail says how): do not restore it.
    Mismatch(String),
    /// No journal records this file: nothing to compare with.
    NoRecord,
    /// It could not be read.
    Unreadable(String),
}

impl Verdict {
    /// The exit code this verdict asks for: 0, 1 (no record), 2.
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::NoRecord => 1,
            Verdict::Mismatch(_) | Verdict::Unreadable(_) => 2,
        }
    }
}

/// Recompute the file's size and sha256 and compare them with its record.
pub async fn verify(b: &BackupFile) -> Verdict {
    let (bytes, sha) = match backup::checksum(&b.file).await {
        Ok(c) => c,
        Err(e) => return Verdict::Unreadable(e.to_string()),
    };
    let Some(rec) = &b.record else {
        return Verdict::NoRecord;
    };
    if bytes == rec.bytes && sha == rec.sha256 {
        Verdict::Ok
    } else {
        Verdict::Mismatch(format!(
            "{bytes} bytes, sha256 {} (journal: {} bytes, sha256 {})",
            sha.get(..12).unwrap_or(""),
            rec.bytes,
            rec.sha256.get(..12).unwrap_or("")
        ))
    }
}

/// Which backups to delete: beyond the newest `keep` and/or older than
/// `older_than_ms` (both given: both must hold). Never the newest one,
/// never one an unfinished run references. `list` is newest first.
pub fn prune_plan(
    list: &[BackupFile],
    keep: Option<usize>,
    older_than_ms: Option<u64>,
    now: u64,
) -> Vec<BackupFile> {
    if keep.is_none() && older_than_ms.is_none() {
        return Vec::new();
    }
    list.iter()
        .enumerate()
        .filter(|(i, b)| {
            *i > 0
                && !b.run_unfinished
                && keep.is_none_or(|k| *i >= k)
                && older_than_ms.is_none_or(|age| now.saturating_sub(b.modified_ms) >= age)
        })
        .map(|(_, b)| b.clone())
        .collect()
}

/// `30d`, `12h`, `90m`, `45s` as milliseconds.
pub fn parse_age(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let per = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1000,
        _ => {
            return Err(format!(
                "{s:?}: give a number and a unit, e.g. 30d, 12h, 90m"
            ));
        }
    };
    num.parse::<u64>()
        .map(|n| n.saturating_mul(per))
        .map_err(|_| format!("{s:?}: give a number and a unit, e.g. 30d, 12h, 90m"))
}

/// What an operator did to a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Deleted by `backup prune`.
    Deleted,
    /// Restored by `backup restore`.
    Restored,
}

/// One line of `backups.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAction {
    /// Unix ms.
    pub at_ms: u64,
    /// Cluster.
    pub cluster: String,
    /// What.
    pub action: ActionKind,
    /// The file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The run that made it, if known.
    pub run_id: Option<String>,
    /// Who.
    pub by: Actor,
    /// E.g. the prune rule, or the database restored into.
    pub detail: String,
}

/// Append `action` to the cluster's `backups.jsonl` and fsync it.
pub fn record_action(state_dir: &Path, action: &BackupAction) -> Result<(), BackupsError> {
    let path = actions_path(state_dir, &action.cluster);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(&path, "create its folder"))?;
    }
    let mut line = serde_json::to_string(action)
        .map_err(|e| io(&path, "encode an action")(std::io::Error::other(e)))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path, "open it for appending"))?;
    f.write_all(line.as_bytes())
        .map_err(io(&path, "append to it"))?;
    f.sync_data().map_err(io(&path, "fsync it"))
}

/// Every action in `path`; a line that is not one is left out with a note.
pub fn read_actions(path: &Path) -> (Vec<BackupAction>, Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), Vec::new());
    };
    let mut notes = Vec::new();
    let actions = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .filter_map(|(i, l)| match serde_json::from_str(l) {
            Ok(a) => Some(a),
            Err(_) => {
                notes.push(format!(
                    "{} line {} is not a backup action and was left out",
                    path.display(),
                    i + 1
                ));
                None
            }
        })
        .collect();
    (actions, notes)
}

/// Delete one backup and record it (who, when, why).
pub fn delete(
    state_dir: &Path,
    cluster: &str,
    b: &BackupFile,
    by: &Actor,
    why: &str,
) -> Result<(), BackupsError> {
    std::fs::remove_file(&b.file).map_err(io(&b.file, "delete it"))?;
    tracing::info!(file = %b.file.display(), by = %by, "backup deleted: {why}");
    record_action(
        state_dir,
        &BackupAction {
            at_ms: now_ms(),
            cluster: cluster.to_string(),
            action: ActionKind::Deleted,
            file: b.file.clone(),
            bytes: b.bytes,
            run_id: b.run_id.clone(),
            by: by.clone(),
            detail: why.to_string(),
        },
    )
}

/// Refuse a restore while the cluster's last run is unfinished: its
/// `--rollback` (or `--abort`) decides what the database holds.
pub fn refuse_if_run_unfinished(state_dir: &Path, cluster: &str) -> Result<(), BackupsError> {
    let entries = journal::read(&journal::journal_path(state_dir, cluster))?;
    match RunState::last(&entries) {
        Some(run) if run.finished.is_none() => Err(BackupsError::Refused(format!(
            "run {} of cluster {cluster} is unfinished: finish it with `clusterops upgrade \
             --resume`, `--rollback` (which restores its own backup) or `--abort` first",
            run.run_id
        ))),
        _ => Ok(()),
    }
}

/// Restore `b` into `db` after checking its size and sha256 against the
/// journal (a file no journal records is refused), then record it.
pub async fn restore(
    state_dir: &Path,
    cluster: &str,
    db: &Database,
    b: &BackupFile,
    by: &Actor,
    output: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), BackupsError> {
    let Some(rec) = &b.record else {
        return Err(BackupsError::Refused(format!(
            "{}: no journal records its size and sha256, so it cannot be checked; restore it by \
             hand (pg_restore / mysql) if you trust it",
            b.file.display()
        )));
    };
    if rec.kind != db.kind {
        return Err(BackupsError::Refused(format!(
            "{} is a {:?} dump but the database is {}; check [backup] kind and url",
            b.file.display(),
            rec.kind,
            db.describe()
        )));
    }
    let rec = BackupRecord {
        file: b.file.clone(),
        ..rec.clone()
    };
    backup::restore(db, &rec, output).await?;
    tracing::info!(file = %b.file.display(), by = %by, db = %db.describe(), "backup restored");
    record_action(
        state_dir,
        &BackupAction {
            at_ms: now_ms(),
            cluster: cluster.to_string(),
            action: ActionKind::Restored,
            file: b.file.clone(),
            bytes: b.bytes,
            run_id: b.run_id.clone(),
            by: by.clone(),
            detail: format!("into {}", db.describe()),
        },
    )
}

/// Refuse a restore while any node is up: as the runbook's stop step
/// decides, the registry must show no live node and every worker-ID lease
/// must be free.
pub async fn refuse_if_nodes_up(ops: &dyn super::ClusterOps) -> Result<(), BackupsError> {
    let cannot = |e: super::ClusterError| {
        BackupsError::Refused(format!(
            "cannot tell whether the nodes are stopped ({e}); check the cluster's Redis is reachable"
        ))
    };
    let nodes = ops.node_states().await.map_err(cannot)?;
    if !nodes.is_empty() {
        let names: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
        return Err(BackupsError::Refused(format!(
            "{} node(s) are up ({}): stop every node before restoring the database",
            names.len(),
            names.join(", ")
        )));
    }
    let leases = ops.leases_held().await.map_err(cannot)?;
    if !leases.is_empty() {
        let holders: Vec<&str> = leases.iter().map(|l| l.holder.as_str()).collect();
        return Err(BackupsError::Refused(format!(
            "worker-ID leases are still held by {}: wait until the stopped nodes' leases are \
             free (or stop those nodes) before restoring",
            holders.join(", ")
        )));
    }
    Ok(())
}
