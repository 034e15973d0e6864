//! Inspector tests: `status` and `check` against real clusters (single server, Sentinel, Redis Cluster, RabbitMQ), check policy and unreachable sources.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test inspect NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod check_persistence;
mod check_policy;
mod check_processes;
mod check_unreachable;
mod exporter;
mod inspect_cluster;
mod inspect_cluster_state;
mod inspect_instances;
mod inspect_lag_time;
mod inspect_rabbitmq;
mod inspect_recovery;
mod inspect_requests;
mod inspect_sentinel;
mod inspect_status;
