//! `clusterops bench …`: micro-benchmarks against the real services. Each
//! prints one JSON object with the figure, a raw-client baseline measured in
//! the same run, and their ratio.

mod cache;
mod lock;
mod lock_contended;
mod node;
mod node_load;
mod pubsub;
mod queue;
mod render;
mod snowflake;
mod status;

use color_eyre::eyre::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The Redis cache: get, set with TTL and bloom_exists against raw GET/SET/GETBIT.
    Cache(cache::CacheArgs),
    /// Snowflake IDs: ns per ID below the per-worker limit, and a
    /// saturation run reaching 65,536 IDs/s per worker.
    Snowflake(snowflake::SnowflakeArgs),
    /// Sync signals: node-to-node latency on Redis vs raw XADD + XREAD BLOCK.
    Pubsub(pubsub::PubsubArgs),
    /// Distributed lock: acquire+release ops/s vs raw SET NX PX + EVALSHA;
    /// with --contenders, hand-overs/s of a contended lock vs uncontended.
    Lock(lock::LockBenchArgs),
    /// Message queue: messages/s end to end through the adapter vs. the raw client.
    Queue(queue::QueueBenchArgs),
    /// One inspector snapshot of 32 nodes / 1,000 locks / 10 streams / 10
    /// queues (or the sizes given, a curve) vs a raw pipelined read of the
    /// same keys.
    Status(status::StatusBenchArgs),
    /// The reference node's cached read path (GET /api/records/{id}) on a
    /// three-node cluster vs. the nodes' bare health check.
    Node(node::NodeBenchArgs),
    /// Time to draw each console view at 160x48 from a large snapshot.
    Render(render::RenderArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Cache(args) => cache::run(args).await,
        BenchCommand::Snowflake(args) => snowflake::run(args).await,
        BenchCommand::Pubsub(args) => pubsub::run(args).await,
        BenchCommand::Lock(args) => lock::run(args).await,
        BenchCommand::Queue(args) => queue::run(args).await,
        BenchCommand::Node(args) => node::run(args).await,
        BenchCommand::Render(args) => render::run(args),
        BenchCommand::Status(args) => status::run(args).await,
    }
}
