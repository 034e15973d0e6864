//! The janitor: removes the metadata that dead nodes leave in Redis, on a
//! schedule run by the live nodes. Every [`JanitorOptions::every`] (jittered
//! by ±20 % so nodes do not tick together) a node tries to claim
//! `<ns>:janitor:{<ns>}` (`SET NX PX`, on the coordination Redis, in the
//! registry's slot); the one that gets it sweeps:
//!
//! - queue consumers whose node is not in the registry, with nothing
//!   pending and idle for [`JanitorOptions::consumer_idle`]
//!   ([`queue::sweep_queues`], which also trims each queue stream below the
//!   oldest entry its group still needs);
//! - sync-signal cursors whose node is not in the registry and that were
//!   not written for [`JanitorOptions::cursor_idle`]
//!   ([`pubsub::sweep_cursors`]).
//!
//! Nothing is removed when the registry cannot be read or does not list the
//! sweeping node itself (a Redis that lost its data would make every node
//! look dead). Removals are logged (info) and counted in the node's metrics.

use super::metrics::{Metrics, add, inc};
use super::registry::{Registry, RegistryEntry, record_key};
use super::shared::NodeShared;
use crate::adapters::hash_tag::tag;
use crate::adapters::redis_conn::{self, SharedConn};
use crate::adapters::{pubsub, queue};
use crate::config::{Config, Namespace, PubsubAdapter, QueueAdapter};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// When and what the janitor removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JanitorOptions {
    /// How often each node tries to claim a sweep (jittered ±20 %).
    pub every: Duration,
    /// A dead node's queue consumer is deleted once idle this long (and
    /// owning nothing). Longer than any restart, and several times the
    /// queue's visibility timeout (its entries are reclaimed first).
    pub consumer_idle: Duration,
    /// A dead node's sync-signal cursor is removed once unwritten this long.
    /// A node stopped longer than this resumes at new messages only.
    pub cursor_idle: Duration,
}

impl Default for JanitorOptions {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(300),
            consumer_idle: Duration::from_secs(600),
            cursor_idle: Duration::from_secs(600),
        }
    }
}

/// `<ns>:janitor:{<ns>}`: who claimed the current sweep period (string,
/// the node ID, `PX` half the period). Same hash tag as the registry.
pub fn claim_key(ns: &Namespace) -> String {
    ns.key(&format!("janitor:{}", tag(ns.name())))
}

