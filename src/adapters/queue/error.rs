//! The queue's errors: one line each, naming the queue, key or URL (password
//! masked) and what to do.

use super::{MAX_QUEUE_NAME_LEN, RabbitQueueType};
use crate::adapters::redis_conn::ConnectError;
use std::time::Duration;

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// This backend cannot pause a queue's consumers.
    #[error(
        "pausing a queue needs the Redis queue (QUEUE_ADAPTER=redis) or the in-process one; the {backend} backend has no shared pause flag"
    )]
    PauseUnsupported {
        /// `rabbitmq`.
        backend: &'static str,
    },
    /// The queue name is not accepted.
    #[error(
        "queue name {0:?} is not accepted: use 1 to {MAX_QUEUE_NAME_LEN} of A-Z a-z 0-9 _ . - starting with a letter or digit (no ':', and no '{{' or '}}': the name is the Redis Cluster hash tag of its keys)"
    )]
    InvalidName(String),
    /// The concurrency of a subscription is zero or too large.
    #[error("concurrency {0} is not accepted: use 1 to 65535")]
    InvalidConcurrency(usize),
    /// Redis could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A Redis command failed.
    #[error("Redis {command} on {key} failed: {source}; check that Redis is up and reachable")]
    Redis {
        /// The command.
        command: &'static str,
        /// The key it was about.
        key: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// A key holds data this module did not write.
    #[error("{key} holds data the queue did not write ({reason}); inspect or delete that key")]
    Unreadable {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// RabbitMQ could not be reached.
    #[error(
        "cannot connect to RabbitMQ at {url}: {source}; check the URL, credentials and that the broker is up"
    )]
    AmqpConnect {
        /// The URL, password masked.
        url: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// The RabbitMQ URL's `cacertfile`, `certfile` or `keyfile` is wrong.
    #[error("{0}")]
    AmqpTls(crate::config::amqp_tls::AmqpTlsError),
    /// The broker's certificate failed verification.
    #[error("cannot connect to RabbitMQ at {url}: certificate not trusted ({reason}); {hint}")]
    AmqpUntrusted {
        /// The URL, password masked.
        url: String,
        /// What rustls found.
        reason: String,
        /// What to change.
        hint: String,
    },
    /// No connection within the deadline (TCP, TLS handshake, login).
    #[error(
        "cannot connect to RabbitMQ at {url}: no answer within {secs} s (connect, TLS handshake \
         and login); check the host, the port and that it speaks AMQP (amqps:// for a TLS port)"
    )]
    AmqpTimeout {
        /// The URL, password masked.
        url: String,
        /// The deadline.
        secs: u64,
    },
    /// A RabbitMQ operation failed.
    #[error("RabbitMQ {operation} on {target} failed: {source}; check the broker and its logs")]
    Amqp {
        /// What was being done.
        operation: &'static str,
        /// The queue or exchange.
        target: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// A queue exists on the broker with other arguments (usually a classic
    /// queue where a quorum one is declared, or the reverse).
    #[error(
        "RabbitMQ queue {queue} already exists with other arguments ({reply}); this node declares \
         it as {wanted}: delete the queue (after moving its messages: rabbitmqctl delete_queue \
         {queue}) or set QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE (QueueOptions::rabbitmq_queue_type) to \
         the type it has"
    )]
    AmqpInequivalent {
        /// The queue.
        queue: String,
        /// The broker's reply text (names the argument).
        reply: String,
        /// The type this node declares.
        wanted: RabbitQueueType,
    },
    /// RabbitMQ refused a message.
    #[error("RabbitMQ did not accept the message for {target}: {reason}")]
    NotConfirmed {
        /// The queue or exchange.
        target: String,
        /// Nack, or returned as unroutable.
        reason: String,
    },
    /// With a Sentinel-managed Redis: the message reached the master, but
    /// no replica confirmed it in time, so a failover now could lose it.
    #[error(
        "the message was written to {key} on the master, but no replica confirmed it within \
         {waited_ms} ms, so a failover now could lose it; publish it again (a duplicate is \
         possible) and check the replicas (clusterops check: redis-replicas)"
    )]
    NotReplicated {
        /// The stream key.
        key: String,
        /// How long the publish waited for a replica.
        waited_ms: u64,
    },
    /// The value to publish could not be turned into JSON.
    #[error("the message is not serializable as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A subscription did not stop in time.
    #[error(
        "the consumers of {queue} did not stop within {timeout:?}; their unfinished messages will be redelivered"
    )]
    ShutdownTimeout {
        /// The queue.
        queue: String,
        /// The bound.
        timeout: Duration,
    },
}
