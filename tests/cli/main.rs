//! Command-line tests: arguments, bad input (docs/bad-input.md's table), and the commands the docs show.
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test cli NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
// The binary's own CLI definition, for docs_commands.
#[allow(dead_code, unused_imports)]
#[path = "../../src/commands/mod.rs"]
mod commands;

mod bad_input;
mod bad_input_table;
mod cli;
mod docs_alert_rules;
mod docs_commands;
mod env_file;
