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
    env: EnvArgs,
    /// Address of the HTTP server (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:13000")]
    listen: SocketAddr,
    /// Node id (default: host name and a random suffix).
    #[arg(long)]
    node_id: Option<String>,
    /// App version this node reports and migrates to.
    #[arg(long, default_value = runtime::APP_VERSION)]
    app_version: String,
    /// Registry heartbeat interval in milliseconds (the record lives three).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    heartbeat_ms: u64,
    /// Worker-ID lease TTL in milliseconds (renewed every third of it).
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    lease_ttl_ms: u64,
    /// Seconds in-flight requests may take to finish on shutdown.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
}

pub async fn run(args: NodeArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
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
        ..NodeOptions::default()
    };
    match runtime::run(opts, config, shutdown_signal()).await {
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
