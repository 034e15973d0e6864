//! `clusterops check`: the deployment guide's preflight; exit 0 when all
//! pass, 1 with warnings, 2 with any failure.

use super::EnvArgs;
use clusterops::inspect::{CheckStatus, Inspector, check_allow, checks};
use color_eyre::eyre::Result;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Accept this check's warning: listed as allowed, not counted for the
    /// exit code (repeatable; a failure is never allowed).
    #[arg(long, value_name = "NAME")]
    allow: Vec<String>,
    /// No registered node is a failure (exit 2), not a warning: for
    /// monitoring that pages on failures when the whole cluster is down.
    #[arg(long)]
    require_nodes: bool,
}

pub async fn run(args: CheckArgs) -> Result<i32> {
    if let Err(e) = check_allow::validate(&args.allow) {
        eprintln!("error: {e}");
        return Ok(2);
    }
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let inspector = Inspector::new(config.clone());
    let snap = inspector.snapshot().await;
    let mut results = checks::run(&config, &snap);
    if args.require_nodes {
        check_allow::require_nodes(&mut results, &snap);
    }
    let code = check_allow::exit_code(&results, &args.allow);
    if args.json {
        let mut checks_json = Vec::new();
        for r in &results {
            let mut v = serde_json::to_value(r)?;
            if check_allow::is_allowed(r, &args.allow)
                && let Some(obj) = v.as_object_mut()
            {
                obj.insert("allowed".into(), true.into());
            }
            checks_json.push(v);
        }
        let out = serde_json::json!({
            "cluster": snap.cluster,
            "verdict": checks::verdict(&snap, &check_allow::counted(&results, &args.allow)),
            "exit_code": code,
            "checks": checks_json,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &results {
            let mark = match r.status {
                _ if check_allow::is_allowed(r, &args.allow) => "allow",
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            println!("{mark:<5} {:<26} {}", r.id, r.reason);
        }
    }
    Ok(code)
}
