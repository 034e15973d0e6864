//! What a node is started with: its options ([`NodeOptions`]), the shared
//! adapters an embedding process may hand it ([`Adapters`]), why it could
//! not start ([`NodeError`]), and its id (given and checked, or generated).

use super::heartbeat::HeartbeatTiming;
use super::janitor::JanitorOptions;
use super::maintenance::MaintenanceRead;
use super::store::Store;
use super::{pg, unique_id};
use crate::adapters::{cache, lock, pubsub, queue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Node id; generated from the host name when `None`.
    pub node_id: Option<String>,
    /// App version; [`super::runtime::APP_VERSION`] when `None`.
    pub app_version: Option<String>,
    /// Heartbeat timing.
    pub timing: HeartbeatTiming,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// Concurrency of the record-events consumer.
    pub queue_concurrency: usize,
    /// TTL of the worker-ID lease (renewed every third of it).
    pub lease_ttl: Duration,
    /// When the janitor sweeps and what it removes (docs/queue.md,
    /// "Consumers of dead nodes").
    pub janitor: JanitorOptions,
    /// Prebuilt shared adapters instead of the ones the configuration
    /// names: several in-process nodes (the demo) share one memory backend.
    pub adapters: Option<Adapters>,
    /// Under `CLUSTER_MODE`: which process of its host this node is; it
    /// also serves on the slot's shared address (`SO_REUSEPORT`).
    pub process: Option<super::supervisor::ProcessSlot>,
}

/// Shared adapters handed to [`super::runtime::run`] (the node's own local cache is always
/// its own).
#[derive(Clone)]
pub struct Adapters {
    /// The shared cache.
    pub cache: Arc<dyn cache::Cache>,
    /// Distributed locks.
    pub locks: Arc<dyn lock::LockBackend>,
    /// Sync signals.
    pub signals: Arc<dyn pubsub::SyncSignals>,
    /// The message queue.
    pub queue: Arc<dyn queue::MessageQueue>,
    /// The app's store, shared by the in-process nodes (a memory store
    /// that carries a schema version: a newer node migrates it, an older
    /// one refuses it, as with the database). `None`: the configuration's.
    pub store: Option<Arc<Store>>,
    /// The maintenance flag, for nodes without a coordination Redis to read
    /// it from: applied at start (before serving) and on every change.
    pub maintenance: Option<watch::Receiver<MaintenanceRead>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adapters { prebuilt }")
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 13000)),
            node_id: None,
            app_version: None,
            timing: HeartbeatTiming::default(),
            drain_timeout: Duration::from_secs(10),
            queue_concurrency: 4,
            lease_ttl: Duration::from_secs(15),
            janitor: JanitorOptions::default(),
            adapters: None,
            process: None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A wrong option.
    #[error("{0}")]
    Option(String),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An adapter could not start.
    #[error("{adapter}: {message}")]
    Adapter {
        /// Which adapter.
        adapter: &'static str,
        /// Its error.
        message: String,
    },
    /// The database could not be reached.
    #[error("{0}")]
    Database(#[source] pg::PgConnectError),
    /// The storage folder is not writable.
    #[error("STORAGE_PATH {path}: cannot write the node marker: {source}")]
    Storage {
        /// Folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another live node holds this node id.
    #[error("{0}")]
    DuplicateId(unique_id::DuplicateId),
    /// Serving failed.
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// Accepted node ids: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn validate_node_id(id: &str) -> Result<(), NodeError> {
    crate::config::Namespace::validate(id)
        .map_err(|accepted| NodeError::Option(format!("--node-id {id:?}: expected {accepted}")))
}

/// A node id from the host name and a random suffix.
pub fn generated_node_id() -> String {
    let host: String = crate::clock::hostname()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let host = host.trim_matches('-');
    let host = if host.is_empty() { "node" } else { host };
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}
