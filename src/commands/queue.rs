//! `clusterops queue pause NAME --reason TEXT | resume NAME | status
//! [NAME]`: pause and resume a queue's consumers on every node (the flag
//! `<ns>:queue:{<queue>}:paused`, read by every node's consumer loop),
//! changed through [`clusterops::operate::LiveActions`] and recorded in the
//! same audit file as the console's actions.

use super::EnvArgs;
use super::audited::{self, AuditedArgs};
use clusterops::adapters::queue::{self, MessageQueue, PauseFlag};
use clusterops::clock::{datetime, now_ms};
use clusterops::config::{Config, QueueAdapter};
use clusterops::console::format::age;
use clusterops::inspect::{Inspector, Source};
use clusterops::operate::ClusterActions;
use color_eyre::eyre::Result;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Pause the queue's consumers on every node: running handlers finish,
    /// nothing new is taken until `resume`.
    Pause(PauseArgs),
    /// Let the queue's consumers take messages again.
    Resume(ResumeArgs),
    /// Every queue (or one) with its backlog and whether it is paused.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    audited: AuditedArgs,
    /// The queue.
    #[arg(value_name = "NAME")]
    name: String,
    /// Why, in one line: shown in `queue status`, the console and the audit.
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    audited: AuditedArgs,
    /// The queue.
    #[arg(value_name = "NAME")]
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Only this queue.
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// Print JSON: one object per queue (`name`, `paused`, `waiting`, …).
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: QueueCommand) -> Result<i32> {
    match cmd {
        QueueCommand::Pause(args) => pause(args).await,
        QueueCommand::Resume(args) => resume(args).await,
        QueueCommand::Status(args) => status(args).await,
    }
}

/// The configuration, after checking the queue name and that this
/// backend can pause (one `error:` line and the exit code otherwise).
fn load(env: &EnvArgs, name: &str) -> std::result::Result<Config, i32> {
    let config = env.load_config().ok_or(2)?;
    if let Err(e) = queue::validate_queue_name(name) {
        eprintln!("error: queue: {e}");
        return Err(2);
    }
    if let QueueAdapter::Rabbitmq(_) = config.queue {
        eprintln!(
            "error: queue: pausing needs the Redis queue (QUEUE_ADAPTER=redis): the flag lives \
             in Redis, and RabbitMQ consumers do not read it"
        );
        return Err(2);
    }
    if let QueueAdapter::Memory = config.queue {
        eprintln!(
            "error: queue: QUEUE_ADAPTER is memory: each node's queue is its own, there is no \
             shared queue to pause from here"
        );
        return Err(2);
    }
    Ok(config)
}

async fn adapter(config: &Config) -> std::result::Result<Arc<dyn MessageQueue>, i32> {
    let opts = queue::QueueOptions {
        reconnect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    queue::from_config_with(config, "cli", opts)
        .await
        .map_err(|e| {
            eprintln!("error: queue: {e}");
            1
        })
}

fn describe(name: &str, flag: &Option<PauseFlag>, now: u64) -> String {
    match flag {
        None => format!("queue {name}: active"),
        Some(f) => format!(
            "queue {name}: paused since {} ({} ago) by {}: {}",
            datetime(f.since_ms),
            age(now.saturating_sub(f.since_ms)),
            f.by,
            f.reason
        ),
    }
}

async fn pause(args: PauseArgs) -> Result<i32> {
    let reason = args.reason.trim();
    if reason.is_empty() || reason.contains('\n') {
        eprintln!("error: --reason: give one non-empty line (it is shown wherever the pause is)");
        return Ok(2);
    }
    let config = match load(&args.audited.env, &args.name) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let live = args.audited.live_actions(config);
    let outcome = live.pause_queue(&args.name, reason).await;
    Ok(audited::report("queue", &live, outcome))
}

async fn resume(args: ResumeArgs) -> Result<i32> {
    let config = match load(&args.audited.env, &args.name) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let q = match adapter(&config).await {
        Ok(q) => q,
        Err(code) => return Ok(code),
    };
    match q.paused(&args.name).await {
        Ok(None) => {
            println!(
                "queue {}: active\nnothing done: it was not paused",
                args.name
            );
            return Ok(0);
        }
        Ok(flag) => println!("was {}", describe(&args.name, &flag, now_ms())),
        // An unreadable flag pauses the consumers: resuming deletes it.
        Err(e) => println!("was paused (unreadable flag: {e})"),
    }
    let live = args.audited.live_actions(config);
    let outcome = live.resume_queue(&args.name).await;
    Ok(audited::report("queue", &live, outcome))
}

async fn status(args: StatusArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let snap = Inspector::new(config).snapshot().await;
    let queues = match &snap.queues {
        Source::Ok(q) => q,
        Source::Unavailable { source, reason } => {
            eprintln!("error: queue: cannot read the queues ({source}): {reason}");
            return Ok(1);
        }
        Source::NotConfigured => {
            eprintln!("error: queue: QUEUE_ADAPTER is memory: no shared queue to show");
            return Ok(2);
        }
    };
    let shown: Vec<_> = queues
        .iter()
        .filter(|q| args.name.as_deref().is_none_or(|n| n == q.name))
        .collect();
    if let Some(name) = &args.name
        && shown.is_empty()
    {
        eprintln!("error: queue: no queue {name} in {}", snap.cluster);
        return Ok(1);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(0);
    }
    let now = now_ms();
    for q in shown {
        println!(
            "{}  waiting {} in flight {} oldest {} consumers {}",
            describe(&q.name, &q.paused, now),
            q.waiting,
            q.in_flight,
            q.oldest_age_ms.map_or_else(|| "-".into(), age),
            q.consumers
        );
    }
    Ok(0)
}
