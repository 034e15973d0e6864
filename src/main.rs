//! The `clusterops` binary: parse the command line, dispatch, nothing else.

mod commands;

use clap::Parser;
use color_eyre::eyre::Result;

#[tokio::main]
async fn main() -> Result<()> {
    color_eyre::install()?;
    let cli = commands::Cli::parse();
    commands::init_tracing(&cli);
    commands::quiet_broken_pipe(&cli);
    let code = commands::run(cli).await?;
    std::process::exit(code);
}
