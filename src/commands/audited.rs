//! What the audited commands (`maintenance on|off`, `queue pause|resume`)
//! share: their options (the configuration and the audit file), the live
//! actions they change the cluster through, and how an outcome is printed
//! (the change and where it was recorded, or one error line).

use super::EnvArgs;
use clusterops::config::Config;
use clusterops::operate::{LiveActions, default_audit_path, operator};
use std::path::PathBuf;

/// The options of every audited change.
#[derive(Debug, clap::Args)]
pub struct AuditedArgs {
    #[command(flatten)]
    pub env: EnvArgs,
    /// The audit file (default: the console's, `audit-console.jsonl` in
    /// `$XDG_STATE_HOME/clusterops` or `~/.local/state/clusterops`).
    #[arg(long, value_name = "PATH")]
    audit_file: Option<PathBuf>,
}

impl AuditedArgs {
    /// The cluster's live actions, recording to `--audit-file` (else the
    /// default audit file) as this operator.
    pub(super) fn live_actions(self, config: Config) -> LiveActions {
        LiveActions::new(
            config,
            operator(),
            self.audit_file.unwrap_or_else(default_audit_path),
        )
    }
}

/// Print a change's outcome (and where it was recorded) for `command`; the
/// exit code.
pub(super) fn report(
    command: &str,
    live: &LiveActions,
    outcome: std::result::Result<String, String>,
) -> i32 {
    match outcome {
        Ok(done) => {
            println!("{done}");
            println!("audit: {}", live.audit_path().display());
            0
        }
        Err(why) => {
            eprintln!("error: {command}: {why}");
            1
        }
    }
}
