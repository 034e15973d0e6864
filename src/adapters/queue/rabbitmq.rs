//! The RabbitMQ queue backend: topology, the shared publishing connection
//! (publisher confirms, reconnect on failure) and the adapter API. The
//! consumer loop is in `rabbitmq_consumer`, the queues and their arguments
//! in `rabbitmq_topology`, the dead-letter and stats
//! operations in `rabbitmq_admin`. Topology and retry design: `docs/queue.md`.

use super::backend::{Backend, Consumers, Started};
use super::rabbitmq_admin as admin;
use super::rabbitmq_consumer::{self, ConsumerCtx};
pub(crate) use super::rabbitmq_topology::{Topology, declare};
use super::subscription::{ConsumerNumbers, retrying};
use super::{DeadLetter, QueueError, QueueOptions, QueueStats, Requeue, new_message_id};
use crate::config::{Namespace, SecretUrl};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Header: the attempt number of the delivery (1 on the first).
pub(crate) const H_ATTEMPT: &str = "x-attempt";
/// Header: the last handler error (retries and dead letters).
pub(crate) const H_ERROR: &str = "x-last-error";
/// Header on dead letters: failed attempts.
pub(crate) const H_ATTEMPTS: &str = "x-attempts";
/// Header on dead letters: when, in ms since the epoch.
pub(crate) const H_FAILED_AT: &str = "x-failed-at";

pub(crate) fn amqp_err(
    operation: &'static str,
    target: &str,
) -> impl FnOnce(lapin::Error) -> QueueError {
    let target = target.to_string();
    move |source| QueueError::Amqp {
        operation,
        target,
        source,
    }
}

/// Properties of a queue message: persistent, with its id and headers.
pub(crate) fn properties(id: &str, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(id.chars().take(255).collect::<String>()))
        .with_headers(headers)
}

/// Publish and wait for the broker's confirm; unroutable or nacked
/// messages are errors.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), QueueError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            props,
        )
        .await
        .map_err(amqp_err("basic.publish", routing_key))?
        .await
        .map_err(amqp_err("publisher confirm", routing_key))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(ret)) => Err(QueueError::NotConfirmed {
            target: routing_key.to_string(),
            reason: format!("returned as unroutable: {}", ret.reply_text),
        }),
        Confirmation::Nack(_) => Err(QueueError::NotConfirmed {
            target: routing_key.to_string(),
            reason: "nacked by the broker".into(),
        }),
    }
}

/// Open a connection named for `rabbitmqctl list_connections`.
pub(crate) async fn open(url: &SecretUrl, name: String) -> Result<Connection, QueueError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    super::amqp_connect::connect_amqp(url, props).await
}

/// A channel in confirm mode.
pub(crate) async fn confirm_channel(conn: &Connection) -> Result<Channel, QueueError> {
    let ch = conn
        .create_channel()
        .await
        .map_err(amqp_err("channel.open", "connection"))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp_err("confirm.select", "channel"))?;
    Ok(ch)
}

struct Publisher {
    conn: Arc<Connection>,
    channel: Channel,
    declared: HashSet<String>,
}

pub(crate) struct Inner {
    pub url: SecretUrl,
    pub ns: Namespace,
    pub node_id: String,
    pub options: QueueOptions,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    pub numbers: ConsumerNumbers,
}

/// The queue on RabbitMQ.
#[derive(Clone)]
pub struct RabbitQueue {
    inner: Arc<Inner>,
}

