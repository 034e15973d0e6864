//! Console tests: rendering (insta snapshots), keys, the live source and actions, the Runbook view, the demo, and the binary in tmux.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test console NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../console_support/mod.rs"]
mod console_support;
#[path = "../upgrade_support/mod.rs"]
mod upgrade_support;

mod console_contexts;
mod console_demo;
mod console_e2e;
mod console_fixtures;
mod console_keys;
mod console_live;
mod console_queues;
mod console_render;
mod console_runbook;
mod console_servers;
mod demo_upgrade;
mod upgrade_console;
