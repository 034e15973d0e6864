//! Runbook tests: configuration, journal, backups, executors (process, Kubernetes fake API), the engine and the upgrade end to end.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test runbook NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../runbook_support/mod.rs"]
mod runbook_support;
#[path = "../upgrade_support/mod.rs"]
mod upgrade_support;

mod kubernetes_manifests;
mod runbook_backup;
mod runbook_backups;
mod runbook_config;
mod runbook_engine;
mod runbook_executors;
mod runbook_journal;
mod runbook_kubernetes;
mod upgrade_e2e;
