//! clusterops: run one application as a cluster of identical nodes.
//!
//! The library is what every node links: [`config`] reads the operators'
//! environment, [`adapters`] holds the cache, sync signals, message queue,
//! distributed lock, worker-ID leases and snowflake IDs; [`node`] is the
//! reference node; [`inspect`] reads a cluster into snapshots; [`operate`]
//! changes it on an operator's request; [`runbook`] upgrades it; [`demo`]
//! runs a cluster in-process to try it on; [`console`] is the operators'
//! terminal UI over the snapshots, and [`exporter`] serves them to
//! Prometheus.

pub mod adapters;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod console;
pub mod demo;
pub mod exporter;
pub mod inspect;
pub mod node;
pub mod operate;
pub mod runbook;