impl RabbitQueue {
    /// Connect to RabbitMQ at `url`; queue names start with `ns`, consumer
    /// tags with `node_id`.
    pub async fn connect(
        url: &SecretUrl,
        ns: Namespace,
        node_id: impl Into<String>,
        options: QueueOptions,
    ) -> Result<Self, QueueError> {
        let me = Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                ns,
                node_id: node_id.into(),
                options,
                publisher: tokio::sync::Mutex::new(None),
                numbers: ConsumerNumbers::default(),
            }),
        };
        me.session(None).await?;
        Ok(me)
    }

    pub(crate) fn topology(&self, queue: &str) -> Topology {
        Topology::new(&self.inner.ns, queue, &self.inner.options)
    }

    /// The publishing connection and channel, reconnected when broken, with
    /// the topology of `queue` declared.
    async fn session(
        &self,
        topology: Option<&Topology>,
    ) -> Result<(Arc<Connection>, Channel), QueueError> {
        let mut guard = self.inner.publisher.lock().await;
        if let Some(p) = guard.as_mut()
            && p.conn.status().connected()
            && !p.channel.status().connected()
        {
            // The channel was closed after a nack (or by the broker): a new
            // one on the same connection; if that fails, reconnect below.
            match confirm_channel(&p.conn).await {
                Ok(channel) => p.channel = channel,
                Err(e) => {
                    tracing::debug!(error = %e, "queue: no new RabbitMQ channel; reconnecting")
                }
            }
        }
        let healthy = guard
            .as_ref()
            .is_some_and(|p| p.conn.status().connected() && p.channel.status().connected());
        if !healthy {
            if let Some(old) = guard.take() {
                let _ = old.conn.close(200, "reconnecting".into()).await;
            }
            let name = format!(
                "clusterops {} {} publisher",
                self.inner.ns, self.inner.node_id
            );
            let conn = open(&self.inner.url, name).await?;
            let channel = confirm_channel(&conn).await?;
            *guard = Some(Publisher {
                conn: Arc::new(conn),
                channel,
                declared: HashSet::new(),
            });
        }
        let Some(p) = guard.as_mut() else {
            return Err(QueueError::NotConfirmed {
                target: "connection".into(),
                reason: "no publishing connection".into(),
            });
        };
        if let Some(t) = topology
            && !p.declared.contains(&t.main)
        {
            declare(&p.channel, t).await?;
            p.declared.insert(t.main.clone());
        }
        Ok((p.conn.clone(), p.channel.clone()))
    }

    /// Close the publishing channel, so that the next operation opens a
    /// new one. After a nack: a channel that published to a quorum queue
    /// while its leader was being re-elected (its broker died) can go on
    /// nacking every message to that queue (seen with RabbitMQ 3.10); a
    /// new channel finds the new leader.
    async fn close_channel(&self) {
        if let Some(p) = self.inner.publisher.lock().await.as_ref() {
            let _ = p
                .channel
                .close(200, "nacked; opening a new channel".into())
                .await;
        }
    }

    async fn forget_declared(&self, main: &str) {
        if let Some(p) = self.inner.publisher.lock().await.as_mut() {
            p.declared.remove(main);
        }
    }

    /// Run an operation on the publishing session, reconnecting and retrying
    /// while the broker is unreachable (at most `reconnect_timeout`).
    async fn retrying<T, F, Fut>(&self, topology: Option<&Topology>, op: F) -> Result<T, QueueError>
    where
        F: Fn(Arc<Connection>, Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, QueueError>>,
    {
        // What the failed try left to clean before the next one: 1 = its
        // topology may be half declared, 2 = that and a channel that nacked.
        let left = AtomicU8::new(0);
        let (op, left) = (&op, &left);
        let attempt = || async move {
            let cleanup = left.swap(0, Ordering::Relaxed);
            if cleanup > 0
                && let Some(t) = topology
            {
                self.forget_declared(&t.main).await;
            }
            if cleanup > 1 {
                self.close_channel().await;
            }
            let result = match self.session(topology).await {
                Ok((conn, channel)) => op(conn, channel).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                let nacked = matches!(e, QueueError::NotConfirmed { .. });
                left.store(if nacked { 2 } else { 1 }, Ordering::Relaxed);
            }
            result
        };
        let timeout = self.inner.options.reconnect_timeout;
        retrying(timeout, "RabbitMQ", attempt, retryable).await
    }
}

fn retryable(e: &QueueError) -> bool {
    matches!(
        e,
        QueueError::Amqp { .. }
            | QueueError::AmqpConnect { .. }
            | QueueError::AmqpTimeout { .. }
            | QueueError::NotConfirmed { .. }
    )
}

impl Backend for RabbitQueue {
    const KIND: &'static str = "rabbitmq";

    fn options(&self) -> &QueueOptions {
        &self.inner.options
    }

    async fn put(&self, queue: &str, payload: &[u8]) -> Result<String, QueueError> {
        let t = self.topology(queue);
        let id = new_message_id();
        let mut headers = FieldTable::default();
        headers.insert(H_ATTEMPT.into(), AMQPValue::LongLongInt(1));
        let props = properties(&id, headers);
        self.retrying(Some(&t), |_, ch| {
            let (props, main) = (props.clone(), t.main.clone());
            async move { publish_confirmed(&ch, "", &main, payload, props).await }
        })
        .await?;
        Ok(id)
    }

    async fn consume(&self, queue: &str, c: Consumers) -> Result<Started, QueueError> {
        let topology = self.topology(queue);
        self.retrying(Some(&topology), |_, _| async { Ok(()) })
            .await?;
        let number = self.inner.numbers.claim(queue);
        let tag = format!("{}-{number}", self.inner.node_id);
        let ctx = ConsumerCtx {
            inner: self.inner.clone(),
            topology,
            tag: tag.clone(),
            number,
            handler: c.handler,
            concurrency: c.concurrency,
        };
        let task = tokio::spawn(rabbitmq_consumer::run(Arc::new(ctx), c.stop));
        Ok((tag, task))
    }

    async fn counts(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let t = self.topology(queue);
        self.retrying(None, |conn, _| {
            let t = t.clone();
            async move { admin::stats(&conn, &t).await }
        })
        .await
    }

    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError> {
        let t = self.topology(queue);
        self.retrying(None, |conn, _| {
            let dead = t.dead.clone();
            async move {
                Ok(admin::count(&conn, &dead)
                    .await?
                    .map_or(0, |(n, _)| u64::from(n)))
            }
        })
        .await
    }

    async fn dead_list(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let t = self.topology(queue);
        self.retrying(None, |conn, _| {
            let t = t.clone();
            async move { admin::list_dead(&conn, &t, limit).await }
        })
        .await
    }

    async fn dead_requeue(&self, queue: &str, which: Requeue) -> Result<u64, QueueError> {
        let t = self.topology(queue);
        // Not retried as a whole: a partial run already moved some; the
        // caller sees the error and can run it again.
        let (conn, _) = self.session(Some(&t)).await?;
        admin::requeue_dead(&conn, &t, &which).await
    }

    async fn dead_purge(&self, queue: &str) -> Result<u64, QueueError> {
        let t = self.topology(queue);
        self.retrying(None, |conn, _| {
            let dead = t.dead.clone();
            async move { admin::purge(&conn, &dead).await }
        })
        .await
    }

    async fn remove(&self, queue: &str) -> Result<(), QueueError> {
        let t = self.topology(queue);
        self.forget_declared(&t.main).await;
        self.retrying(None, |conn, _| {
            let t = t.clone();
            async move { admin::delete(&conn, &t).await }
        })
        .await
    }
}
