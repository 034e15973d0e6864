//! `clusterops exporter`: serve the cluster's snapshot as Prometheus
//! metrics on `/metrics` (and `/healthz`) until SIGTERM or SIGINT.

use super::EnvArgs;
use clusterops::exporter::{Exporter, ExporterOptions, serve};
use color_eyre::eyre::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ExporterArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Address to serve /metrics and /healthz on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    listen: SocketAddr,
    /// Serve a snapshot read less than this many milliseconds ago again
    /// instead of reading Redis anew (0: only concurrent scrapes share a read).
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    cache_ms: u64,
    /// Give up a snapshot read after this many seconds: the scrape answers
    /// clusterops_up 0 (keep it below Prometheus's scrape_timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=300))]
    read_timeout: u64,
}

pub async fn run(args: ExporterArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: --listen {}: {e}", args.listen);
            return Ok(2);
        }
    };
    let local = listener.local_addr()?;
    let exporter = Arc::new(Exporter::new(
        config,
        ExporterOptions {
            cache: Duration::from_millis(args.cache_ms),
            read_timeout: Duration::from_secs(args.read_timeout),
        },
    ));
    tracing::info!(address = %local, "exporter serving http://{local}/metrics");
    serve(listener, exporter, super::node::shutdown_signal()).await?;
    Ok(0)
}
