//! `clusterops bench …`: micro-benchmarks against the real services. Each
//! prints one JSON object with the figure, a raw-client baseline measured in
//! the same run, and their ratio.

mod render;

use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Time to draw each console view at 160x48 from a large snapshot.
    Render(render::RenderArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Render(args) => render::run(args),
    }
}
