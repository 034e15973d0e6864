//! The database backup and its restore: PostgreSQL with `pg_dump -Fc`
//! (verified with `pg_restore --list`, restored with `pg_restore --clean
//! --if-exists`), MySQL/MariaDB with `mysqldump` (restored with `mysql`).
//! The dump streams through this process so it can count bytes and
//! compute the sha256 as it is written. Passwords go in the environment
//! (`PGPASSWORD`, `MYSQL_PWD`), never on a command line or in a log.

pub use super::backup_db::{Database, DbKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// A backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database URL is not usable.
    #[error("backup: database URL {url}: {reason}")]
    Url {
        /// URL, password masked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("backup file {path}: cannot {action}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// What.
        action: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A tool could not be started.
    #[error(
        "cannot run {tool}: {source}; install the database client tools (postgresql-client or mariadb-client)"
    )]
    Spawn {
        /// Program.
        tool: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A tool exited with an error.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// Program.
        tool: &'static str,
        /// Exit status.
        status: String,
        /// Its last lines of stderr.
        stderr: String,
    },
    /// An in-process store could not be dumped or restored, or a tool was
    /// asked for one (see `backup_store`).
    #[error("{what}: {reason}")]
    Store {
        /// What was backed up or restored.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The file does not match what the journal recorded.
    #[error(
        "backup {path} does not match the journal ({reason}); it was changed or cut: do not restore it, make a new backup"
    )]
    Mismatch {
        /// File.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// A written backup, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Database kind.
    pub kind: DbKind,
    /// The dump file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its sha256, hex.
    pub sha256: String,
    /// What the verification found, e.g. `pg_restore --list: 14 entries`.
    pub verified: String,
}

/// The error for a tool asked to dump or restore an in-process store.
fn no_tool(kind: DbKind) -> BackupError {
    BackupError::Store {
        what: format!("{kind:?} store"),
        reason: "an in-process store is dumped and restored by its owner (runbook::backup_store), \
                 not by a database tool"
            .to_string(),
    }
}

