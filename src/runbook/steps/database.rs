//! The database steps: back up (step 4) and restore (rollback), with a
//! database tool or, for `backup.kind = "memory"`, the in-process store's
//! own dump (`backup_store`).

use super::{StepResult, e2s};
use crate::runbook::backup::{self, Database};
use crate::runbook::backup_store::{self, StoreBackup};
use crate::runbook::engine::{Engine, EngineIo, Flow};
use crate::runbook::executor::StepIo;
use crate::runbook::journal::Event;
use std::sync::Arc;

/// What the backup step backs up.
enum Target {
    /// `backup.kind = none`.
    Nothing,
    /// A database, with its tool.
    Database(Database),
    /// An in-process store that dumps itself.
    Store(Arc<dyn StoreBackup>),
}

impl Engine<'_> {
    fn backup_target(&self) -> Result<Target, String> {
        let b = &self.rb.config.backup;
        match b.kind.as_str() {
            "none" => return Ok(Target::Nothing),
            "memory" => {
                return self
                    .rb
                    .store_backup
                    .clone()
                    .map(Target::Store)
                    .ok_or_else(|| {
                        "backup.kind = memory, but this runbook has no in-process store to back up \
                     (only the demo has one)"
                            .to_string()
                    });
            }
            _ => {}
        }
        let url = match (&b.url, &b.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("backup.url_env: the environment variable {var} is not set")
            })?,
            (None, None) => return Err("backup: no url or url_env".to_string()),
        };
        Database::from_url(&url).map(Target::Database).map_err(e2s)
    }

    pub(super) async fn backup_db(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let target = self.backup_target()?;
        if let Target::Nothing = target {
            io.line("backup.kind = none: no backup taken; a rollback cannot restore the database");
            return Ok(Flow::Done);
        }
        let existing = self.backup.lock().clone();
        if let Some(rec) = existing {
            match backup::check_record(&rec).await {
                Ok(()) => {
                    io.line(&format!(
                        "the backup of this run is intact: {} ({} bytes, sha256 {})",
                        rec.file.display(),
                        rec.bytes,
                        rec.sha256
                    ));
                    return Ok(Flow::Done);
                }
                Err(e) => io.line(&format!(
                    "the recorded backup is not usable ({e}); backing up again"
                )),
            }
        }
        let dir = self.rb.config.backup.dir.clone().unwrap_or_else(|| {
            self.rb
                .state_dir
                .join(&self.rb.config.cluster.name)
                .join("backups")
        });
        let stem = format!("{}-{}", self.rb.config.cluster.name, self.run_id);
        let rec = match &target {
            Target::Nothing => return Ok(Flow::Done),
            Target::Database(db) => {
                io.line(&format!("dumping {} into {}", db.describe(), dir.display()));
                let progress = |n: u64| io.bytes(n);
                backup::backup(db, &dir, &stem, &progress)
                    .await
                    .map_err(e2s)?
            }
            Target::Store(store) => {
                io.line(&format!(
                    "dumping {} into {}",
                    store.describe(),
                    dir.display()
                ));
                let rec = backup_store::backup(store.as_ref(), &dir, &stem)
                    .await
                    .map_err(e2s)?;
                io.bytes(rec.bytes);
                rec
            }
        };
        io.line(&format!(
            "backup {}: {} bytes, sha256 {}, {}",
            rec.file.display(),
            rec.bytes,
            rec.sha256,
            rec.verified
        ));
        self.record(Event::Backup {
            record: rec.clone(),
        });
        *self.backup.lock() = Some(rec);
        Ok(Flow::Done)
    }

    pub(super) async fn restore_db(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let target = self.backup_target()?;
        if let Target::Nothing = target {
            return Err("backup.kind = none: there is no backup to restore; restore the database by hand, then skip this step".to_string());
        }
        let Some(rec) = self.backup.lock().clone() else {
            return Err("no backup was recorded in this run (the backup step was skipped); restore the database by hand, then skip this step".to_string());
        };
        match &target {
            Target::Nothing => {}
            Target::Database(db) => {
                io.line(&format!(
                    "restoring {} into {}",
                    rec.file.display(),
                    db.describe()
                ));
                let out = |l: &str| io.line(l);
                backup::restore(db, &rec, &out).await.map_err(e2s)?;
            }
            Target::Store(store) => {
                io.line(&format!(
                    "restoring {} into {}",
                    rec.file.display(),
                    store.describe()
                ));
                let read = backup_store::restore(store.as_ref(), &rec)
                    .await
                    .map_err(e2s)?;
                io.line(&format!("read back: {read}"));
            }
        }
        io.line("restore finished");
        Ok(Flow::Done)
    }
}
