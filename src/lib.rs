//! clusterops: run one application as a cluster of identical nodes.
//!
//! The library is what every node links: [`config`] reads the operators'
//! environment, [`adapters`] holds the cache, sync signals, message queue,
//! distributed lock, worker-ID leases and snowflake IDs; [`console`] is the
//! operators' terminal UI over [`inspect`]'s snapshots, and [`exporter`]
//! serves them to Prometheus.

pub mod adapters;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod console;
pub mod exporter;
pub mod inspect;
pub mod node;
pub mod operate;
pub mod runbook;
