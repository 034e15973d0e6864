//! `clusterops demo`: a cluster to try the console on, with no service to
//! install. [`DemoCluster`] runs three reference nodes in this process on
//! shared memory adapters ([`nodes`]) with a synthetic [`workload`], and
//! [`DemoSource`] builds snapshots of it; [`RedisDemo`] runs the same on a
//! real Redis with node child processes. The console only receives the
//! snapshots; `commands/demo.rs` wires the two together.

pub mod nodes;
pub mod redis;
pub mod source;
pub mod workload;

pub use nodes::DemoCluster;
pub use redis::RedisDemo;
pub use source::DemoSource;
pub use workload::{DEMO_CHANNEL, DEMO_QUEUE, NODE_IDS};
