//! RabbitMQ queue statistics and dead-letter operations, each on throwaway
//! channels of the adapter's connection: passive declares for counts,
//! `basic.get` for listing and requeueing dead letters (messages only read
//! are handed back with one `basic.nack`, and the call returns once the
//! queue's count shows them again), `queue.purge`, `queue.delete`.

use super::rabbitmq::{
    H_ATTEMPT, H_ATTEMPTS, H_ERROR, H_FAILED_AT, Topology, amqp_err, confirm_channel, properties,
    publish_confirmed,
};
use super::{DeadLetter, QueueError, QueueStats, Requeue, poison_error};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ErrorKind};
use std::time::{Duration, Instant};

/// How long a dead-letter operation waits for the messages it only read to
/// show in the queue's count again.
const SETTLE_BOUND: Duration = Duration::from_secs(2);

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(a) if a.get_id() == 404)
}

async fn channel(conn: &Connection) -> Result<Channel, QueueError> {
    conn.create_channel()
        .await
        .map_err(amqp_err("channel.open", "connection"))
}

async fn close(ch: &Channel) {
    if ch.status().connected() {
        let _ = ch.close(200, "OK".into()).await;
    }
}

/// Ready messages and consumers of a queue (passive declare), `None` when
/// the queue does not exist. Writes nothing.
pub(crate) async fn count(
    conn: &Connection,
    queue: &str,
) -> Result<Option<(u32, u32)>, QueueError> {
    let ch = channel(conn).await?;
    let declared = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(q) => {
            close(&ch).await;
            Ok(Some((q.message_count(), q.consumer_count())))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(amqp_err("queue.declare passive", queue)(e)),
    }
}

/// Counts of one queue. `in_flight` is unknown over AMQP (the management
/// API has it); `retrying` sums the delay queues.
pub(crate) async fn stats(conn: &Connection, t: &Topology) -> Result<QueueStats, QueueError> {
    let main = count(conn, &t.main).await?;
    let dead = count(conn, &t.dead).await?;
    let mut retrying = 0u64;
    for (_, name) in &t.retries {
        retrying += count(conn, name).await?.map_or(0, |(n, _)| u64::from(n));
    }
    Ok(QueueStats {
        queue: t.queue.clone(),
        key: t.main.clone(),
        waiting: main.map_or(0, |(n, _)| u64::from(n)),
        in_flight: None,
        retrying: Some(retrying),
        oldest_pending_age_ms: None,
        dead: dead.map_or(0, |(n, _)| u64::from(n)),
        oldest_age_ms: None,
        paused: None,
        consumers: main.map_or(0, |(_, c)| u64::from(c)),
        consumer_details: Vec::new(),
        unreadable: None,
    })
}

fn header_u64(props: &BasicProperties, name: &str) -> Option<u64> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::Timestamp(n) => Some(*n),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

