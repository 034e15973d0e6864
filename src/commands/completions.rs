//! `clusterops completions SHELL` and `clusterops man`: shell completions
//! and a man page generated from the CLI definition, so they never drift.

use super::Cli;
use clap::CommandFactory;
use color_eyre::eyre::Result;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "clusterops", &mut out);
    print_all(&out)
}

pub fn man() -> Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    print_all(&out)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print_all(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}
