//! `clusterops maintenance on --reason TEXT | off | status`: the cluster's
//! maintenance flag from the command line (a leftover flag cleared without
//! `redis-cli`), changed through [`clusterops::operate::LiveActions`] and
//! recorded in the same audit file as the console's actions.

use super::EnvArgs;
use super::audited::{self, AuditedArgs};
use clusterops::adapters::redis_conn;
use clusterops::clock::datetime;
use clusterops::clock::now_ms;
use clusterops::config::Config;
use clusterops::console::format::age;
use clusterops::node::maintenance::{self, MaintenanceRead};
use clusterops::operate::ClusterActions;
use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCommand {
    /// Set the flag: every node answers 503 until it is cleared.
    On(OnArgs),
    /// Clear the flag: the nodes serve again.
    Off(AuditedArgs),
    /// Show the flag: who set it, why, since when.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct OnArgs {
    #[command(flatten)]
    audited: AuditedArgs,
    /// Why, in one line: shown on the nodes' 503 answers and in `status`.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Replace a flag someone else set (its reason and owner are lost).
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Print the flag as JSON (`{"kind":"clear"}`, `{"kind":"set",…}` or
    /// `{"kind":"unreadable",…}`).
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: MaintenanceCommand) -> Result<i32> {
    match cmd {
        MaintenanceCommand::On(args) => on(args).await,
        MaintenanceCommand::Off(args) => off(args).await,
        MaintenanceCommand::Status(args) => status(args).await,
    }
}

/// The flag as it is now, or the exit code after one `error:` line.
async fn read(env: &EnvArgs) -> Result<std::result::Result<(Config, MaintenanceRead), i32>> {
    let Some(config) = env.load_config() else {
        return Ok(Err(2));
    };
    let Some((var, url)) = config.coordination_redis() else {
        eprintln!(
            "error: maintenance: no Redis is configured: the flag lives in the coordination Redis \
             (set REDIS_URL, the one every node reads)"
        );
        return Ok(Err(2));
    };
    let mut conn = match redis_conn::connect(url).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: maintenance: {e} (check {var})");
            return Ok(Err(1));
        }
    };
    match maintenance::read(&mut conn, &config.namespace).await {
        Ok(flag) => Ok(Ok((config, flag))),
        Err(e) => {
            eprintln!(
                "error: maintenance: cannot read {} at {}: {}",
                maintenance::key(&config.namespace),
                url.masked(),
                redis_conn::describe(&e)
            );
            Ok(Err(1))
        }
    }
}

/// One line describing the flag.
fn describe(flag: &MaintenanceRead, now: u64) -> String {
    match flag {
        MaintenanceRead::Clear => "maintenance: off".to_string(),
        MaintenanceRead::Set(f) => format!(
            "maintenance: on since {} ({} ago) by {}: {}",
            datetime(f.since_ms),
            age(now.saturating_sub(f.since_ms)),
            f.by,
            f.reason
        ),
        MaintenanceRead::Unreadable { key, reason } => format!(
            "maintenance: on (unreadable key {key}: {reason}; nodes treat it as set: \
             `clusterops maintenance off` deletes it)"
        ),
    }
}

async fn on(args: OnArgs) -> Result<i32> {
    let reason = args.reason.trim();
    if reason.is_empty() || reason.contains('\n') {
        eprintln!("error: --reason: give one non-empty line (it is shown on the 503 answers)");
        return Ok(2);
    }
    let (config, flag) = match read(&args.audited.env).await? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    if !matches!(flag, MaintenanceRead::Clear) && !args.replace {
        println!(
            "{}\nnothing done: it is already on (--replace sets your reason instead)",
            describe(&flag, now_ms())
        );
        return Ok(0);
    }
    let live = args.audited.live_actions(config);
    let outcome = live.set_maintenance(reason).await;
    Ok(audited::report("maintenance", &live, outcome))
}

async fn off(args: AuditedArgs) -> Result<i32> {
    let (config, flag) = match read(&args.env).await? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    if matches!(flag, MaintenanceRead::Clear) {
        println!("maintenance: off\nnothing done: it was not set");
        return Ok(0);
    }
    println!("was {}", describe(&flag, now_ms()));
    let live = args.live_actions(config);
    let outcome = live.clear_maintenance().await;
    Ok(audited::report("maintenance", &live, outcome))
}

async fn status(args: StatusArgs) -> Result<i32> {
    let (_, flag) = match read(&args.env).await? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&flag)?);
    } else {
        println!("{}", describe(&flag, now_ms()));
    }
    Ok(0)
}
