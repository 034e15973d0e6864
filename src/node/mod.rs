//! The reference node (`clusterops node`): a small but honest app node built
//! on the adapter library, with HTTP health and status, heartbeats into the
//! cluster registry, the maintenance flag, and schema migrations.

pub mod app;
pub mod clock;
pub mod heartbeat;
pub mod http;
pub mod identity;
pub mod janitor;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod migrations;
pub mod options;
pub mod pg;
pub mod registry;
pub mod routes;
pub mod runtime;
pub mod shared;
pub mod state;
pub mod storage;
pub mod store;
pub mod supervisor;
pub mod unique_id;
pub mod version;
pub mod work;
