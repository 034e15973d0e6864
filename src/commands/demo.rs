//! `clusterops demo`: three reference nodes in this process on shared
//! memory adapters, a synthetic workload, and the console on them; needs no
//! service at all (read-only: no action); `--redis URL` runs it on a real
//! Redis with node processes, the live inspector and the actions.

use super::console::parse_interval;
use clusterops::console::live::InspectorSource;
use clusterops::console::theme::Theme;
use clusterops::console::{self as ui, ConsoleOptions};
use clusterops::demo::{DemoCluster, RedisDemo};
use clusterops::operate::{LiveActions, default_audit_path, operator};
use color_eyre::eyre::Result;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How often to read the demo cluster: `1s`, `500ms`.
    #[arg(long, default_value = "1s", value_parser = parse_interval, value_name = "DURATION")]
    refresh: Duration,
    /// Colour theme: `default` or `mono` (the default is `mono` when NO_COLOR is set).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Run the demo on this Redis instead: three `clusterops node` child
    /// processes in a temporary namespace (deleted on exit), the live
    /// inspector, and the console's actions.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Log file (default: $XDG_STATE_HOME/clusterops/console.log).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

pub async fn run(args: DemoArgs) -> Result<i32> {
    let theme = match Theme::choose(args.theme.as_deref(), Theme::no_color_env()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --theme: {e}");
            return Ok(2);
        }
    };
    if let Some(url) = &args.redis {
        return run_on_redis(url, args.refresh, theme).await;
    }
    let cluster = match DemoCluster::start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the demo cluster did not start: {e}");
            return Ok(2);
        }
    };
    let options = ConsoleOptions {
        read_only: true,
        refresh: args.refresh,
        theme,
        source_label: "demo: 3 in-process nodes, memory adapters".into(),
        config: None,
    };
    let result = ui::run(options, Arc::new(cluster.source()), None).await;
    cluster.stop().await;
    result?;
    Ok(0)
}

async fn run_on_redis(url: &str, refresh: Duration, theme: Theme) -> Result<i32> {
    // One line for a wrong URL (not one per adapter variable it would feed).
    if let Err(e) = clusterops::config::parse_redis_url(url) {
        eprintln!(
            "error: --redis {:?}: {e}; expected redis://[user:password@]host[:port][/db] or rediss://…",
            clusterops::config::mask_url_text(url)
        );
        return Ok(2);
    }
    let demo = match RedisDemo::start(url).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: the demo cluster did not start: {e}");
            return Ok(2);
        }
    };
    let config = demo.config().clone();
    let actions = LiveActions::new(config.clone(), operator(), default_audit_path());
    let options = ConsoleOptions {
        read_only: false,
        refresh,
        theme,
        source_label: format!("demo: 3 node processes on {}", config.namespace.name()),
        config: Some(config.clone()),
    };
    let result = ui::run(
        options,
        Arc::new(InspectorSource::new(config)),
        Some(Arc::new(actions)),
    )
    .await;
    demo.stop().await;
    result?;
    Ok(0)
}
