//! The command line: one module per subcommand. Each returns the process
//! exit code; errors are reported by `color-eyre` at the edge.

mod audited;
mod backup;
mod bench;
mod check;
mod completions;
mod config;
mod console;
mod demo;
mod exporter;
mod id;
mod maintenance;
mod node;
mod node_cluster;
mod queue;
mod status;
mod upgrade;

use clap::{Parser, Subcommand};
use color_eyre::eyre::Result;
use std::path::PathBuf;

/// Run one application as a cluster of identical nodes.
#[derive(Debug, Parser)]
#[command(name = "clusterops", version, about)]
pub struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command that reads the cluster configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvArgs {
    /// The cluster's .env file (the one the nodes use). The process
    /// environment overrides it.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

impl EnvArgs {
    /// The validated configuration, or `None` after printing each wrong
    /// variable on its own `error:` line (the caller exits 2).
    pub fn load_config(&self) -> Option<clusterops::config::Config> {
        match clusterops::config::Config::load(self.env_file.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("error: {line}");
                }
                None
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the validated configuration (secrets masked) and its fingerprint.
    Config(config::ConfigArgs),
    /// Run one reference app node until SIGTERM/SIGINT.
    Node(node::NodeArgs),
    /// Snowflake IDs: decode one into its time, worker ID and sequence.
    #[command(subcommand)]
    Id(id::IdCommand),
    /// The operations console: a terminal UI over the cluster (or a saved snapshot).
    Console(console::ConsoleArgs),
    /// Three nodes in this process on memory adapters, a synthetic workload, and the console on them (no service needed).
    Demo(demo::DemoArgs),
    /// The cluster at a glance: nodes, worker IDs, locks, streams, queues, servers.
    Status(status::StatusArgs),
    /// The deployment guide's preflight: pass/warn/fail per check; exit 0, 1 or 2.
    Check(check::CheckArgs),
    /// Serve the cluster's snapshot as Prometheus metrics on /metrics (and /healthz).
    Exporter(exporter::ExporterArgs),
    /// Shell completions (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(completions::CompletionsArgs),
    /// The man page (roff) on stdout: `clusterops man > clusterops.1`.
    Man,
    /// The guided upgrade runbook: --plan, run, --resume, --abort.
    Upgrade(upgrade::UpgradeArgs),
    /// The runbook journals: who ran which upgrade, each step and decision.
    Audit(upgrade::AuditArgs),
    /// The cluster's maintenance flag (every node answers 503): on --reason TEXT, off, status.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Pause and resume a queue's consumers on every node: pause NAME --reason TEXT, resume NAME, status.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// The runbook's database backups: list, verify, prune, restore.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Micro-benchmarks against the real services; each prints one JSON object.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Set up `tracing`: on stderr, except for the console, which owns the
/// screen and logs to a file.
pub fn init_tracing(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn,clusterops=info",
        1 => "info,clusterops=debug",
        _ => "debug,clusterops=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    match &cli.command {
        Command::Console(args) => return console::init_file_tracing(args.log_file.clone(), filter),
        Command::Demo(args) => return console::init_file_tracing(args.log_file.clone(), filter),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Commands that only print (status, check, config, audit, ...) die quietly
/// when their reader goes away (`clusterops status --json | head`) instead
/// of panicking on a broken pipe, as Unix filters do. The node, the
/// console, the demo and the runbook keep SIGPIPE ignored: they write to
/// sockets and child processes, where a closed peer is an error to handle.
pub fn quiet_broken_pipe(cli: &Cli) {
    let printer = matches!(
        cli.command,
        Command::Config(_)
            | Command::Id(_)
            | Command::Status(_)
            | Command::Check(_)
            | Command::Completions(_)
            | Command::Man
            | Command::Audit(_)
            | Command::Maintenance(maintenance::MaintenanceCommand::Status(_))
            | Command::Queue(queue::QueueCommand::Status(_))
            | Command::Backup(backup::BackupCommand::List(_) | backup::BackupCommand::Verify(_))
    );
    if printer {
        // SAFETY: SIG_DFL installs no handler, so no code runs in signal
        // context; the disposition is process-wide and set once at start-up.
        // No safe API sets a signal back to its default, hence the allow.
        #[allow(unsafe_code)]
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
    }
}

/// Dispatch to the subcommand; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Config(args) => config::run(args),
        Command::Node(args) => node::run(args, cli.verbose).await,
        Command::Id(cmd) => id::run(cmd),
        Command::Console(args) => console::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Exporter(args) => exporter::run(args).await,
        Command::Completions(args) => completions::completions(args),
        Command::Man => completions::man(),
        Command::Upgrade(args) => upgrade::run(args).await,
        Command::Audit(args) => upgrade::run_audit(args),
        Command::Maintenance(cmd) => maintenance::run(cmd).await,
        Command::Queue(cmd) => queue::run(cmd).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
    }
}