/// Size and sha256 of a file.
pub async fn checksum(path: &Path) -> Result<(u64, String), BackupError> {
    let io = |action| {
        move |source| BackupError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io("open it"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io("read it"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Whether the recorded file is still there, whole and unchanged.
pub async fn check_record(record: &BackupRecord) -> Result<(), BackupError> {
    let (bytes, sha) = checksum(&record.file).await?;
    if bytes != record.bytes || sha != record.sha256 {
        return Err(BackupError::Mismatch {
            path: record.file.clone(),
            reason: format!(
                "{bytes} bytes, sha256 {} (journal: {} bytes, sha256 {})",
                &sha[..12],
                record.bytes,
                record.sha256.get(..12).unwrap_or("")
            ),
        });
    }
    Ok(())
}

/// Dump `db` into `dir/<stem>.dump` (`.sql` for MySQL), reporting bytes
/// written every ~250 ms, then verify it. The file appears only when
/// complete (written as `.part`, fsynced, renamed).
pub async fn backup(
    db: &Database,
    dir: &Path,
    stem: &str,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BackupRecord, BackupError> {
    let ext = match db.kind {
        DbKind::Postgres => "dump",
        DbKind::Mysql => "sql",
        DbKind::Memory => return Err(no_tool(db.kind)),
    };
    let file = dir.join(format!("{stem}.{ext}"));
    let part = dir.join(format!("{stem}.{ext}.part"));
    let io = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| BackupError::Io {
            path,
            action,
            source,
        }
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io(dir, "create the folder"))?;
    let (tool, mut cmd) = match db.kind {
        DbKind::Postgres => {
            let mut c = db.command("pg_dump");
            c.args(["-Fc", "-d", &db.name]);
            ("pg_dump", c)
        }
        DbKind::Mysql => {
            let mut c = db.command("mysqldump");
            c.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--hex-blob",
                &db.name,
            ]);
            ("mysqldump", c)
        }
        DbKind::Memory => return Err(no_tool(db.kind)),
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|source| BackupError::Spawn { tool, source })?;
    let stderr_task = tokio::spawn(read_tail(child.stderr.take()));
    let mut stdout = child.stdout.take().ok_or_else(|| BackupError::Tool {
        tool,
        status: "no stdout".to_string(),
        stderr: String::new(),
    })?;
    // The dump holds every row of the database: readable by its owner only.
    let mut out = super::backup_store::create_private(&part)
        .await
        .map_err(io(&part, "create it"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    let mut last_report = Instant::now();
    loop {
        let n = stdout
            .read(&mut buf)
            .await
            .map_err(io(&part, "read the dump"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .await
            .map_err(io(&part, "write it"))?;
        hasher.update(&buf[..n]);
        written += n as u64;
        if last_report.elapsed() >= Duration::from_millis(250) {
            progress(written);
            last_report = Instant::now();
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|source| BackupError::Spawn { tool, source })?;
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(BackupError::Tool {
            tool,
            status: status.to_string(),
            stderr,
        });
    }
    out.flush().await.map_err(io(&part, "flush it"))?;
    out.sync_all().await.map_err(io(&part, "fsync it"))?;
    drop(out);
    tokio::fs::rename(&part, &file)
        .await
        .map_err(io(&file, "rename the .part file to it"))?;
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    progress(written);
    let record = BackupRecord {
        kind: db.kind,
        file: file.clone(),
        bytes: written,
        sha256: hex::encode(hasher.finalize()),
        verified: String::new(),
    };
    let verified = verify(&record).await?;
    Ok(BackupRecord { verified, ..record })
}

/// Check a dump is complete: `pg_restore --list` reads it (PostgreSQL), it
/// ends with mysqldump's `-- Dump completed` line, or it reads back as the
/// JSON of an in-process store. Returns a summary.
pub async fn verify(record: &BackupRecord) -> Result<String, BackupError> {
    match record.kind {
        DbKind::Memory => super::backup_store::verify_file(&record.file).await,
        DbKind::Postgres => {
            let output = Command::new("pg_restore")
                .arg("--list")
                .arg(&record.file)
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|source| BackupError::Spawn {
                    tool: "pg_restore",
                    source,
                })?;
            if !output.status.success() {
                return Err(BackupError::Tool {
                    tool: "pg_restore",
                    status: output.status.to_string(),
                    stderr: tail(&String::from_utf8_lossy(&output.stderr)),
                });
            }
            let entries = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .count();
            Ok(format!("pg_restore --list: {entries} entries"))
        }
        DbKind::Mysql => {
            let text = tokio::fs::read(&record.file)
                .await
                .map_err(|source| BackupError::Io {
                    path: record.file.clone(),
                    action: "read it",
                    source,
                })?;
            let start = text.len().saturating_sub(512);
            if String::from_utf8_lossy(&text[start..]).contains("-- Dump completed") {
                Ok("mysqldump: ends with \"-- Dump completed\"".to_string())
            } else {
                Err(BackupError::Mismatch {
                    path: record.file.clone(),
                    reason: "no \"-- Dump completed\" line at the end: the dump was cut"
                        .to_string(),
                })
            }
        }
    }
}

/// Restore a recorded backup into `db` after checking its checksum:
/// `pg_restore --clean --if-exists --single-transaction`, or `mysql < file`.
/// Each line the tool prints goes to `output`.
pub async fn restore(
    db: &Database,
    record: &BackupRecord,
    output: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), BackupError> {
    check_record(record).await?;
    let (tool, mut cmd) = match db.kind {
        DbKind::Postgres => {
            let mut c = db.command("pg_restore");
            c.args([
                "--clean",
                "--if-exists",
                "--single-transaction",
                "-d",
                &db.name,
            ])
            .arg(&record.file);
            ("pg_restore", c)
        }
        DbKind::Mysql => {
            let mut c = db.command("mysql");
            c.arg(&db.name);
            let file = std::fs::File::open(&record.file).map_err(|source| BackupError::Io {
                path: record.file.clone(),
                action: "open it",
                source,
            })?;
            c.stdin(Stdio::from(file));
            ("mysql", c)
        }
        DbKind::Memory => return Err(no_tool(db.kind)),
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|source| BackupError::Spawn { tool, source })?;
    let mut lines = Vec::new();
    if let Some(err) = child.stderr.take() {
        let mut reader = BufReader::new(err).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            output(&line);
            lines.push(line);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|source| BackupError::Spawn { tool, source })?;
    if !status.success() {
        return Err(BackupError::Tool {
            tool,
            status: status.to_string(),
            stderr: tail(&lines.join("\n")),
        });
    }
    Ok(())
}

async fn read_tail(stream: Option<tokio::process::ChildStderr>) -> String {
    let mut text = String::new();
    if let Some(mut s) = stream {
        let _ = s.read_to_string(&mut text).await;
    }
    tail(&text)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    lines[start..].join(" | ")
}
