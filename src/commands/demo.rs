//! `clusterops demo`: three reference nodes in this process on shared
//! memory adapters, a synthetic workload, and the console on them; needs no
//! service at all. No action on the cluster, but the guided upgrade runs
//! from the Runbook view (U) on the in-process nodes, with its journal and
//! backups in a fresh state directory printed on exit. `--redis URL` runs
//! it on a real Redis with node processes, the live inspector and the
//! actions (no upgrade there).

use super::console::parse_interval;
use clusterops::console::live::InspectorSource;
use clusterops::console::run_feed::RunFeed;
use clusterops::console::runbook_driver::RunDriver;
use clusterops::console::theme::Theme;
use clusterops::console::{self as ui, ConsoleOptions};
use clusterops::demo::upgrade::{HINT, REDIS_HINT, journal_path};
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
    /// Where the demo's upgrade journal and backups go (default: a new
    /// folder in the temp directory, printed on exit); `clusterops audit
    /// --state-dir DIR` lists the runs.
    #[arg(long, value_name = "DIR", conflicts_with = "redis")]
    state_dir: Option<PathBuf>,
}

/// A new state directory for one demo: `<temp>/clusterops-demo-<time>-<random>`.
fn new_state_dir() -> std::io::Result<PathBuf> {
    let stamp = clusterops::clock::now_secs();
    let dir = std::env::temp_dir().join(format!(
        "clusterops-demo-{stamp}-{:04x}",
        rand::random::<u16>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
    let state_dir = match args
        .state_dir
        .clone()
        .map_or_else(new_state_dir, |d| std::fs::create_dir_all(&d).map(|()| d))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: --state-dir: cannot create the demo's state directory: {e}");
            return Ok(2);
        }
    };
    let cluster = match DemoCluster::start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the demo cluster did not start: {e}");
            return Ok(2);
        }
    };
    let upgrade = match cluster.upgrade() {
        Ok(u) => u,
        Err(e) => {
            cluster.stop().await;
            eprintln!("error: the demo's runbook: {e}");
            return Ok(2);
        }
    };
    let driver = RunDriver::new(upgrade.config, upgrade.cluster, state_dir.clone())
        .with_executor(upgrade.executor)
        .with_store_backup(upgrade.store)
        .with_suggested_version()
        .with_audit(state_dir.join("console-audit.jsonl"));
    let journal = journal_path(&state_dir);
    // No action on the cluster (actions: none), but not read-only: the
    // Runbook view drives the upgrade.
    let options = ConsoleOptions {
        read_only: false,
        refresh: args.refresh,
        theme,
        source_label: "demo: 3 in-process nodes, memory adapters".into(),
        config: None,
    };
    let extras = ui::Extras {
        run_feed: Some(RunFeed::new(None, Some(journal.clone()))),
        runbook: Some(Arc::new(driver)),
        runbook_hint: Some(HINT.to_string()),
    };
    let result = ui::run_with(options, Arc::new(cluster.source()), None, extras).await;
    cluster.stop().await;
    let unfinished = clusterops::runbook::journal::read(&journal)
        .ok()
        .and_then(|entries| clusterops::runbook::view::last_run(&entries))
        .filter(|run| run.finished.is_none());
    if let Some(run) = unfinished {
        println!(
            "the demo's run {} (upgrade to {}) did not finish: its nodes stopped with the demo; \
             a new `clusterops demo` starts them on {} again",
            run.run_id,
            run.target_version,
            clusterops::demo::DEMO_VERSION
        );
    }
    if journal.exists() {
        println!(
            "the demo's upgrade journal: {}\nits runs: clusterops audit --state-dir {}",
            journal.display(),
            state_dir.display()
        );
    } else {
        println!(
            "no upgrade was run in the demo; its state directory was {}",
            state_dir.display()
        );
    }
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
    let extras = ui::Extras {
        run_feed: None,
        runbook: None,
        runbook_hint: Some(REDIS_HINT.to_string()),
    };
    let result = ui::run_with(
        options,
        Arc::new(InspectorSource::new(config)),
        Some(Arc::new(actions)),
        extras,
    )
    .await;
    demo.stop().await;
    result?;
    Ok(0)
}
