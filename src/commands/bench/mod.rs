//! `clusterops bench …`: micro-benchmarks against the real services. Each
//! prints one JSON object with the figure, a raw-client baseline measured in
//! the same run, and their ratio.

mod cache;

use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The Redis cache: get, set with TTL and bloom_exists against raw GET/SET/GETBIT.
    Cache(cache::CacheArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Cache(args) => cache::run(args).await,
    }
}
