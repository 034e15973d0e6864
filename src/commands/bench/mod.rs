//! `clusterops bench …`: micro-benchmarks against the real services. Each
//! prints one JSON object with the figure, a raw-client baseline measured in
//! the same run, and their ratio.

mod pubsub;

use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Sync signals: node-to-node latency on Redis vs raw XADD + XREAD BLOCK.
    Pubsub(pubsub::PubsubArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Pubsub(args) => pubsub::run(args).await,
    }
}
