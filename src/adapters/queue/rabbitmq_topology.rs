//! The RabbitMQ topology of one queue: its names (main, dead-letter and
//! delay queues, the dead-letter exchange), their arguments for quorum or
//! classic queues, and declaring them with one clear error when a queue of
//! the same name exists with other arguments.

use super::rabbitmq::amqp_err;
use super::{QueueError, QueueOptions, RabbitQueueType};
use crate::config::Namespace;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ErrorKind, ExchangeKind};
use std::collections::BTreeSet;

/// The RabbitMQ names of one queue.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    pub queue: String,
    /// `<ns>.<name>`: waiting messages.
    pub main: String,
    /// `<ns>.<name>.dead`: dead letters.
    pub dead: String,
    /// `<ns>.dead`: the dead-letter exchange (direct), routing key `<name>`.
    pub exchange: String,
    /// `(<delay ms>, <ns>.<name>.retry.<delay ms>)`: one delay queue per
    /// distinct backoff delay of the retry policy.
    pub retries: Vec<(u64, String)>,
    /// Quorum or classic, for every queue above.
    pub kind: RabbitQueueType,
    /// Quorum: deliveries without an acknowledgement before the broker
    /// dead-letters a message.
    pub max_deliveries: u32,
}

impl Topology {
    pub(crate) fn new(ns: &Namespace, queue: &str, options: &QueueOptions) -> Self {
        let retry = &options.retry;
        let main = format!("{}.{queue}", ns.name());
        let delays: BTreeSet<u64> = (1..retry.max_attempts.max(1))
            .map(|a| u64::try_from(retry.delay_after(a).as_millis()).unwrap_or(u64::MAX))
            .collect();
        Self {
            queue: queue.to_string(),
            dead: format!("{main}.dead"),
            exchange: format!("{}.dead", ns.name()),
            retries: delays
                .into_iter()
                .map(|ms| (ms, format!("{main}.retry.{ms}")))
                .collect(),
            main,
            kind: options.rabbitmq_queue_type,
            max_deliveries: options.max_deliveries.max(1),
        }
    }

    /// The delay queue for the retry after failed attempt `attempt`.
    pub(crate) fn retry_queue(&self, retry: &super::RetryPolicy, attempt: u32) -> Option<&str> {
        let ms = u64::try_from(retry.delay_after(attempt).as_millis()).unwrap_or(u64::MAX);
        self.retries
            .iter()
            .find(|(d, _)| *d == ms)
            .map(|(_, n)| n.as_str())
    }

    /// Arguments every queue of this topology carries.
    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.kind == RabbitQueueType::Quorum {
            args.insert("x-queue-type".into(), long("quorum"));
        }
        args
    }

    /// The main queue: dead-letters into the dead-letter exchange; on quorum
    /// queues also after `max_deliveries` unacknowledged deliveries (the
    /// broker dead-letters once a message was returned more than
    /// `x-delivery-limit` times).
    pub(crate) fn main_args(&self) -> FieldTable {
        let mut args = self.base_args();
        args.insert("x-dead-letter-exchange".into(), long(&self.exchange));
        args.insert("x-dead-letter-routing-key".into(), long(&self.queue));
        if self.kind == RabbitQueueType::Quorum {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.max_deliveries - 1)),
            );
        }
        args
    }

    /// A delay queue: a queue-wide TTL, then back to the main queue. Quorum
    /// delay queues dead-letter at least once (which needs `reject-publish`
    /// overflow), so a broker crash at expiry cannot drop the message.
    pub(crate) fn delay_args(&self, ms: u64) -> FieldTable {
        let mut args = self.base_args();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        args.insert("x-dead-letter-exchange".into(), long(""));
        args.insert("x-dead-letter-routing-key".into(), long(&self.main));
        if self.kind == RabbitQueueType::Quorum {
            args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
            args.insert("x-overflow".into(), long("reject-publish"));
        }
        args
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// PRECONDITION_FAILED on a declare: the queue exists with other arguments.
fn inequivalent(t: &Topology, queue: &str) -> impl FnOnce(lapin::Error) -> QueueError {
    let (queue, wanted) = (queue.to_string(), t.kind);
    move |e| match e.kind() {
        ErrorKind::ProtocolError(a) if a.get_id() == 406 => QueueError::AmqpInequivalent {
            reply: a.get_message().as_str().to_string(),
            queue,
            wanted,
        },
        _ => amqp_err("queue.declare", &queue)(e),
    }
}

/// Declare the exchange and queues of one queue (idempotent).
pub(crate) async fn declare(channel: &Channel, t: &Topology) -> Result<(), QueueError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            t.exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp_err("exchange.declare", &t.exchange))?;
    channel
        .queue_declare(t.dead.as_str().into(), durable, t.base_args())
        .await
        .map_err(inequivalent(t, &t.dead))?;
    channel
        .queue_bind(
            t.dead.as_str().into(),
            t.exchange.as_str().into(),
            t.queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp_err("queue.bind", &t.dead))?;
    channel
        .queue_declare(t.main.as_str().into(), durable, t.main_args())
        .await
        .map_err(inequivalent(t, &t.main))?;
    for (ms, name) in &t.retries {
        channel
            .queue_declare(name.as_str().into(), durable, t.delay_args(*ms))
            .await
            .map_err(inequivalent(t, name))?;
    }
    Ok(())
}
