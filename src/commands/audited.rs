//! What the audited commands (`maintenance`, `queue pause|resume`) share:
//! the live actions they change the cluster through, and how an outcome is
//! printed (the change and where it was recorded, or one error line).

use clusterops::config::Config;
use clusterops::operate::{LiveActions, default_audit_path, operator};
use std::path::PathBuf;

/// The cluster's live actions, recording to `audit_file` (else the default
/// audit file) as this operator.
pub(super) fn live_actions(config: Config, audit_file: Option<PathBuf>) -> LiveActions {
    LiveActions::new(
        config,
        operator(),
        audit_file.unwrap_or_else(default_audit_path),
    )
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
