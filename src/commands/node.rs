//! `clusterops node`: run one reference app node until SIGTERM or SIGINT.

use super::EnvArgs;
use clusterops::node::heartbeat::HeartbeatTiming;
use clusterops::node::runtime::{self, NodeOptions};
use color_eyre::eyre::Result;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub(super) env: EnvArgs,
    /// Address of the HTTP server (port 0: any free port). Under
    /// CLUSTER_MODE every process shares it (SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:13000")]
    pub(super) listen: SocketAddr,
    /// Node id (default: host name and a random suffix).
    #[arg(long)]
    pub(super) node_id: Option<String>,
    /// App version this node reports and migrates to.
    #[arg(long, default_value = runtime::APP_VERSION)]
    pub(super) app_version: String,
    /// Registry heartbeat interval in milliseconds (the record lives three).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub(super) heartbeat_ms: u64,
    /// Worker-ID lease TTL in milliseconds (renewed every third of it).
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub(super) lease_ttl_ms: u64,
    /// Seconds in-flight requests may take to finish on shutdown.
    #[arg(long, default_value_t = 10)]
    pub(super) drain_timeout: u64,
    /// Under CLUSTER_MODE: the first port of the processes' own addresses
    /// (process i listens on it + i; 0: any free port). Default: the
    /// --listen port + 1.
    #[arg(long, value_name = "PORT")]
    pub(super) process_port_base: Option<u16>,
    /// Set by the CLUSTER_MODE supervisor on its processes: `INDEX/COUNT`.
    #[arg(long, hide = true, requires = "shared_listen")]
    process: Option<String>,
    /// Set by the CLUSTER_MODE supervisor: the host's shared address.
    #[arg(long, hide = true, requires = "process")]
    shared_listen: Option<SocketAddr>,
}

/// `verbose`: the `-v` count, handed on to CLUSTER_MODE's processes.
pub async fn run(args: NodeArgs, verbose: u8) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let process = match (&args.process, args.shared_listen) {
        (Some(slot), Some(shared)) => match parse_slot(slot, shared) {
            Ok(slot) => Some(slot),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(2);
            }
        },
        _ => None,
    };
    if process.is_none()
        && let Some(count) = config.cluster_mode.processes()
    {
        return super::node_cluster::supervise(&args, count, verbose).await;
    }
    let watch_parent = process.is_some();
    let opts = NodeOptions {
        listen: args.listen,
        node_id: args.node_id,
        app_version: Some(args.app_version),
        timing: HeartbeatTiming {
            interval: Duration::from_millis(args.heartbeat_ms),
            maintenance_poll: Duration::from_millis((args.heartbeat_ms / 4).clamp(100, 500)),
        },
        drain_timeout: Duration::from_secs(args.drain_timeout),
        lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        process,
        ..NodeOptions::default()
    };
    let shutdown = async move {
        if watch_parent {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = super::node_cluster::supervisor_gone() => {}
            }
        } else {
            shutdown_signal().await;
        }
    };
    match runtime::run(opts, config, shutdown).await {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e}");
            // A wrong option (or a node id a live node holds) is a usage
            // error (2), like clap's own; anything else is the node failing (1).
            Ok(
                if matches!(
                    e,
                    runtime::NodeError::Option(_) | runtime::NodeError::DuplicateId(_)
                ) {
                    2
                } else {
                    1
                },
            )
        }
    }
}

/// SIGTERM or SIGINT.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `--process INDEX/COUNT` and `--shared-listen` as the node's slot.
fn parse_slot(
    slot: &str,
    shared: SocketAddr,
) -> std::result::Result<clusterops::node::supervisor::ProcessSlot, String> {
    let parsed = slot
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<u16>().ok()?, n.parse::<u16>().ok()?)));
    match parsed {
        Some((index, count)) if index < count => Ok(clusterops::node::supervisor::ProcessSlot {
            index,
            count,
            shared_addr: shared.to_string(),
        }),
        _ => Err(format!(
            "--process {slot:?}: expected INDEX/COUNT with INDEX below COUNT"
        )),
    }
}
