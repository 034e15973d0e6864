//! Adapter tests against real servers: cache, locks, sync signals, queues, worker IDs and the Redis connection (TLS, Sentinel, Redis Cluster).
//!
//! One test binary for the area (each binary links the whole dependency
//! graph, so the tests are grouped by area): `cargo test --test adapters NAME::`
//! runs one file's tests.

// A test's unwrap/expect is its assertion: a panic fails the test with the
// value in the message. (clippy.toml covers #[test] functions; the helpers
// these binaries share are plain functions, hence the crate-wide allow.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../tls_support/mod.rs"]
mod tls_support;

mod amqps;
mod cache_contract;
mod cache_redis;
mod janitor;
mod lock_contract;
mod lock_fair;
mod lock_redis;
mod pubsub;
mod queue_contract;
mod queue_faults;
mod queue_inspect;
mod queue_pause;
mod queue_poison;
mod redis_cluster;
mod redis_cluster_locks;
mod redis_conn;
mod redis_sentinel;
mod redis_tls;
mod snowflake;
mod stream_trimming;
mod worker_id;
mod worker_id_failover;
mod worker_id_restart;