/// Why a sweep did not run.
#[derive(Debug, thiserror::Error)]
pub enum JanitorError {
    /// The coordination Redis could not be read or written.
    #[error("janitor: {what}: {source}")]
    Redis {
        /// What failed.
        what: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// The registry does not list this node: liveness is unknown.
    #[error(
        "janitor: the registry does not list this node ({0}); nothing removed (a Redis that \
         lost its data makes every node look dead)"
    )]
    NotRegistered(String),
    /// A queue sweep failed.
    #[error("janitor: {0}")]
    Queue(#[from] queue::QueueError),
    /// A cursor sweep failed.
    #[error("janitor: {0}")]
    Pubsub(#[from] pubsub::PubsubError),
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// The queue sweep (Redis queue only).
    pub queues: Option<queue::QueueSweep>,
    /// The cursor sweep (Redis sync signals only).
    pub cursors: Option<pubsub::CursorSweep>,
}

/// One node's janitor: its connections and options.
pub struct Janitor {
    node_id: String,
    ns: Namespace,
    coordination: SharedConn,
    queue: Option<SharedConn>,
    signals: Option<SharedConn>,
    options: JanitorOptions,
}

impl Janitor {
    /// A janitor for node `node_id` over the given connections (`queue`,
    /// `signals`: the Redis of each adapter, when it is on Redis).
    pub fn new(
        node_id: impl Into<String>,
        ns: Namespace,
        coordination: SharedConn,
        queue: Option<SharedConn>,
        signals: Option<SharedConn>,
        options: JanitorOptions,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            ns,
            coordination,
            queue,
            signals,
            options,
        }
    }

    /// A janitor for `config`: `None` when neither the queue nor the sync
    /// signals are on Redis (nothing to clean).
    pub async fn from_config(
        config: &Config,
        node_id: &str,
        coordination: SharedConn,
        options: JanitorOptions,
    ) -> Result<Option<Self>, redis_conn::ConnectError> {
        let queue = match &config.queue {
            QueueAdapter::Redis(url) => Some(redis_conn::connect(url).await?),
            _ => None,
        };
        let signals = match &config.pubsub {
            PubsubAdapter::Redis(url) => Some(redis_conn::connect(url).await?),
            PubsubAdapter::Memory => None,
        };
        if queue.is_none() && signals.is_none() {
            return Ok(None);
        }
        Ok(Some(Self::new(
            node_id,
            config.namespace.clone(),
            coordination,
            queue,
            signals,
            options,
        )))
    }

    /// Try to claim this sweep period: true when this node got it.
    pub async fn claim(&mut self) -> Result<bool, JanitorError> {
        let ttl = (self.options.every / 2).max(Duration::from_millis(10));
        let set: Option<String> = redis::cmd("SET")
            .arg(claim_key(&self.ns))
            .arg(&self.node_id)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut self.coordination)
            .await
            .map_err(|source| JanitorError::Redis {
                what: "cannot claim the sweep",
                source,
            })?;
        Ok(set.is_some())
    }

    /// The node IDs the registry lists as alive (a record that cannot be
    /// read counts as alive: its node may be).
    async fn alive(&mut self) -> Result<BTreeSet<String>, JanitorError> {
        let registry = Registry::new(self.ns.clone(), Duration::from_secs(1));
        let entries = registry
            .read_all(&mut self.coordination)
            .await
            .map_err(|source| JanitorError::Redis {
                what: "cannot read the node registry",
                source,
            })?;
        let prefix = record_key(&self.ns, "");
        Ok(entries
            .into_iter()
            .map(|e| match e {
                RegistryEntry::Live { record, .. } => record.id.node_id,
                RegistryEntry::Unreadable { key, .. } => {
                    key.strip_prefix(&prefix).unwrap_or(&key).to_string()
                }
            })
            .collect())
    }

    /// Sweep once (without claiming): remove what dead nodes left.
    pub async fn sweep(&mut self) -> Result<Sweep, JanitorError> {
        let alive = self.alive().await?;
        if !alive.contains(&self.node_id) {
            return Err(JanitorError::NotRegistered(self.node_id.clone()));
        }
        let is_alive = |node: &str| alive.contains(node);
        let mut sweep = Sweep::default();
        if let Some(conn) = &mut self.queue {
            let q =
                queue::sweep_queues(conn, &self.ns, &is_alive, self.options.consumer_idle).await?;
            for r in &q.removed {
                tracing::info!(queue = %r.queue, consumer = %r.consumer, idle_ms = r.idle_ms, "janitor removed the queue consumer of a dead node");
            }
            if q.trimmed > 0 {
                tracing::info!(
                    entries = q.trimmed,
                    "janitor trimmed acknowledged entries left in queue streams"
                );
            }
            sweep.queues = Some(q);
        }
        if let Some(conn) = &mut self.signals {
            let c =
                pubsub::sweep_cursors(conn, &self.ns, &is_alive, self.options.cursor_idle).await?;
            for r in &c.removed {
                tracing::info!(channel = %r.channel, node = %r.node, unseen_ms = r.unseen_ms, "janitor removed the sync-signal cursor of a dead node");
            }
            sweep.cursors = Some(c);
        }
        Ok(sweep)
    }

    /// Claim, then sweep if claimed; counts into `metrics`. `Ok(None)`: another
    /// node has this period.
    pub async fn tick(&mut self, metrics: &Metrics) -> Result<Option<Sweep>, JanitorError> {
        if !self.claim().await? {
            return Ok(None);
        }
        let sweep = self.sweep().await?;
        inc(&metrics.janitor_sweeps);
        if let Some(q) = &sweep.queues {
            add(&metrics.janitor_consumers_removed, q.removed.len() as u64);
            add(&metrics.janitor_entries_trimmed, q.trimmed);
        }
        if let Some(c) = &sweep.cursors {
            add(&metrics.janitor_cursors_removed, c.removed.len() as u64);
        }
        Ok(Some(sweep))
    }

    /// Start `node`'s janitor task (when its queue or sync signals are on
    /// Redis; it connects on its own task, so the node does not wait),
    /// stopped by `stop`.
    pub fn start(
        node: &Arc<NodeShared>,
        coordination: SharedConn,
        options: JanitorOptions,
        stop: watch::Receiver<bool>,
    ) {
        let node = node.clone();
        tokio::spawn(async move {
            match Self::from_config(&node.config, &node.node_id, coordination, options).await {
                Ok(Some(janitor)) => janitor.run(node, stop).await,
                Ok(None) => {}
                Err(e) => tracing::warn!("janitor not started: {e}"),
            }
        });
    }

    /// Run until `stop` turns true: a jittered tick every
    /// [`JanitorOptions::every`], counted in `node`'s metrics. Failures are
    /// logged, never fatal.
    pub async fn run(self, node: Arc<NodeShared>, stop: watch::Receiver<bool>) {
        self.run_loop(&node.metrics, stop).await;
    }

    /// [`Janitor::run`], counting into `metrics` (for an app without the
    /// reference node's shared state).
    pub async fn run_counting(self, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) {
        self.run_loop(&metrics, stop).await;
    }

    async fn run_loop(mut self, metrics: &Metrics, mut stop: watch::Receiver<bool>) {
        loop {
            let jitter = 0.8 + rand::random::<f64>() * 0.4;
            let wait = self.options.every.mul_f64(jitter);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.tick(metrics).await {
                tracing::warn!(node = %self.node_id, "{e}");
            }
        }
    }
}
