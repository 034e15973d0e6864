//! `clusterops id decode N`: print the fields of a snowflake ID (time,
//! worker ID, sequence); a wrong ID is a one-line error with exit code 2.

use clusterops::adapters::snowflake::decode_str;
use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum IdCommand {
    /// Decode a snowflake ID into its timestamp, worker ID and sequence.
    Decode(DecodeArgs),
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The ID, a decimal number from 0 to 2^53 - 1.
    #[arg(allow_hyphen_values = true, value_name = "ID")]
    id: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: IdCommand) -> Result<i32> {
    match cmd {
        IdCommand::Decode(args) => decode(&args),
    }
}

fn decode(args: &DecodeArgs) -> Result<i32> {
    let decoded = match decode_str(&args.id) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decoded)?);
    } else {
        println!("id          {}", decoded.id);
        println!(
            "timestamp   {} ({})",
            decoded.timestamp, decoded.unix_seconds
        );
        println!("worker_id   {}", decoded.worker_id);
        println!("sequence    {}", decoded.sequence);
    }
    Ok(0)
}
