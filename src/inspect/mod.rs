//! The inspector: a read-only picture of a whole cluster, built from the
//! same configuration the nodes use. Only read commands; the console and
//! `clusterops status`/`check` consume its [`Snapshot`].

pub mod check_allow;
pub mod checks;
pub mod checks_clock;
pub mod checks_cluster;
pub mod checks_persistence;
pub mod checks_processes;
pub mod checks_servers;
pub mod checks_topology;
pub mod checks_unread;
mod cluster_merge;
mod cluster_read;
pub mod cluster_view;
pub mod convert;
mod counted;
pub mod drift;
pub mod health;
pub mod instances;
pub mod persistence;
pub mod plan;
pub mod rabbit;
pub mod rabbit_mgmt;
mod rabbit_read;
pub mod read;
pub mod sample;
pub mod server_read;
pub mod server_warnings;
pub mod servers;
pub mod source;
pub mod topology;
pub mod topology_read;
pub mod types;
mod types_health;

#[cfg(test)]
mod parse_tests;

pub use cluster_view::{ClusterReplica, ClusterView, ReplicaLink, ShardView};
pub use read::{Inspector, RequestCount};
pub use topology::{
    Agreement, MasterFlag, QuorumCheck, RedisRole, ReplicaState, ReplicaView, SentinelView,
    TopologyView,
};
pub use types::*;
