//! clusterops: run one application as a cluster of identical nodes.
//!
//! The library is what every node links: [`config`] reads the operators'
//! environment, [`adapters`] holds the cache, sync signals, message queue,
//! distributed lock, worker-ID leases and snowflake IDs.

pub mod adapters;
pub mod config;
pub mod inspect;
pub mod runbook;
