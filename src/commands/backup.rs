//! `clusterops backup`: list, verify, prune and restore the database
//! backups the upgrade runbook made (logic in `runbook::backups`).
//! Exit codes: list 0; verify 0 all ok, 1 some have no record, 2 a mismatch
//! or an unreadable file; prune and restore 0 done, 1 declined or refused
//! (an unfinished run, nodes up) or failed; 2 bad input everywhere.

use super::EnvArgs;
use super::upgrade::{resolve_backup_url, state_dir};
use clusterops::clock::{datetime, now_ms};
use clusterops::runbook::backup::Database;
use clusterops::runbook::backups::{self, BackupFile, BackupsError, Verdict};
use clusterops::runbook::live::RedisClusterOps;
use clusterops::runbook::{Actor, RunbookConfig, audit};
use color_eyre::eyre::Result;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Every backup in the backup folder, newest first, with the run that made it.
    List(ListArgs),
    /// Recompute each backup's sha256 and compare it with the journal's.
    Verify(VerifyArgs),
    /// Delete old backups (never the newest, never one an unfinished run references).
    Prune(PruneArgs),
    /// Restore a backup outside a run (nodes stopped, no unfinished run).
    Restore(RestoreArgs),
}

/// Where the backups and journals are.
#[derive(Debug, Clone, clap::Args)]
pub struct Where {
    /// The runbook configuration (its [cluster] name and [backup] dir).
    #[arg(long, value_name = "PATH", default_value = "runbook.toml")]
    config: PathBuf,
    /// The state directory (default as for `upgrade`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    at: Where,
    /// Print the backups as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["file", "all"])))]
pub struct VerifyArgs {
    /// A backup file (a path, or a name in the backup folder).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Every backup in the backup folder.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    at: Where,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).multiple(true).args(["keep", "older_than"])))]
pub struct PruneArgs {
    /// Keep the newest N backups.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Delete backups older than this (30d, 12h, 90m); with --keep both must hold.
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    at: Where,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (a path, or a name in the backup folder).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Do not ask to type the database name.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    env: EnvArgs,
}

/// The configuration, state directory and the cluster's audit, or the exit
/// code after printing why not.
fn load(at: &Where) -> Result<(RunbookConfig, PathBuf, audit::Audit), i32> {
    let state_dir = state_dir(at.state_dir.clone()).ok_or(2)?;
    let config = RunbookConfig::load(&at.config).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let audit = audit::read(&state_dir).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let audit = audit.filter(Some(&config.cluster.name), None, None);
    Ok((config, state_dir, audit))
}

fn fail(e: &BackupsError) -> i32 {
    eprintln!("error: {e}");
    2
}

fn describe(b: &BackupFile) -> String {
    let run = match &b.run_id {
        Some(id) => format!(
            "run {id} ({} -> {}){}",
            b.previous_version.as_deref().unwrap_or("?"),
            b.target_version.as_deref().unwrap_or("?"),
            if b.run_unfinished { ", UNFINISHED" } else { "" }
        ),
        None => "run unknown".to_string(),
    };
    let sum = if b.record.is_some() {
        "sha256 recorded"
    } else {
        "no checksum recorded"
    };
    format!(
        "{}  {} bytes  {}  {run}  {sum}",
        b.file.display(),
        b.bytes,
        datetime(b.modified_ms)
    )
}

/// Ask on stdin; true when the answer is `expected` (end of input: no).
fn ask(question: &str, expected: &[&str]) -> bool {
    print!("{question} ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => expected.contains(&line.trim()),
        _ => false,
    }
}

pub async fn run(cmd: BackupCommand) -> Result<i32> {
    match cmd {
        BackupCommand::List(a) => list(a),
        BackupCommand::Verify(a) => Ok(verify(a).await),
        BackupCommand::Prune(a) => Ok(prune(a)),
        BackupCommand::Restore(a) => restore(a).await,
    }
}

fn list(args: ListArgs) -> Result<i32> {
    let (config, state_dir, audit) = match load(&args.at) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let dir = backups::backup_dir(&config, &state_dir);
    let found = match backups::list(&dir, &audit) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else if found.is_empty() {
        println!("no backups in {}", dir.display());
    } else {
        for b in &found {
            println!("{}", describe(b));
        }
    }
    Ok(0)
}

async fn verify(args: VerifyArgs) -> i32 {
    let (config, state_dir, audit) = match load(&args.at) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let dir = backups::backup_dir(&config, &state_dir);
    let files = match &args.file {
        Some(f) => backups::find(f, &dir, &audit).map(|b| vec![b]),
        None => backups::list(&dir, &audit),
    };
    let files = match files {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    if files.is_empty() {
        println!("no backups in {}", dir.display());
    }
    let mut code = 0;
    for b in &files {
        let verdict = backups::verify(b).await;
        let file = b.file.display();
        match &verdict {
            Verdict::Ok => println!("ok         {file}"),
            Verdict::NoRecord => println!("no record  {file}: no journal records its checksum"),
            Verdict::Mismatch(why) => {
                println!("MISMATCH   {file}: {why}; do not restore it")
            }
            Verdict::Unreadable(why) => println!("UNREADABLE {file}: {why}"),
        }
        code = code.max(verdict.code());
    }
    code
}

fn prune(args: PruneArgs) -> i32 {
    let older_than = match args.older_than.as_deref().map(backups::parse_age) {
        Some(Err(e)) => {
            eprintln!("error: --older-than {e}");
            return 2;
        }
        Some(Ok(ms)) => Some(ms),
        None => None,
    };
    let (config, state_dir, audit) = match load(&args.at) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let dir = backups::backup_dir(&config, &state_dir);
    let found = match backups::list(&dir, &audit) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let doomed = backups::prune_plan(&found, args.keep, older_than, now_ms());
    for b in found.iter().filter(|b| b.run_unfinished) {
        println!(
            "keeping {}: run {} is unfinished and may restore it",
            b.file.display(),
            b.run_id.as_deref().unwrap_or("?")
        );
    }
    if doomed.is_empty() {
        println!(
            "nothing to delete ({} backups in {})",
            found.len(),
            dir.display()
        );
        return 0;
    }
    for b in &doomed {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "to delete"
        };
        println!("{verb} {}", describe(b));
    }
    if args.dry_run {
        return 0;
    }
    if !args.yes
        && !ask(
            &format!("delete {} backup(s)? [y/N]", doomed.len()),
            &["y", "yes"],
        )
    {
        println!("nothing deleted");
        return 1;
    }
    let why = match (args.keep, &args.older_than) {
        (Some(k), Some(age)) => format!("backup prune --keep {k} --older-than {age}"),
        (Some(k), None) => format!("backup prune --keep {k}"),
        (None, Some(age)) => format!("backup prune --older-than {age}"),
        (None, None) => "backup prune".to_string(),
    };
    let by = Actor::current();
    for b in &doomed {
        if let Err(e) = backups::delete(&state_dir, &config.cluster.name, b, &by, &why) {
            eprintln!("error: {e}");
            return 1;
        }
        println!("deleted {}", b.file.display());
    }
    0
}

async fn restore(args: RestoreArgs) -> Result<i32> {
    let (mut config, state_dir, audit) = match load(&args.at) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let Some(cluster_config) = args.env.load_config() else {
        return Ok(2);
    };
    if !super::upgrade::same_cluster(&config, &cluster_config) {
        return Ok(2);
    }
    if config.backup.kind == "none" {
        eprintln!(
            "error: [backup] kind = \"none\": no database to restore into; set [backup] kind and url"
        );
        return Ok(2);
    }
    if let Err(e) = resolve_backup_url(&mut config, &args.env) {
        eprintln!("error: {e}");
        return Ok(2);
    }
    let url = match (&config.backup.url, &config.backup.url_env) {
        (Some(u), _) => u.clone(),
        (None, Some(var)) => std::env::var(var).unwrap_or_default(),
        (None, None) => String::new(),
    };
    let db = match Database::from_url(&url) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let dir = backups::backup_dir(&config, &state_dir);
    let file = match backups::find(&args.file, &dir, &audit) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&e)),
    };
    let cluster = config.cluster.name.clone();
    if let Err(e) = backups::refuse_if_run_unfinished(&state_dir, &cluster) {
        eprintln!("error: {e}");
        return Ok(1);
    }
    let ops = match RedisClusterOps::connect(cluster_config).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    if let Err(e) = backups::refuse_if_nodes_up(&ops).await {
        eprintln!("error: {e}");
        return Ok(1);
    }
    match backups::verify(&file).await {
        Verdict::Ok => println!("{}: size and sha256 match the journal", describe(&file)),
        Verdict::NoRecord => {
            eprintln!(
                "error: {}: no journal records its size and sha256, so it cannot be checked; \
                 restore it by hand (pg_restore / mysql) if you trust it",
                file.file.display()
            );
            return Ok(2);
        }
        Verdict::Mismatch(why) => {
            eprintln!(
                "error: {} does not match the journal ({why}); it was changed or cut: do not \
                 restore it",
                file.file.display()
            );
            return Ok(2);
        }
        Verdict::Unreadable(why) => {
            eprintln!("error: {why}");
            return Ok(2);
        }
    }
    if !args.yes {
        let question = format!(
            "This replaces the contents of {} with {}. Type the database name ({}) to go on:",
            db.describe(),
            file.file.display(),
            db.name
        );
        if !ask(&question, &[db.name.as_str()]) {
            eprintln!("error: not confirmed (the database name was not typed); nothing restored");
            return Ok(1);
        }
    }
    let out = |l: &str| println!("  {l}");
    match backups::restore(&state_dir, &cluster, &db, &file, &Actor::current(), &out).await {
        Ok(()) => {
            println!("restored {} into {}", file.file.display(), db.describe());
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}
