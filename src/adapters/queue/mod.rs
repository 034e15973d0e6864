//! The message queue: at-least-once delivery with retries, backoff and dead
//! letters, behind one trait with memory, Redis Streams and RabbitMQ backends.
//!
//! A message is acknowledged only after its handler returns `Ok`. A handler
//! error (or panic) schedules a retry after an exponential backoff; after
//! [`RetryPolicy::max_attempts`] failed attempts the message becomes a dead
//! letter that keeps its payload, the last error and the attempt count, and
//! that an operator can count, list, requeue or purge through this API.
//! Every backend gets its [`MessageQueue`] from one implementation
//! (backend.rs) that checks the arguments once. See `docs/queue.md` for
//! the delivery semantics of each backend.

mod amqp_connect;
mod backend;
mod error;
mod keys;
mod memory;
pub mod pause;
mod rabbitmq;
mod rabbitmq_admin;
mod rabbitmq_consumer;
mod rabbitmq_topology;
mod redis;
mod redis_acks;
mod redis_consumer;
mod redis_entries;
mod redis_janitor;
mod redis_poison;
mod redis_settle;
mod redis_stats;
mod subscription;

pub use amqp_connect::{CONNECT_DEADLINE as AMQP_CONNECT_DEADLINE, connect_amqp};
pub use error::QueueError;
pub use keys::{QUEUE_FAMILY, dead_key, queue_name_of, stream_key};
pub use memory::MemoryQueue;
pub use pause::{PauseFlag, PauseState};
pub use rabbitmq::RabbitQueue;
pub use redis::RedisQueue;
pub use redis_entries::GROUP as REDIS_GROUP;
pub use redis_janitor::{QueueSweep, RemovedConsumer, consumer_node, sweep_queues};
pub use redis_stats::{QueueReads, read_queue_stats};
pub use subscription::Subscription;

use crate::clock::now_ms;
pub use crate::config::RabbitQueueType;
use crate::config::{Config, QueueAdapter};
use futures::future::BoxFuture;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest accepted queue name (RabbitMQ names must stay under 255 bytes).
pub const MAX_QUEUE_NAME_LEN: usize = 100;

/// One delivery of a message to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The id given at publish; it stays the same across retries, dead
    /// lettering and requeueing.
    pub id: String,
    /// The queue it was published to.
    pub queue: String,
    /// The bytes given at publish.
    pub payload: Vec<u8>,
    /// 1 on the first delivery, incremented for every retry after a handler
    /// error. Redeliveries after a crash or lost connection keep the number.
    pub attempt: u32,
}

impl Message {
    /// The payload parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// The payload as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// A message that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The message id given at publish (what [`Requeue::Ids`] selects).
    pub id: String,
    /// The queue it was published to.
    pub queue: String,
    /// The original payload.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// The error text of the last failed attempt.
    pub error: String,
    /// How many attempts failed.
    pub attempts: u32,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub failed_at_ms: u64,
}

/// Which dead letters to put back on their queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// Every dead letter of the queue.
    All,
    /// The dead letters with these message ids.
    Ids(Vec<String>),
}

/// One consumer as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerStats {
    /// `{node_id}-{n}`.
    pub name: String,
    /// Messages delivered to it and not yet acknowledged.
    pub pending: u64,
    /// Milliseconds since it last read or claimed.
    pub idle_ms: u64,
}

/// Counts for one queue, as the adapter or the inspector sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The queue name.
    pub queue: String,
    /// Where it lives: the Redis stream key, the RabbitMQ queue name, or
    /// `memory:{name}`.
    pub key: String,
    /// Published and not yet delivered.
    pub waiting: u64,
    /// Delivered and not acknowledged (handlers running, plus on Redis the
    /// messages waiting for their retry); `None` where the backend cannot
    /// tell (RabbitMQ over AMQP).
    pub in_flight: Option<u64>,
    /// Waiting for a retry after a handler error, where counted apart from
    /// `in_flight` (memory, RabbitMQ delay queues); `None` on Redis.
    pub retrying: Option<u64>,
    /// Age of the oldest unacknowledged message, counted from its publish
    /// (or last retry); `None` when nothing is pending or unknown.
    pub oldest_pending_age_ms: Option<u64>,
    /// Dead letters.
    pub dead: u64,
    /// Age of the oldest unhandled message, waiting or in flight (Redis:
    /// the stream's first entry, whose ID carries its enqueue time in ms);
    /// `None` when the queue is empty or the backend cannot tell.
    pub oldest_age_ms: Option<u64>,
    /// The pause flag, when set ([`pause`]); an unreadable one shows as a
    /// flag by `unknown` whose reason says why (consumers treat it as set).
    pub paused: Option<PauseFlag>,
    /// Consumers attached (on Redis: every consumer the group remembers).
    pub consumers: u64,
    /// Per-consumer detail, where the backend has it (Redis).
    pub consumer_details: Vec<ConsumerStats>,
    /// Set when the data could not be read; the counts are then zero.
    pub unreadable: Option<String>,
}

