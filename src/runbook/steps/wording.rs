//! The plan's wording: what each step will do, from the configuration and
//! the executor's own descriptions.

use crate::runbook::config::RunbookConfig;
use crate::runbook::executor::NodeSlot;
use crate::runbook::plan::{Plan, StepKind};

/// Build the plan's wording.
pub(crate) fn plan(
    config: &RunbookConfig,
    target: &str,
    slots: &[NodeSlot],
    stop: &dyn Fn(StepKind) -> String,
    start: &dyn Fn(&NodeSlot, &str) -> String,
) -> Plan {
    let t = &config.timeouts;
    let first = slots.first();
    let first_name = first.map(|s| s.name.as_str()).unwrap_or("(no node)");
    let rest: Vec<String> = slots
        .iter()
        .skip(1)
        .map(|s| format!("{}: {}", s.name, start(s, target)))
        .collect();
    let smoke: Vec<String> = config
        .verify
        .smoke
        .iter()
        .map(|s| {
            let body = s
                .body_contains
                .as_ref()
                .map(|b| format!(", body contains {b:?}"))
                .unwrap_or_default();
            format!("{} {} -> {}{body}", s.method, s.path, s.expect_status)
        })
        .collect();
    let lb = match &config.cluster.load_balancer {
        Some(a) => format!(
            "expect 200 from http://{a}{} within {} s",
            config.cluster.health_path, t.restore_s
        ),
        None => "no load balancer configured: not checked through it".to_string(),
    };
    let backup = match config.backup.kind.as_str() {
        "postgres" => "pg_dump -Fc, verified with pg_restore --list".to_string(),
        "mysql" => {
            "mysqldump --single-transaction, verified by its \"Dump completed\" line".to_string()
        }
        "memory" => "a JSON dump of the in-process store (its records and schema version), read \
                     back to check it"
            .to_string(),
        _ => "none (backup.kind = none): a rollback cannot restore the database".to_string(),
    };
    let describe = |kind: StepKind| -> String {
        match kind {
            StepKind::Preflight => {
                "Run the `check` suite. A failing check stops the run; warnings ask for confirmation.".to_string()
            }
            StepKind::Drain => format!(
                "Set the maintenance flag of cluster {} (nodes answer 503, the load balancer takes them out)\n\
                 and wait up to {} s until every live node reports state maintenance.",
                config.cluster.name, t.drain_s
            ),
            StepKind::StopNodes => format!(
                "Stop every node: {}.\nWait up to {} s until the registry shows no live node and every worker-ID lease is free.",
                stop(kind),
                t.stop_s
            ),
            StepKind::Backup => format!(
                "Back up the database: {backup}.\nFile, size and sha256 go into the journal."
            ),
            StepKind::UpgradeFirst => format!(
                "Start {first_name} alone on version {target}: {}.\nWait up to {} s until its /api/status reports \
                 app and schema version {target} in state maintenance or running (it migrates the schema).",
                first.map(|s| start(s, target)).unwrap_or_default(),
                t.first_node_s
            ),
            StepKind::Verify => format!(
                "Check {first_name}: health check, /api/status, {} smoke check(s) sent with header {}{}.\nThen ask the operator to confirm the rollout.",
                smoke.len(),
                config.verify.bypass_header,
                if smoke.is_empty() { String::new() } else { format!(" ({})", smoke.join("; ")) }
            ),
            StepKind::Rollout => {
                if rest.is_empty() {
                    "No other node to start.".to_string()
                } else {
                    format!(
                        "Start the other nodes on {target}, one at a time, each healthy with a worker ID (up to {} s) before the next:\n{}",
                        t.node_s,
                        rest.join("\n")
                    )
                }
            }
            StepKind::RestoreTraffic => format!(
                "Clear the maintenance flag; wait until every node reports running; {lb}."
            ),
            StepKind::RollbackStop => format!(
                "Stop every node: {}; wait until none is alive and the leases are free.",
                stop(kind)
            ),
            StepKind::RollbackRestore => match config.backup.kind.as_str() {
                "postgres" => "Restore the backup with pg_restore --clean --if-exists --single-transaction (checksum checked first).".to_string(),
                "mysql" => "Restore the backup with mysql < dump (checksum checked first).".to_string(),
                "memory" => "Read the backup file back into the in-process store (checksum checked first).".to_string(),
                _ => "No backup to restore (backup.kind = none): restore the database by hand, then skip this step.".to_string(),
            },
            StepKind::RollbackStart => format!(
                "Start every node on the version it ran before the upgrade, one at a time: {}.",
                slots.iter().map(|s| start(s, "<previous>")).collect::<Vec<_>>().join("; ")
            ),
            StepKind::RollbackRestoreTraffic => format!(
                "Clear the maintenance flag; wait until every node reports running; {lb}."
            ),
        }
    };
    Plan::build(config, target, &describe)
}
