//! `clusterops upgrade` (the guided upgrade runbook: plan, run, resume,
//! roll back, abort) and `clusterops audit` (who did what, from the journals).
//! Exit codes: 0 done, 1 the run failed, was aborted or rolled back (or
//! the cluster could not be reached), 2 bad input (arguments, runbook
//! configuration, env file, version, a damaged journal, nothing to resume),
//! 128 + the signal when interrupted (130 for Ctrl-C): the first SIGINT,
//! SIGTERM or SIGHUP stops the run at the next safe point, journals it and
//! releases the runbook lock; a second one exits at once.

use super::EnvArgs;
use clusterops::runbook::journal::JournalError;
use clusterops::runbook::live::RedisClusterOps;
use clusterops::runbook::operator::say;
use clusterops::runbook::terminal::TerminalOperator;
use clusterops::runbook::{
    AutoOperator, Interrupt, LockAcquireError, Operator, RunOutcome, Runbook, RunbookConfig,
    RunbookError, audit, default_state_dir,
};
use color_eyre::eyre::Result;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["to", "resume", "rollback", "abort"])))]
pub struct UpgradeArgs {
    /// Upgrade every node to this version.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// With --to: print the plan and change nothing.
    #[arg(long, requires = "to")]
    plan: bool,
    /// Answer every question: confirm warnings and the verification; on a
    /// failure roll back when `[rollback] automatic = true`, else abort.
    #[arg(long)]
    yes: bool,
    /// Continue the unfinished run from its first step not done.
    #[arg(long, conflicts_with = "abort")]
    resume: bool,
    /// With --resume: first drop a journal line cut by a crash.
    #[arg(long, requires = "resume")]
    repair_journal: bool,
    /// Roll the unfinished run back: stop the nodes, restore its backup,
    /// start the previous version, clear maintenance.
    #[arg(long, conflicts_with_all = ["resume", "abort"])]
    rollback: bool,
    /// End the unfinished run as aborted, changing nothing in the cluster.
    #[arg(long)]
    abort: bool,
    /// The runbook configuration (see assets/runbook.example.toml).
    #[arg(long, value_name = "PATH", default_value = "runbook.toml")]
    config: PathBuf,
    #[command(flatten)]
    env: EnvArgs,
    /// Where journals, backups and pid files live (default:
    /// $XDG_STATE_HOME/clusterops, else ~/.local/state/clusterops).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The state directory whose journals to read (default as for `upgrade`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
    /// Only this cluster's runs (its [cluster] name).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Only this run (its id).
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Only the N most recent runs (and backup actions).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
}

pub(super) fn state_dir(given: Option<PathBuf>) -> Option<PathBuf> {
    let dir = given.or_else(default_state_dir);
    if dir.is_none() {
        eprintln!("error: no state directory: set HOME or XDG_STATE_HOME, or pass --state-dir");
    }
    dir
}

/// The exit code of a runbook error: 2 when the input is wrong, else 1.
/// Whether the runbook configuration and the env file name the same
/// cluster; prints the one error line when they do not.
pub(super) fn same_cluster(config: &RunbookConfig, cluster: &clusterops::config::Config) -> bool {
    let same = cluster.namespace.to_string() == config.cluster.name;
    if !same {
        eprintln!(
            "error: the runbook configuration is for cluster {:?} but the env file says \
             CLUSTER_NAME={}; pass the env file of that cluster (--env-file)",
            config.cluster.name, cluster.namespace
        );
    }
    same
}

fn exit_code(e: &RunbookError) -> i32 {
    match e {
        RunbookError::Config(_)
        | RunbookError::InvalidVersion(_)
        | RunbookError::Unfinished { .. }
        | RunbookError::NothingToResume { .. }
        | RunbookError::Executor(_) => 2,
        RunbookError::Journal(JournalError::Truncated { .. } | JournalError::Garbage { .. }) => 2,
        RunbookError::Journal(JournalError::Io { .. })
        | RunbookError::Lock(LockAcquireError::Refused { .. } | LockAcquireError::Failed(_))
        | RunbookError::LockLost { .. }
        | RunbookError::Cluster(_) => 1,
    }
}