/// How failed handlers are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for every further one.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before the retry that follows failed attempt `attempt`
    /// (1-based): `base_delay * 2^(attempt-1)`, capped at `max_delay`.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// True when a message whose attempt `attempt` failed gets another one.
    pub fn retries_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }
}

/// Tuning shared by every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Retries of failed handlers.
    pub retry: RetryPolicy,
    /// Redis: a message delivered to a consumer that has not shown signs of
    /// life for this long is given to another consumer. Live consumers
    /// refresh their messages every third of it.
    pub visibility_timeout: Duration,
    /// How long `Subscription::shutdown` (or a drop) lets in-flight handlers
    /// finish before abandoning them (they are then redelivered).
    pub shutdown_timeout: Duration,
    /// Redis: how long one XREADGROUP blocks; it bounds how long a stopping
    /// consumer waits for its current read.
    pub poll_interval: Duration,
    /// How long `publish` (and acknowledgements) keep retrying while the
    /// backend is unreachable before giving up with an error.
    pub reconnect_timeout: Duration,
    /// Deliveries without an acknowledgement (the consumer crashed, was
    /// aborted or lost its connection each time) after which a message
    /// becomes a dead letter instead of being delivered again: the bound on
    /// poison messages. Redis: the pending entry's delivery counter;
    /// RabbitMQ quorum queues: `x-delivery-limit`. At least 1.
    pub max_deliveries: u32,
    /// RabbitMQ: the type of the queues declared (quorum by default;
    /// `QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE` overrides it in `from_config`).
    pub rabbitmq_queue_type: RabbitQueueType,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            visibility_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            reconnect_timeout: Duration::from_secs(10),
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            rabbitmq_queue_type: RabbitQueueType::Quorum,
        }
    }
}

/// Default of [`QueueOptions::max_deliveries`].
pub const DEFAULT_MAX_DELIVERIES: u32 = 10;

/// The error text of a message dead-lettered for too many deliveries.
pub fn poison_error(deliveries: u64) -> String {
    format!(
        "delivered {deliveries} times without being acknowledged (its consumer crashed or lost \
         its connection each time)"
    )
}

/// What a handler returns: `Err` with a text that is kept with the message.
pub type HandlerResult = Result<(), String>;

/// A message handler, shared by the concurrent consumers of a subscription.
pub type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// Wrap an async function as a [`Handler`]; its error is kept as text.
///
/// ```no_run
/// # use clusterops::adapters::queue::handler;
/// let h = handler(|msg| async move {
///     let n: u64 = msg.json().map_err(|e| e.to_string())?;
///     if n == 0 { return Err("zero".to_string()); }
///     Ok::<(), String>(())
/// });
/// ```
pub fn handler<F, Fut, E>(f: F) -> Handler
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    Arc::new(move |msg| {
        let fut = f(msg);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    })
}

/// A message queue shared by the nodes of a cluster.
#[async_trait::async_trait]
pub trait MessageQueue: Send + Sync + 'static {
    /// `memory`, `redis` or `rabbitmq`.
    fn backend(&self) -> &'static str;

    /// Publish one message; returns its id once the backend has stored it.
    async fn publish(&self, queue: &str, payload: &[u8]) -> Result<String, QueueError>;

    /// Consume `queue` with up to `concurrency` handlers running at once.
    /// Consumers stop on [`Subscription::shutdown`] or when it is dropped.
    async fn subscribe(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Handler,
    ) -> Result<Subscription, QueueError>;

    /// Counts for one queue.
    async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError>;

    /// How many dead letters the queue has.
    async fn dead_letter_count(&self, queue: &str) -> Result<u64, QueueError>;

    /// Up to `limit` dead letters, oldest first.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Put dead letters back on the queue with a fresh attempt budget;
    /// returns how many were requeued.
    async fn requeue_dead_letters(&self, queue: &str, which: Requeue) -> Result<u64, QueueError>;

    /// Delete every dead letter of the queue; returns how many.
    async fn purge_dead_letters(&self, queue: &str) -> Result<u64, QueueError>;

    /// Delete the queue with its waiting messages and dead letters.
    /// Subscriptions on it should be shut down first.
    async fn delete_queue(&self, queue: &str) -> Result<(), QueueError>;

    /// Pause every consumer of `queue`, on every node: no new message is
    /// taken until [`MessageQueue::resume`] (running handlers finish).
    /// Replaces a flag already set. [`QueueError::PauseUnsupported`] on a
    /// backend without pausing (RabbitMQ).
    async fn pause(&self, queue: &str, flag: &PauseFlag) -> Result<(), QueueError>;

    /// Clear the pause flag of `queue`; false when it was not set.
    async fn resume(&self, queue: &str) -> Result<bool, QueueError>;

    /// The pause flag of `queue`, when set.
    async fn paused(&self, queue: &str) -> Result<Option<PauseFlag>, QueueError>;
}

