//! `clusterops console`: the operations console, live (the inspector, and
//! actions unless `--read-only`) or over a saved snapshot (`--snapshot
//! FILE`, read-only); `--runbook runbook.toml` drives upgrades from its
//! Runbook view.

use super::EnvArgs;
use clusterops::console::live::InspectorSource;
use clusterops::console::run_feed::RunFeed;
use clusterops::console::runbook_driver::RunDriver;
use clusterops::console::source::{FileSource, SnapshotSource};
use clusterops::console::theme::Theme;
use clusterops::console::{self as ui, ConsoleOptions};
use clusterops::operate::ClusterActions;
use clusterops::operate::{LiveActions, default_audit_path, operator};
use clusterops::runbook::RunbookConfig;
use clusterops::runbook::live::RedisClusterOps;
use color_eyre::eyre::Result;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// The cluster's .env file (the one the nodes use); the process
    /// environment overrides it. Give it more than once for several
    /// clusters, switched with `:ctx NAME` (each named after its file).
    #[arg(long, value_name = "PATH")]
    env_file: Vec<PathBuf>,
    /// Several clusters from a TOML file: `[contexts]` then `name =
    /// "file.env"` lines (paths relative to the file); `:ctx NAME` switches.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["env_file", "snapshot", "runbook"])]
    contexts: Option<PathBuf>,
    /// Offer no action at all: look only.
    #[arg(long)]
    read_only: bool,
    /// How often to read the cluster: `2s`, `500ms`, `1m`.
    #[arg(long, default_value = "2s", value_parser = parse_interval, value_name = "DURATION")]
    refresh: Duration,
    /// Colour theme: `default` or `mono` (the default is `mono` when NO_COLOR is set).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Show a saved `clusterops status --json` instead of the live cluster
    /// (read-only; re-read at every refresh).
    #[arg(long, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// Log file (default: $XDG_STATE_HOME/clusterops/console.log).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Where the runbook's local journal is, for the Runbook view (default:
    /// $XDG_STATE_HOME/clusterops, else ~/.local/state/clusterops).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Drive upgrades from the Runbook view with this runbook configuration
    /// (see assets/runbook.example.toml): U starts one, C continues, B rolls
    /// back, A aborts, I interrupts; questions open dialogs.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["read_only", "snapshot"])]
    runbook: Option<PathBuf>,
}

