//! Inspector tests: `status` and `check` against real clusters (single server, Sentinel, Redis Cluster, RabbitMQ), check policy and unreachable sources.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test inspect NAME::`
//! runs one file's tests.

#[path = "../common/mod.rs"]
mod common;

mod check_persistence;
mod check_policy;
mod check_unreachable;
mod inspect_cluster;
mod inspect_cluster_state;
mod inspect_instances;
mod inspect_lag_time;
mod inspect_rabbitmq;
mod inspect_recovery;
mod inspect_requests;
mod inspect_sentinel;
mod inspect_status;
