//! `clusterops check`: the deployment guide's preflight; exit 0 when all
//! pass, 1 with warnings, 2 with any failure.

use super::EnvArgs;
use clusterops::inspect::{CheckStatus, Inspector, checks};
use color_eyre::eyre::Result;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: CheckArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let inspector = Inspector::new(config.clone());
    let snap = inspector.snapshot().await;
    let results = checks::run(&config, &snap);
    let code = checks::exit_code(&results);
    if args.json {
        let out = serde_json::json!({
            "cluster": snap.cluster,
            "verdict": checks::verdict(&snap, &results),
            "exit_code": code,
            "checks": results,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &results {
            let mark = match r.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            println!("{mark}  {:<26} {}", r.id, r.reason);
        }
    }
    Ok(code)
}