fn header_text(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The attempt number a delivery carries (1 when absent).
pub(crate) fn attempt_of(props: &BasicProperties) -> u32 {
    header_u64(props, H_ATTEMPT)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

/// Message id of a delivery; deliveries published by others get one
/// derived from their delivery tag.
pub(crate) fn id_of(props: &BasicProperties, tag: u64) -> String {
    props
        .message_id()
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| format!("amqp-{tag}"))
}

/// The reason of the latest `x-death` entry the broker added when it
/// dead-lettered the message (`delivery_limit`, `rejected`, `expired`, …).
fn death_reason(props: &BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    match latest.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A dead letter from its message. Messages dead-lettered by the broker
/// itself carry no error header: past the delivery limit they get the
/// poison-message text, others (rejected elsewhere, expired) are described
/// as such.
fn dead_letter(t: &Topology, props: &BasicProperties, data: Vec<u8>, tag: u64) -> DeadLetter {
    let error = match death_reason(props).as_deref() {
        // The broker's `x-delivery-count` is not kept reliably on the dead
        // letter; the queue's limit is what was reached.
        Some("delivery_limit") => poison_error(u64::from(t.max_deliveries)),
        _ => header_text(props, H_ERROR)
            .unwrap_or_else(|| "dead-lettered by RabbitMQ (rejected or expired)".to_string()),
    };
    DeadLetter {
        id: id_of(props, tag),
        queue: t.queue.clone(),
        payload: data,
        error,
        attempts: header_u64(props, H_ATTEMPTS)
            .or_else(|| header_u64(props, H_ATTEMPT))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        failed_at_ms: header_u64(props, H_FAILED_AT).unwrap_or(0),
    }
}

/// Hand back, with one `basic.nack` (requeue), every message of `ch` up to
/// delivery tag `last` that was not acknowledged, close the channel, and
/// wait (at most [`SETTLE_BOUND`]) until `queue` counts at least `expected`
/// ready messages again.
///
/// Why: a quorum queue answers the passive declare behind `count` from the
/// state it has applied so far, so right after messages come back (on the
/// nack, or on closing a channel that held them) it may still count them
/// as taken; a count, a listing or a requeue made just after this call
/// would miss them. Waiting here makes the next call see them.
async fn give_back(conn: &Connection, ch: &Channel, queue: &str, last: Option<u64>, expected: u64) {
    if let Some(tag) = last {
        let all_up_to = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if let Err(e) = ch.basic_nack(tag, all_up_to).await {
            // Closing the channel below returns them as well.
            tracing::debug!(queue, error = %e, "basic.nack of read dead letters failed");
        }
    }
    close(ch).await;
    if last.is_none() {
        return;
    }
    let deadline = Instant::now() + SETTLE_BOUND;
    loop {
        let ready = match count(conn, queue).await {
            Ok(c) => c.map_or(0, |(n, _)| u64::from(n)),
            Err(_) => return,
        };
        if ready >= expected || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Up to `limit` dead letters, oldest first. They are read without
/// acknowledging and handed back to the queue before returning.
pub(crate) async fn list_dead(
    conn: &Connection,
    t: &Topology,
    limit: usize,
) -> Result<Vec<DeadLetter>, QueueError> {
    let ch = channel(conn).await?;
    let mut out = Vec::new();
    let (mut last, mut remaining) = (None, 0u64);
    while out.len() < limit {
        let got = ch
            .basic_get(t.dead.as_str().into(), BasicGetOptions { no_ack: false })
            .await;
        match got {
            Ok(Some(m)) => {
                let d = &m.delivery;
                last = Some(d.delivery_tag);
                remaining = u64::from(m.message_count);
                out.push(dead_letter(
                    t,
                    &d.properties,
                    d.data.clone(),
                    d.delivery_tag,
                ));
            }
            Ok(None) => break,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(amqp_err("basic.get", &t.dead)(e)),
        }
    }
    let read = u64::try_from(out.len()).unwrap_or(u64::MAX);
    give_back(conn, &ch, &t.dead, last, remaining.saturating_add(read)).await;
    Ok(out)
}

/// Move the chosen dead letters back to the queue with a fresh attempt
/// budget: each is republished (confirmed) before it is acknowledged on the
/// dead-letter queue; the others are handed back before returning.
///
/// Reads until the queue has no ready message left, at most as many as it
/// held at the first read (not bounded by a passive declare's count, which
/// a quorum queue may report low just after messages came back).
pub(crate) async fn requeue_dead(
    conn: &Connection,
    t: &Topology,
    which: &Requeue,
) -> Result<u64, QueueError> {
    let ch = confirm_channel(conn).await?;
    let (mut moved, mut kept) = (0u64, 0u64);
    let (mut last, mut remaining) = (None, 0u64);
    let mut bound: Option<u64> = None;
    while bound.is_none_or(|b| moved + kept < b) {
        let got = match ch
            .basic_get(t.dead.as_str().into(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(got) => got,
            Err(e) if is_not_found(&e) => return Ok(0),
            Err(e) => return Err(amqp_err("basic.get", &t.dead)(e)),
        };
        let Some(m) = got else { break };
        remaining = u64::from(m.message_count);
        bound.get_or_insert(remaining.saturating_add(1));
        let d = m.delivery;
        let id = id_of(&d.properties, d.delivery_tag);
        let wanted = match which {
            Requeue::All => true,
            Requeue::Ids(ids) => ids.contains(&id),
        };
        if !wanted {
            last = Some(d.delivery_tag);
            kept += 1;
            continue;
        }
        let mut headers = FieldTable::default();
        headers.insert(H_ATTEMPT.into(), AMQPValue::LongLongInt(1));
        publish_confirmed(&ch, "", &t.main, &d.data, properties(&id, headers)).await?;
        d.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(amqp_err("basic.ack", &t.dead))?;
        moved += 1;
    }
    give_back(conn, &ch, &t.dead, last, remaining.saturating_add(kept)).await;
    Ok(moved)
}

/// Delete every dead letter; returns how many.
pub(crate) async fn purge(conn: &Connection, dead: &str) -> Result<u64, QueueError> {
    let ch = channel(conn).await?;
    match ch
        .queue_purge(dead.into(), QueuePurgeOptions::default())
        .await
    {
        Ok(n) => {
            close(&ch).await;
            Ok(u64::from(n))
        }
        Err(e) if is_not_found(&e) => Ok(0),
        Err(e) => Err(amqp_err("queue.purge", dead)(e)),
    }
}

/// Delete the queue, its dead-letter and delay queues, and the dead-letter
/// exchange when no other queue of the namespace uses it.
pub(crate) async fn delete(conn: &Connection, t: &Topology) -> Result<(), QueueError> {
    let names = [t.main.as_str(), t.dead.as_str()]
        .into_iter()
        .chain(t.retries.iter().map(|(_, n)| n.as_str()));
    for name in names {
        let ch = channel(conn).await?;
        match ch
            .queue_delete(name.into(), QueueDeleteOptions::default())
            .await
        {
            Ok(_) => close(&ch).await,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(amqp_err("queue.delete", name)(e)),
        }
    }
    let ch = channel(conn).await?;
    let unused = ch
        .exchange_delete(
            t.exchange.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..ExchangeDeleteOptions::default()
            },
        )
        .await;
    if unused.is_ok() {
        close(&ch).await;
    }
    Ok(())
}
