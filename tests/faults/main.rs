//! The fault suite: the whole system keeps its promises while processes are
//! killed and servers go away (real processes and services on loopback).
//!
//! This is a test target with its own harness (`harness = false`) so that it
//! can take options of its own:
//!
//! ```sh
//! cargo test --test faults                     # every scenario once, bounded (CI)
//! cargo test --test faults -- lock_safety      # scenarios whose name contains the filter
//! cargo test --test faults -- rabbit_cluster   # a broker of a 3-node RabbitMQ cluster dies
//! cargo test --test faults -- clock_skew       # nodes and an issuer on skewed, stepped clocks
//! cargo test --test faults -- --soak 30        # repeat the suite for 30 minutes
//! cargo test --test faults -- --list           # the scenario names
//! ```
//!
//! Scenarios that need worker processes re-execute this binary with
//! `--child ROLE ARGS…` (see [`CHILDREN`]), so a kill -9 hits a real process
//! and never the harness itself.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clock_issuer;
mod clock_skew;
mod cluster_failover;
mod cluster_locks;
#[path = "../common/mod.rs"]
mod common;
mod failover;
mod failover_issuer;
mod failover_queue;
mod harness;
mod lock_clients;
mod lock_safety;
mod metadata_soak;
mod procs;
mod queue_kills;
mod rabbit_cluster;
mod redis_down;
mod redis_restart;
mod runbook_kills;
mod worker_ids;

use harness::{Child, Scenario};

/// Every scenario of the suite, in the order they run.
const SCENARIOS: &[Scenario] = &[
    // Each scenario module adds its entry here, one line each.
    lock_safety::SCENARIO,
    worker_ids::SCENARIO,
    queue_kills::SCENARIO,
    Scenario {
        name: "redis_down",
        run: redis_down::run,
    },
    Scenario {
        name: "runbook_kills",
        run: runbook_kills::run,
    },
    failover::SCENARIO,
    rabbit_cluster::SCENARIO,
    cluster_failover::SCENARIO,
    redis_restart::SCENARIO,
    clock_skew::SCENARIO,
    metadata_soak::SCENARIO,
];

/// Roles a scenario may start as a separate process of this binary.
const CHILDREN: &[Child] = &[
    // Each scenario module that needs worker processes adds its roles here.
    lock_clients::CHILD,
    queue_kills::CHILD,
    failover::CHILD,
    redis_restart::CHILD,
    clock_skew::CHILD,
];

fn main() -> std::process::ExitCode {
    harness::main(SCENARIOS, CHILDREN)
}
