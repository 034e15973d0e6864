//! Settling a message a Redis consumer handled: the handler's result
//! decides ([`outcome`]: acknowledge, retry after the backoff, or dead
//! letter), and one `MULTI` acknowledges and deletes the entry, with the
//! re-`XADD` of a retry or the `XADD` to the dead-letter stream in the same
//! transaction ([`settle`]); [`run_settle`] retries it while Redis is away.

use super::HandlerResult;
use super::Message;
use super::redis_consumer::ConsumerCtx;
use super::redis_entries::{GROUP, is_transient};
use super::subscription::{Stop, reconnect_backoff};
use crate::clock::now_ms;
use std::time::Instant;

pub(super) enum Settle {
    Ack,
    Retry(Message, String),
    Dead(Message, String),
}

pub(super) async fn outcome(
    ctx: &ConsumerCtx,
    msg: Message,
    result: HandlerResult,
    stop: &mut Stop,
) -> Settle {
    let retry = ctx.inner.options.retry;
    match result {
        Ok(()) => Settle::Ack,
        Err(error) if retry.retries_after(msg.attempt) => {
            // Wait out the backoff while holding the entry (the heartbeat
            // keeps it ours); a stopping consumer requeues at once.
            stop.sleep(retry.delay_after(msg.attempt)).await;
            Settle::Retry(msg, error)
        }
        Err(error) => Settle::Dead(msg, error),
    }
}

/// Requeue the entry with the next attempt number, or move it to the dead
/// letters (an `Ack` here acknowledges just this entry); each as one
/// MULTI/EXEC that also acknowledges and deletes the entry.
pub(super) async fn settle(ctx: &ConsumerCtx, entry_id: &str, how: Settle) {
    let key = &ctx.keys.stream;
    let mut pipe = redis::pipe();
    pipe.atomic();
    match &how {
        Settle::Ack => {}
        Settle::Retry(msg, error) => {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("id")
                .arg(&msg.id)
                .arg("attempt")
                .arg(msg.attempt + 1)
                .arg("payload")
                .arg(&msg.payload)
                .arg("error")
                .arg(error)
                .ignore();
        }
        Settle::Dead(msg, error) => {
            pipe.cmd("XADD")
                .arg(&ctx.keys.dead)
                .arg("*")
                .arg("id")
                .arg(&msg.id)
                .arg("payload")
                .arg(&msg.payload)
                .arg("error")
                .arg(error)
                .arg("attempts")
                .arg(msg.attempt)
                .arg("failed_at")
                .arg(now_ms())
                .ignore();
        }
    }
    pipe.cmd("XACK").arg(key).arg(GROUP).arg(entry_id).ignore();
    pipe.cmd("XDEL").arg(key).arg(entry_id).ignore();
    run_settle(ctx, &pipe, entry_id).await;
}

/// Run a settling MULTI, retrying while Redis is unreachable (at most
/// `reconnect_timeout`); after that the entries stay pending and are
/// redelivered.
pub(crate) async fn run_settle(ctx: &ConsumerCtx, pipe: &redis::Pipeline, entry_id: &str) {
    let deadline = super::instant_after(ctx.inner.options.reconnect_timeout);
    let mut backoff = reconnect_backoff();
    loop {
        let mut conn = ctx.conn.clone();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => return,
            Err(e) if is_transient(&e) && Instant::now() < deadline => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(queue = %ctx.queue, entry = entry_id, error = %e, "queue consumer could not settle a message; it will be redelivered");
                return;
            }
        }
    }
}