/// The contexts named on the command line: `(name, env file)` from
/// `--contexts FILE`, or from `--env-file` given more than once (each
/// named after its file's stem, `prod.env` → `prod`); empty for one
/// cluster. The error is one line.
fn context_files(args: &ConsoleArgs) -> Result<Vec<(String, PathBuf)>, String> {
    if let Some(path) = &args.contexts {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--contexts: cannot read {}: {e}", path.display()))?;
        return ui::contexts::parse_contexts_file(path, &text)
            .map_err(|e| format!("--contexts: {e}"));
    }
    if args.env_file.len() < 2 {
        return Ok(Vec::new());
    }
    if args.runbook.is_some() {
        return Err("--runbook drives one cluster: give one --env-file with it".into());
    }
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for path in &args.env_file {
        let stem = path.file_stem().map_or_else(
            || "cluster".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut name = stem.clone();
        let mut n = 2;
        while out.iter().any(|(other, _)| *other == name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        out.push((name, path.clone()));
    }
    Ok(out)
}

/// One context per env file: its inspector and its actions, all checked
/// before the console starts (each wrong variable on its own line).
fn load_contexts(files: Vec<(String, PathBuf)>) -> Result<ui::contexts::Contexts, i32> {
    let mut list = Vec::new();
    for (name, path) in files {
        let env = EnvArgs {
            env_file: Some(path.clone()),
        };
        let Some(config) = env.load_config() else {
            eprintln!("error: context {name} ({}): see above", path.display());
            return Err(2);
        };
        let actions = LiveActions::new(config.clone(), operator(), default_audit_path());
        list.push(ui::contexts::Context {
            name,
            source: Arc::new(InspectorSource::new(config.clone())),
            actions: Some(Arc::new(actions)),
            config: Some(config),
        });
    }
    ui::contexts::Contexts::new(list).ok_or(2)
}

/// `2s`, `500ms`, `1m`, or a number of seconds; at least 100 ms.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use 2s, 500ms or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}, use ms, s or m")),
    };
    if !(0.1..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: use between 100ms and 60m"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Send `tracing` to the log file; the console owns the screen.
pub fn init_file_tracing(log_file: Option<PathBuf>, filter: tracing_subscriber::EnvFilter) {
    let path = log_file.unwrap_or_else(ui::default_log_path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init(),
        Err(e) => eprintln!(
            "warning: no console log: cannot open {}: {e}",
            path.display()
        ),
    }
}

pub async fn run(args: ConsoleArgs) -> Result<i32> {
    let theme = match Theme::choose(args.theme.as_deref(), Theme::no_color_env()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --theme: {e}");
            return Ok(2);
        }
    };
    let files = match context_files(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if !files.is_empty() {
        let contexts = match load_contexts(files) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        let options = ConsoleOptions {
            read_only: args.read_only,
            refresh: args.refresh,
            theme,
            source_label: format!("{} contexts", contexts.names().len()),
            config: None,
        };
        ui::run_contexts(options, contexts).await?;
        return Ok(0);
    }
    let env = EnvArgs {
        env_file: args.env_file.first().cloned(),
    };
    type Actions = Option<Arc<dyn ClusterActions>>;
    let (source, actions, label, config): (Arc<dyn SnapshotSource>, Actions, String, _) =
        match &args.snapshot {
            Some(path) => (
                Arc::new(FileSource::new(path)),
                None,
                format!("snapshot {}", path.display()),
                None,
            ),
            None => {
                let Some(config) = env.load_config() else {
                    return Ok(2);
                };
                // In --read-only the actions only list dead letters (reads).
                let actions = LiveActions::new(config.clone(), operator(), default_audit_path());
                (
                    Arc::new(InspectorSource::new(config.clone())),
                    Some(Arc::new(actions)),
                    format!("live {}", config.namespace.name()),
                    Some(config),
                )
            }
        };
    if config.is_none()
        && let Err(e) = source.fetch().await
    {
        eprintln!("error: {e}");
        return Ok(2);
    }
    let read_only = args.read_only || config.is_none();
    let options = ConsoleOptions {
        read_only,
        refresh: args.refresh,
        theme,
        source_label: label,
        config,
    };
    let state_dir = args
        .state_dir
        .clone()
        .or_else(clusterops::runbook::default_state_dir);
    let runbook = match (&args.runbook, &options.config) {
        (Some(path), Some(config)) => match runbook_driver(path, config, state_dir.clone()).await {
            Ok(d) => Some(Arc::new(d)),
            Err((code, msg)) => {
                eprintln!("error: {msg}");
                return Ok(code);
            }
        },
        _ => None,
    };
    // The Runbook view: the journal mirror of the live cluster, and the
    // local journal of this machine's runbook.
    let run_feed = options.config.as_ref().map(|c| {
        let journal = state_dir
            .as_ref()
            .map(|dir| clusterops::runbook::journal::journal_path(dir, c.namespace.name()));
        RunFeed::new(Some(c), journal)
    });
    ui::run_with(
        options,
        source,
        actions,
        ui::Extras {
            run_feed,
            runbook,
            runbook_hint: None,
        },
    )
    .await?;
    Ok(0)
}

/// The driver of `--runbook PATH`, checked as `clusterops upgrade` checks
/// its input; the error is an exit code and one line.
async fn runbook_driver(
    path: &std::path::Path,
    config: &clusterops::config::Config,
    state_dir: Option<PathBuf>,
) -> Result<RunDriver, (i32, String)> {
    let Some(state_dir) = state_dir else {
        return Err((
            2,
            "no state directory: set HOME or XDG_STATE_HOME, or pass --state-dir".into(),
        ));
    };
    let rb = RunbookConfig::load(path).map_err(|e| (2, format!("--runbook: {e}")))?;
    if config.coordination_redis().is_none() {
        return Err((
            2,
            "--runbook: the cluster configuration has no Redis (REDIS_URL or a *_REDIS_URL): \
             a runbook needs the cluster's shared state"
                .into(),
        ));
    }
    if config.namespace.name() != rb.cluster.name {
        return Err((
            2,
            format!(
                "--runbook: the runbook configuration is for cluster {:?} but the env file \
                 says CLUSTER_NAME={}",
                rb.cluster.name, config.namespace
            ),
        ));
    }
    let ops = RedisClusterOps::connect(config.clone())
        .await
        .map_err(|e| (1, e.to_string()))?;
    Ok(RunDriver::new(rb, Arc::new(ops), state_dir).with_audit(default_audit_path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_intervals_read_like_durations() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("3"), Ok(Duration::from_secs(3)));
        assert!(parse_interval("10ms").is_err());
        assert!(parse_interval("2h").is_err());
        assert!(parse_interval("fast").is_err());
    }
}
