//! `clusterops demo`: a cluster to try the console and the guided upgrade
//! on, with no service to install. [`DemoCluster`] runs three reference
//! nodes in this process on shared memory adapters and one shared store
//! ([`nodes`]) with a synthetic [`workload`], and [`DemoSource`] builds
//! snapshots of it; [`upgrade`] gives the runbook engine what it needs to
//! upgrade those nodes (an in-process [`executor`], the cluster's
//! operations in [`cluster_ops`], a [`backup`] of the store to a file).
//! [`RedisDemo`] runs the same nodes and workload on a real Redis as child
//! processes. The console only receives snapshots and drives the runbook
//! engine; `commands/demo.rs` wires them together.

pub mod backup;
pub mod cluster_ops;
pub mod executor;
pub mod nodes;
pub mod redis;
pub mod source;
pub mod upgrade;
pub mod workload;

pub use executor::{BROKEN_SUFFIX, is_broken};
pub use nodes::{DEMO_VERSION, DemoCluster, SEED_RECORDS};
pub use redis::RedisDemo;
pub use source::DemoSource;
pub use upgrade::DemoUpgrade;
pub use workload::{DEMO_CHANNEL, DEMO_QUEUE, NODE_IDS};