fn fail(e: &RunbookError) -> i32 {
    say(format_args!("error: {e}"));
    exit_code(e)
}

/// `[backup] url_env` names a variable of the process environment or,
/// failing that, of the nodes' env file (`--env-file`, where `DB_URL`
/// usually is). Resolved before anything runs, so a missing database URL is
/// refused up front instead of at step 4 with every node already stopped.
pub(super) fn resolve_backup_url(config: &mut RunbookConfig, env: &EnvArgs) -> Result<(), String> {
    let b = &mut config.backup;
    let (true, None, Some(var)) = (b.kind != "none", &b.url, b.url_env.clone()) else {
        return Ok(());
    };
    if std::env::var(&var).is_ok_and(|v| !v.trim().is_empty()) {
        return Ok(());
    }
    let from_file = match &env.env_file {
        Some(path) => clusterops::config::read_env_file(path)
            .map_err(|e| format!("env file {e}"))?
            .remove(&var)
            .filter(|v| !v.trim().is_empty()),
        None => None,
    };
    if let Some(url) = from_file {
        b.url = Some(url);
        return Ok(());
    }
    // DB_URL unset: the deployment guide's parts (DB_DIALECT, DB_HOST, …),
    // from the environment over the env file, as the nodes read them.
    if var == "DB_URL" {
        let mut vars = match &env.env_file {
            Some(path) => {
                clusterops::config::read_env_file(path).map_err(|e| format!("env file {e}"))?
            }
            None => Default::default(),
        };
        for name in clusterops::config::DB_PART_VARIABLES {
            if let Ok(v) = std::env::var(name) {
                vars.insert((*name).to_string(), v);
            }
        }
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        match clusterops::config::db_url_from_parts(get) {
            Ok(Some(parts)) => {
                if parts.backup_kind != b.kind {
                    return Err(format!(
                        "backup.kind = {:?} but DB_DIALECT is {}: set [backup] kind = {:?}",
                        b.kind, parts.dialect, parts.backup_kind
                    ));
                }
                b.url = Some(parts.url.expose().to_string());
                return Ok(());
            }
            Ok(None) => {}
            Err(wrong) => {
                let names: Vec<&str> = wrong.iter().map(|p| p.variable).collect();
                return Err(format!(
                    "backup.url_env: DB_URL is unset and the database parts are wrong ({}): \
                     see `clusterops config`",
                    names.join(", ")
                ));
            }
        }
    }
    Err(format!(
        "backup.url_env: {var} is set neither in the environment nor in the env file \
         (--env-file); set it (or DB_DIALECT, DB_HOST, DB_DATABASE, …), or give [backup] url"
    ))
}

/// The exit code of a run stopped by `signal` (`SIGINT` → 130).
fn signal_exit_code(signal: &str) -> i32 {
    match signal {
        "SIGHUP" => 129,
        "SIGTERM" => 143,
        _ => 130,
    }
}

/// Turn SIGINT, SIGTERM and SIGHUP into `interrupt`: the first stops the run
/// at its next safe point; a second one exits at once.
fn watch_signals(interrupt: Interrupt) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            if interrupt.trigger(name) {
                say(format_args!(
                    "\n{name}: stopping at the next safe point (the step in progress stops and runs \
                     again on --resume; the runbook lock is released); press Ctrl-C again to exit at once"
                ));
            } else {
                say(format_args!(
                    "{name} again: exiting now; the runbook lock expires after its TTL, then \
                     `clusterops upgrade --resume`"
                ));
                // The journal gets the interruption (if the run has not
                // written it yet) and is closed, so the exit cuts no line.
                interrupt.exit_now(name);
                std::process::exit(signal_exit_code(name));
            }
        }
    }))
}

