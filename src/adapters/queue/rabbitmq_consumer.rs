//! One RabbitMQ consumer: its own connection and channel (prefetch =
//! concurrency, manual acks, publisher confirms for retries and dead
//! letters), reconnecting with backoff after the broker drops it. Messages
//! unacknowledged when a channel closes are redelivered by the broker.

use super::rabbitmq::{
    H_ATTEMPT, H_ATTEMPTS, H_ERROR, H_FAILED_AT, Inner, Topology, amqp_err, confirm_channel,
    declare, open, properties, publish_confirmed,
};
use super::rabbitmq_admin::{attempt_of, id_of};
use super::subscription::{Stop, drain, reap, reconnect_backoff, run_handler};
use super::{Handler, Message, QueueError};
use crate::clock::now_ms;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, Consumer};
use std::sync::Arc;
use tokio::task::JoinSet;

pub(crate) struct ConsumerCtx {
    pub inner: Arc<Inner>,
    pub topology: Topology,
    pub tag: String,
    pub number: u32,
    pub handler: Handler,
    pub concurrency: usize,
}

struct Session {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
}

async fn open_session(ctx: &ConsumerCtx) -> Result<Session, QueueError> {
    let name = format!(
        "clusterops {} {} consumer {}",
        ctx.inner.ns, ctx.inner.node_id, ctx.topology.queue
    );
    let conn = open(&ctx.inner.url, name).await?;
    let channel = confirm_channel(&conn).await?;
    declare(&channel, &ctx.topology).await?;
    let prefetch = u16::try_from(ctx.concurrency).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(amqp_err("basic.qos", &ctx.topology.main))?;
    let consumer = channel
        .basic_consume(
            ctx.topology.main.as_str().into(),
            ctx.tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp_err("basic.consume", &ctx.topology.main))?;
    Ok(Session {
        conn,
        channel,
        consumer,
    })
}

pub(crate) async fn run(ctx: Arc<ConsumerCtx>, mut stop: Stop) {
    let mut tasks = JoinSet::new();
    let mut backoff = reconnect_backoff();
    let options = ctx.inner.options;
    'connect: loop {
        reap(&mut tasks);
        if stop.is_set() {
            break;
        }
        let mut session = match open_session(&ctx).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(queue = %ctx.topology.queue, error = %e, "queue consumer cannot reach RabbitMQ; retrying");
                stop.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        loop {
            tokio::select! {
                biased;
                _ = stop.wait() => {
                    let _ = session
                        .channel
                        .basic_cancel(ctx.tag.as_str().into(), BasicCancelOptions::default())
                        .await;
                    let abandoned = drain(&mut tasks, options.shutdown_timeout).await;
                    if abandoned > 0 {
                        tracing::warn!(queue = %ctx.topology.queue, abandoned, "queue consumer stopped with unfinished handlers; their messages will be redelivered");
                    }
                    // Closing the channel returns prefetched, unhandled
                    // messages to the queue.
                    let _ = session.channel.close(200, "OK".into()).await;
                    let _ = session.conn.close(200, "OK".into()).await;
                    break 'connect;
                }
                next = session.consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        reap(&mut tasks);
                        let ctx = ctx.clone();
                        let channel = session.channel.clone();
                        tasks.spawn(async move { handle(&ctx, &channel, delivery).await });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(queue = %ctx.topology.queue, error = %e, "queue consumer lost RabbitMQ; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!(queue = %ctx.topology.queue, "queue consumer was cancelled by the broker; reconnecting");
                        break;
                    }
                },
            }
        }
        let _ = session.conn.close(200, "reconnecting".into()).await;
        stop.sleep(backoff.next_delay()).await;
    }
    // Stopped while disconnected: let handlers of the lost channel finish
    // (their messages were already returned to the queue by the broker).
    drain(&mut tasks, options.shutdown_timeout).await;
    ctx.inner.numbers.release(&ctx.topology.queue, ctx.number);
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn ms(n: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Run the handler on one delivery and settle it: ack; or republish to the
/// delay queue with the next attempt number, then ack; or publish to the
/// dead-letter exchange, then ack. Publishing is confirmed before the ack,
/// so a crash in between duplicates rather than loses.
async fn handle(ctx: &ConsumerCtx, channel: &Channel, delivery: Delivery) {
    let t = &ctx.topology;
    let retry = ctx.inner.options.retry;
    let msg = Message {
        id: id_of(&delivery.properties, delivery.delivery_tag),
        queue: t.queue.clone(),
        payload: delivery.data.clone(),
        attempt: attempt_of(&delivery.properties),
    };
    let attempt = msg.attempt;
    let result = run_handler(&ctx.handler, msg.clone()).await;
    let republished = match result {
        Ok(()) => Ok(()),
        Err(error) => {
            let mut headers = FieldTable::default();
            headers.insert(H_ERROR.into(), text(&error));
            let target = if retry.retries_after(attempt) {
                headers.insert(H_ATTEMPT.into(), ms(u64::from(attempt) + 1));
                t.retry_queue(&retry, attempt)
                    .map(|q| (String::new(), q.to_string()))
            } else {
                None
            };
            let (exchange, routing) = match target {
                Some(to) => to,
                None => {
                    headers.insert(H_ATTEMPT.into(), ms(u64::from(attempt)));
                    headers.insert(H_ATTEMPTS.into(), ms(u64::from(attempt)));
                    headers.insert(H_FAILED_AT.into(), ms(now_ms()));
                    (t.exchange.clone(), t.queue.clone())
                }
            };
            publish_confirmed(
                channel,
                &exchange,
                &routing,
                &msg.payload,
                properties(&msg.id, headers),
            )
            .await
        }
    };
    let settled = match republished {
        Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
        Err(e) => {
            tracing::warn!(queue = %t.queue, error = %e, "queue consumer could not schedule a retry; the message goes back to the queue");
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(queue = %t.queue, error = %e, "queue consumer could not acknowledge; the message will be redelivered");
    }
}
