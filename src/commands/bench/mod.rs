//! `clusterops bench …`: micro-benchmarks against the real services. Each
//! prints one JSON object with the figure, a raw-client baseline measured in
//! the same run, and their ratio.

mod lock;

use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Distributed lock: acquire+release ops/s vs raw SET NX PX + EVALSHA.
    Lock(lock::LockBenchArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Lock(args) => lock::run(args).await,
    }
}
