//! Reference node tests: real `clusterops node` processes, nginx in front, PostgreSQL (with TLS), the registry and unique IDs.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test node NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../tls_support/mod.rs"]
mod tls_support;

mod guide_env;
mod maintenance_cli;
mod nginx_asset;
mod nginx_frozen_node;
mod node_bypass;
mod node_clock;
mod node_cluster;
mod node_database;
mod node_migrations;
mod node_modes;
mod node_registry;
mod node_unique_id;
mod node_upgrade;
mod pg_tls;
mod queue_pause_cli;
mod redis_cluster_nodes;
