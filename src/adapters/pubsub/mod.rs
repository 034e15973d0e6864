//! Sync signals: broadcast messages between the nodes of a cluster. Every
//! live node receives every message of a channel it subscribes to, in publish
//! order; a node skips its own messages unless it asks for them.
//!
//! Backends: [`memory::MemorySignals`] (in-process, one node) and
//! [`redis::RedisSignals`] (one Redis stream per channel, read by every node
//! with its own XREAD), both getting their [`SyncSignals`] from one
//! implementation that checks the channel name once (backend.rs).
//! [`from_config`] picks one from `Config.pubsub`.
//! [`inspect`] reads the streams and the per-node cursors for the console;
//! [`reap`] removes the cursors of dead nodes (the node's janitor).
//!
//! ```no_run
//! # async fn demo(signals: std::sync::Arc<dyn clusterops::adapters::pubsub::SyncSignals>)
//! # -> Result<(), clusterops::adapters::pubsub::PubsubError> {
//! use clusterops::adapters::pubsub::SubscribeOptions;
//! let mut sub = signals.subscribe("cache.flush", SubscribeOptions::default()).await?;
//! signals.publish("cache.flush", serde_json::json!({"tag": "users"}).into()).await?;
//! while let Some(signal) = sub.recv().await {
//!     println!("{} from {}: {:?}", signal.id, signal.sender, signal.payload);
//! }
//! # Ok(()) }
//! ```

mod backend;
mod envelope;
pub mod inspect;
pub mod keys;
pub mod memory;
pub mod reap;
pub mod redis;
mod redis_cursor;
mod redis_reader;
mod reply;
mod subscription;

pub use envelope::{ENVELOPE_VERSION, EntryId};
pub use inspect::{
    NodeLag, StreamInfo, StreamReads, Unreadable, add_oldest_unhandled, forget_node, read_streams,
};
pub use memory::{MemoryHub, MemorySignals};
pub use reap::{CursorSweep, RemovedCursor, sweep_cursors};
pub use redis::{RedisSignals, RedisSignalsOptions};
pub use subscription::{BACKLOG_WARN_EVERY, Subscription};

use crate::adapters::redis_conn::ConnectError;
use crate::config::{Config, PubsubAdapter};
use std::sync::Arc;

/// The longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 128;

/// What a message carries: a JSON value or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Any JSON value.
    Json(serde_json::Value),
    /// Raw bytes (hex-encoded inside the Redis envelope).
    Bytes(Vec<u8>),
}

impl From<serde_json::Value> for Payload {
    fn from(v: serde_json::Value) -> Self {
        Payload::Json(v)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Bytes(v)
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload::Bytes(v.to_vec())
    }
}

/// One received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The channel it was published on.
    pub channel: String,
    /// Its ID, increasing within the channel: the Redis stream entry ID
    /// (`ms-seq`), or a counter for the memory backend.
    pub id: String,
    /// The node ID of the publisher.
    pub sender: String,
    /// When it was published, Unix milliseconds (the publisher's clock).
    pub sent_at_ms: u64,
    /// What it carries.
    pub payload: Payload,
}

/// How to subscribe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Also deliver the messages this node publishes itself (default: no).
    pub include_own: bool,
}

impl SubscribeOptions {
    /// Deliver this node's own messages too.
    pub fn including_own() -> Self {
        Self { include_own: true }
    }
}

/// A sync-signal failure. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum PubsubError {
    /// The channel name is not accepted.
    #[error(
        "invalid channel name {0:?}: use 1 to {MAX_CHANNEL_LEN} of A-Z a-z 0-9 _ . - (no ':', and \
         no '{{' or '}}': the name is the Redis Cluster hash tag of its keys)"
    )]
    InvalidChannel(String),
    /// The node ID is empty.
    #[error("the node ID is empty: give every node a unique, non-empty ID")]
    EmptyNodeId,
    /// Redis could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A Redis command failed.
    #[error("Redis command on {key} failed: {source}; check that Redis is reachable, then retry")]
    Redis {
        /// The key the command was about.
        key: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// A key does not hold what this adapter writes.
    #[error("{key} is unreadable ({reason}); delete it or fix it by hand, then retry")]
    Unreadable {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The adapter was shut down.
    #[error("the sync-signal adapter was shut down: create a new one to publish or subscribe")]
    ShutDown,
}

/// Sync signals: broadcast publish/subscribe between the nodes of a cluster.
///
/// Every live node receives every message of a channel it subscribes to, in
/// publish order. A node does not receive its own messages unless it
/// subscribes with [`SubscribeOptions::include_own`].
#[async_trait::async_trait]
pub trait SyncSignals: Send + Sync {
    /// This node's ID (the sender of what it publishes).
    fn node_id(&self) -> &str;

    /// Publish `payload` on `channel`; returns the message ID.
    async fn publish(&self, channel: &str, payload: Payload) -> Result<String, PubsubError>;

    /// Subscribe to `channel`. Every message published after this returns
    /// (and, on Redis, every message after this node's recorded cursor) is
    /// delivered through the returned [`Subscription`]; dropping it
    /// unsubscribes.
    async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, PubsubError>;

    /// Stop reading, record the final cursors (Redis), and end every
    /// subscription ([`Subscription::recv`] returns `None` once drained).
    /// Later calls to `publish`/`subscribe` fail with [`PubsubError::ShutDown`].
    async fn shutdown(&self);
}

/// The sync-signal backend chosen by `Config.pubsub`, for node `node_id`.
pub async fn from_config(
    config: &Config,
    node_id: impl Into<String>,
) -> Result<Arc<dyn SyncSignals>, PubsubError> {
    match &config.pubsub {
        PubsubAdapter::Memory => Ok(Arc::new(MemorySignals::new(node_id)?)),
        PubsubAdapter::Redis(url) => Ok(Arc::new(
            RedisSignals::connect(url, config.namespace.clone(), node_id).await?,
        )),
    }
}

/// Check a channel name: 1 to [`MAX_CHANNEL_LEN`] of `A-Z a-z 0-9 _ . -`.
/// No `:` (it separates the key parts), no glob characters (SCAN patterns)
/// and no `{` or `}` (the name is the hash tag of its keys,
/// `<ns>:signal:{<channel>}`).
pub fn validate_channel(channel: &str) -> Result<(), PubsubError> {
    if is_valid_channel(channel) {
        Ok(())
    } else {
        Err(PubsubError::InvalidChannel(channel.to_string()))
    }
}

pub(crate) fn is_valid_channel(channel: &str) -> bool {
    !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(crate) fn check_node_id(node: String) -> Result<String, PubsubError> {
    if node.trim().is_empty() {
        Err(PubsubError::EmptyNodeId)
    } else {
        Ok(node)
    }
}