pub async fn run(args: UpgradeArgs) -> Result<i32> {
    let Some(state_dir) = state_dir(args.state_dir.clone()) else {
        return Ok(2);
    };
    let mut config = match RunbookConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if args.plan {
        let target = args.to.as_deref().unwrap_or_default();
        return Ok(match Runbook::plan(&config, &state_dir, target) {
            Ok(plan) => {
                println!("{plan}");
                0
            }
            Err(e) => fail(&e),
        });
    }
    if let Some(target) = &args.to
        && let Err(e) = clusterops::runbook::check_version(target)
    {
        return Ok(fail(&e));
    }
    let Some(cluster_config) = args.env.load_config() else {
        return Ok(2);
    };
    if !args.abort
        && let Err(e) = resolve_backup_url(&mut config, &args.env)
    {
        eprintln!("error: {e}");
        return Ok(2);
    }
    if cluster_config.coordination_redis().is_none() {
        eprintln!(
            "error: the cluster configuration has no Redis (REDIS_URL or a *_REDIS_URL): a \
             runbook needs the cluster's shared state; pass the nodes' env file with --env-file"
        );
        return Ok(2);
    }
    if !same_cluster(&config, &cluster_config) {
        return Ok(2);
    }
    let ops = match RedisClusterOps::connect(cluster_config).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let operator: Arc<dyn Operator> = if args.yes {
        Arc::new(AutoOperator::new(config.rollback.automatic, true))
    } else {
        Arc::new(TerminalOperator::new())
    };
    let interrupt = Interrupt::new();
    let _signals = watch_signals(interrupt.clone())?;
    let runbook = match Runbook::new(config, Arc::new(ops), operator, state_dir).await {
        Ok(r) => r.with_interrupt(interrupt),
        Err(e) => return Ok(fail(&e)),
    };
    let outcome = if args.abort {
        let reason = format!(
            "aborted with `clusterops upgrade --abort` by {}",
            clusterops::runbook::Actor::current()
        );
        runbook.abort(&reason).await
    } else if args.rollback {
        runbook.rollback().await
    } else if args.resume {
        if args.repair_journal {
            match runbook.repair_journal() {
                Ok(Some(line)) => eprintln!(
                    "journal {}: dropped truncated line {line}",
                    runbook.journal_path().display()
                ),
                Ok(None) => {}
                Err(e) => return Ok(fail(&e)),
            }
        }
        runbook.resume().await
    } else {
        runbook.run(args.to.as_deref().unwrap_or_default()).await
    };
    Ok(match outcome {
        Ok(RunOutcome::Completed { run_id }) => {
            say(format_args!("run {run_id}: upgrade completed"));
            0
        }
        Ok(RunOutcome::Interrupted { run_id, at, reason }) => {
            say(format_args!(
                "run {run_id}: interrupted ({reason}){}; the runbook lock is released. Continue \
                 with `clusterops upgrade --resume`, or `--rollback` / `--abort` it (same \
                 --config, --env-file and --state-dir)",
                at.map(|s| format!(" during {}", s.title()))
                    .unwrap_or_default()
            ));
            signal_exit_code(&reason)
        }
        Ok(RunOutcome::Paused { run_id, after }) => {
            say(format_args!(
                "run {run_id}: paused after {}; continue with `clusterops upgrade --resume`",
                after.title()
            ));
            0
        }
        Ok(RunOutcome::RolledBack { run_id }) => {
            say(format_args!(
                "run {run_id}: rolled back to the previous version and the backup"
            ));
            1
        }
        Ok(RunOutcome::Aborted { run_id, at }) => {
            match at {
                Some(step) => say(format_args!(
                    "run {run_id}: aborted at {}; the cluster stays as that step left it (see \
                     `clusterops audit`)",
                    step.title()
                )),
                None => say(format_args!("run {run_id}: aborted")),
            }
            1
        }
        Err(e) => fail(&e),
    })
}

pub fn run_audit(args: AuditArgs) -> Result<i32> {
    let Some(state_dir) = state_dir(args.state_dir) else {
        return Ok(2);
    };
    let audit = match audit::read(&state_dir) {
        Ok(a) => a.filter(args.cluster.as_deref(), args.run.as_deref(), args.last),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&audit)?);
    } else if audit.runs.is_empty() && audit.backup_actions.is_empty() && audit.notes.is_empty() {
        let filtered = args.cluster.is_some() || args.run.is_some();
        println!(
            "no runbook runs in {}{}",
            state_dir.display(),
            if filtered { " match the filter" } else { "" }
        );
    } else {
        print!("{}", audit::format(&audit));
    }
    Ok(0)
}
