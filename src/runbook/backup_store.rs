//! Backups of a store the runbook reaches in-process rather than through a
//! database tool (the demo's memory store): its owner turns it into JSON
//! ([`StoreBackup`]); the file is written like the database dumps (`.part`,
//! fsync, rename, owner-only), journaled with its size and sha256 as
//! `kind: memory`, checked again before a restore, and read back into the
//! store on rollback.

use super::backup::{BackupError, BackupRecord, DbKind, check_record};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// A store that dumps and restores itself.
#[async_trait::async_trait]
pub trait StoreBackup: Send + Sync {
    /// What is backed up, for the plan and the step's output (e.g. `the
    /// demo nodes' memory store`).
    fn describe(&self) -> String;

    /// The store's whole content as JSON, and one line saying what it holds.
    async fn dump(&self) -> Result<(Vec<u8>, String), String>;

    /// Replace the store's content with `dump`; returns one line saying
    /// what was read back.
    async fn restore(&self, dump: &[u8]) -> Result<String, String>;
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        path,
        action,
        source,
    }
}

/// Dump `store` into `dir/<stem>.json`; the file appears only when complete.
/// The record's `verified` is what the dump holds.
pub async fn backup(
    store: &dyn StoreBackup,
    dir: &Path,
    stem: &str,
) -> Result<BackupRecord, BackupError> {
    let store_err = |reason: String| BackupError::Store {
        what: store.describe(),
        reason,
    };
    let (bytes, summary) = store.dump().await.map_err(store_err)?;
    let file = dir.join(format!("{stem}.json"));
    let part = dir.join(format!("{stem}.json.part"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io_err(dir, "create the folder"))?;
    let mut out = create_private(&part)
        .await
        .map_err(io_err(&part, "create it"))?;
    out.write_all(&bytes)
        .await
        .map_err(io_err(&part, "write it"))?;
    out.sync_all().await.map_err(io_err(&part, "fsync it"))?;
    drop(out);
    tokio::fs::rename(&part, &file)
        .await
        .map_err(io_err(&file, "rename the .part file to it"))?;
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    Ok(BackupRecord {
        kind: DbKind::Memory,
        file,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        verified: format!("JSON dump: {summary}"),
    })
}

/// Check the recorded file (size and sha256), then read it back into
/// `store`. Returns what was restored, in one line.
pub async fn restore(
    store: &dyn StoreBackup,
    record: &BackupRecord,
) -> Result<String, BackupError> {
    check_record(record).await?;
    let bytes = tokio::fs::read(&record.file)
        .await
        .map_err(io_err(&record.file, "read it"))?;
    store
        .restore(&bytes)
        .await
        .map_err(|reason| BackupError::Store {
            what: store.describe(),
            reason,
        })
}

/// Whether a memory-store dump reads back as a JSON object.
pub async fn verify_file(file: &Path) -> Result<String, BackupError> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(io_err(file, "read it"))?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(o)) => {
            Ok(format!("JSON dump with {} top-level fields", o.len()))
        }
        Ok(_) => Err(BackupError::Mismatch {
            path: file.to_path_buf(),
            reason: "not a JSON object".to_string(),
        }),
        Err(e) => Err(BackupError::Mismatch {
            path: file.to_path_buf(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// Create (or empty) `path` for writing, readable by its owner only: a
/// backup holds every row of the database.
pub(super) async fn create_private(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
}