impl dyn MessageQueue {
    /// Publish a value as JSON.
    pub async fn publish_json<T: Serialize + ?Sized + Sync>(
        &self,
        queue: &str,
        value: &T,
    ) -> Result<String, QueueError> {
        let bytes = serde_json::to_vec(value)?;
        self.publish(queue, &bytes).await
    }
}

/// The backend `config.queue` names, consuming as `node_id`.
pub async fn from_config(
    config: &Config,
    node_id: impl Into<String>,
) -> Result<Arc<dyn MessageQueue>, QueueError> {
    from_config_with(config, node_id, QueueOptions::default()).await
}

/// [`from_config`] with explicit tuning.
pub async fn from_config_with(
    config: &Config,
    node_id: impl Into<String>,
    mut options: QueueOptions,
) -> Result<Arc<dyn MessageQueue>, QueueError> {
    let node_id = node_id.into();
    if let Some(t) = config.rabbitmq.queue_type {
        options.rabbitmq_queue_type = t;
    }
    Ok(match &config.queue {
        QueueAdapter::Memory => Arc::new(MemoryQueue::new(options)),
        QueueAdapter::Redis(url) => {
            Arc::new(RedisQueue::connect(url, config.namespace.clone(), node_id, options).await?)
        }
        QueueAdapter::Rabbitmq(url) => {
            Arc::new(RabbitQueue::connect(url, config.namespace.clone(), node_id, options).await?)
        }
    })
}

/// Check a queue name: 1 to [`MAX_QUEUE_NAME_LEN`] of `A-Z a-z 0-9 _ . -`,
/// starting with a letter or digit (no `:`, which separates key parts, and
/// no `{` or `}`: the name is the hash tag of its keys, `<ns>:queue:{<queue>}`).
pub fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let ok = crate::config::is_plain_name(name, MAX_QUEUE_NAME_LEN)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidName(name.to_string()))
    }
}

fn validate_concurrency(concurrency: usize) -> Result<(), QueueError> {
    if concurrency == 0 || concurrency > usize::from(u16::MAX) {
        Err(QueueError::InvalidConcurrency(concurrency))
    } else {
        Ok(())
    }
}

/// A new message id: milliseconds since the epoch and 64 random bits, hex.
pub(crate) fn new_message_id() -> String {
    format!("{:011x}-{:016x}", now_ms(), rand::random::<u64>())
}

/// `Instant::now() + d` for a caller's timeout (`QueueOptions`): a `d` the
/// clock cannot hold (`Duration::MAX` for "no limit") waits a century
/// instead of panicking.
pub(crate) fn instant_after(d: Duration) -> std::time::Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = std::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_too_long_for_the_clock_is_a_far_deadline_not_a_panic() {
        let now = std::time::Instant::now();
        assert!(instant_after(Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
        let soon = instant_after(Duration::from_secs(1));
        assert!(soon > now && soon <= std::time::Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(3), Duration::from_millis(400));
        assert_eq!(p.delay_after(4), Duration::from_millis(500));
        assert_eq!(p.delay_after(400), Duration::from_millis(500));
        assert!(p.retries_after(4));
        assert!(!p.retries_after(5));
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(validate_queue_name("emails.send-1_x").is_ok());
        for bad in ["", "a:b", "-a", "a b", "a*", &"x".repeat(101)] {
            assert!(validate_queue_name(bad).is_err(), "{bad:?}");
        }
        for bad in ["a{b", "a}b", "{q}"] {
            let err = validate_queue_name(bad).unwrap_err().to_string();
            assert!(
                err.contains("hash tag") && err.contains("'{'"),
                "{bad}: {err}"
            );
        }
    }
}
