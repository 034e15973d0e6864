//! One Redis consumer: reads its own pending entries first, then new ones
//! with XREADGROUP BLOCK on a dedicated connection, reclaims entries of dead
//! consumers with XAUTOCLAIM, keeps its in-flight entries fresh (XCLAIM
//! JUSTID) so nobody reclaims them, and settles each message: XACK+XDEL
//! (in batches, sent with the next read: `redis_acks`), re-XADD for a
//! retry, or XADD to the dead-letter stream.

use super::pause::PauseWatch;
use super::redis::{Inner, RedisQueue};
use super::redis_acks::{AckQueue, acker, add_acks, release};
use super::redis_entries::{
    Entry, GROUP, Keys, is_nogroup, is_transient, message_from, parse_autoclaim, parse_xread,
};
use super::redis_poison::{count_deliveries, exhausted};
use super::redis_settle::{Settle, outcome, settle};
use super::subscription::{Stop, drain, reap, reconnect_backoff, run_handler};
use super::{Handler, Message, poison_error};
use crate::adapters::redis_conn::SharedConn;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Script};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Deletes the consumer from the group only when it has nothing pending
/// (deleting a consumer drops its pending entries from the group).
const FORGET_CONSUMER: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return -1
";

pub(crate) struct ConsumerCtx {
    pub inner: Arc<Inner>,
    /// The subscription's own connection for acknowledgements, retries and
    /// heartbeats, so they do not queue behind the node's publishes.
    pub conn: SharedConn,
    pub queue: String,
    pub keys: Keys,
    pub consumer: String,
    pub number: u32,
    pub handler: Handler,
    pub concurrency: usize,
    /// What the subscription reports as paused.
    pub pause_state: super::PauseState,
}

/// Entry ids this consumer holds (handler running, retry waiting, or
/// acknowledgement under way).
pub(crate) type Held = Arc<Mutex<HashSet<String>>>;

/// A helper task of the consumer, aborted when the consumer is dropped
/// (aborted) and awaited on a clean stop.
struct Child(Option<JoinHandle<()>>);

impl Child {
    async fn join(mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Entry ids whose handler succeeded, for the reader's next read or the
/// acker.
type Acks = Arc<AckQueue>;

/// Where the next read comes from.
enum Source {
    /// This consumer's own pending entries, after the cursor.
    History(String),
    /// Entries idle longer than the visibility timeout, from any consumer.
    Reclaim,
    /// New entries.
    New,
}

pub(crate) async fn run(ctx: Arc<ConsumerCtx>, mut stop: Stop) {
    let held: Held = Arc::default();
    let _heartbeat = Child(Some(tokio::spawn(heartbeat(ctx.clone(), held.clone()))));
    let acks: Acks = Arc::default();
    let acker = Child(Some(tokio::spawn(acker(
        ctx.clone(),
        held.clone(),
        acks.clone(),
    ))));
    let slots = Arc::new(Semaphore::new(ctx.concurrency));
    let mut tasks = JoinSet::new();
    let mut reader: Option<MultiplexedConnection> = None;
    let mut reader_opened_at = 0u64;
    let mut history = Some("0".to_string());
    let mut claim_cursor = "0-0".to_string();
    let mut next_claim = Instant::now();
    let mut backoff = reconnect_backoff();
    let options = ctx.inner.options;
    let reclaim_every = (options.visibility_timeout / 2).max(Duration::from_millis(50));
    let mut pause = PauseWatch::new(options.poll_interval);
    loop {
        reap(&mut tasks);
        if stop.is_set() {
            break;
        }
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.wait() => break,
        };
        let mut permits = vec![first];
        // Let finishing handlers return their slots so one read fills many.
        tokio::task::yield_now().await;
        while permits.len() < ctx.concurrency {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        // The pause flag, read at most once per poll interval, once a slot is
        // free: while it is set nothing is taken (running handlers finish
        // and are acknowledged).
        if pause.due() {
            let mut c = ctx.conn.clone();
            let paused = pause.read(&mut c, &ctx.keys.paused).await;
            ctx.pause_state.set(paused);
        }
        if pause.paused() {
            drop(permits);
            stop.sleep(pause.every()).await;
            continue;
        }
        if reader.is_some() && ctx.conn.generation() != reader_opened_at {
            // Sentinel moved the master: the reader may be on the demoted
            // one. Read our pending entries again on the new master.
            tracing::info!(queue = %ctx.queue, "the Redis master moved; the queue consumer follows it");
            reader = None;
            history = Some("0".to_string());
        }
        let conn = match &mut reader {
            Some(c) => c,
            None => match ctx.conn.blocking(&ctx.keys.stream).await {
                Ok(c) => {
                    reader_opened_at = ctx.conn.generation();
                    reader.insert(c)
                }
                Err(e) => {
                    tracing::warn!(queue = %ctx.queue, error = %e, "queue consumer cannot reach Redis; retrying");
                    stop.sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        let source = match &history {
            Some(cursor) => Source::History(cursor.clone()),
            None if Instant::now() >= next_claim => Source::Reclaim,
            None => Source::New,
        };
        let count = permits.len();
        // Acknowledgements ride along with a read of new entries.
        let batch = match source {
            Source::New => acks.take(),
            _ => Vec::new(),
        };
        let result = read(conn, &ctx, &source, count, &claim_cursor, &batch).await;
        if result.is_ok() {
            release(&held, &batch);
        } else {
            acks.put_back(batch);
        }
        let entries = match result {
            Ok((entries, cursor)) => {
                backoff.reset();
                match source {
                    Source::History(_) => {
                        history = entries.last().map(|e| e.id.clone());
                    }
                    Source::Reclaim => {
                        if let Some(c) = cursor {
                            if c == "0-0" {
                                next_claim = super::instant_after(reclaim_every);
                            }
                            claim_cursor = c;
                        }
                    }
                    Source::New => {}
                }
                entries
            }
            Err(_) if stop.is_set() => break,
            Err(ReadError::Redis(e)) if is_nogroup(&e) => {
                let mut c = ctx.conn.clone();
                if let Err(e) = RedisQueue::ensure_group(&mut c, &ctx.keys.stream).await {
                    tracing::warn!(queue = %ctx.queue, error = %e, "queue consumer cannot create its group");
                    stop.sleep(backoff.next_delay()).await;
                }
                continue;
            }
            Err(ReadError::Redis(e)) => {
                if is_transient(&e) {
                    tracing::warn!(queue = %ctx.queue, error = %e, "queue consumer lost Redis; reconnecting");
                    reader = None;
                    // Read our own pending entries again after reconnecting:
                    // a read may have been delivered without reaching us.
                    history = Some("0".to_string());
                } else {
                    tracing::error!(queue = %ctx.queue, key = %ctx.keys.stream, error = %e, "queue consumer read failed");
                }
                stop.sleep(backoff.next_delay()).await;
                continue;
            }
            Err(ReadError::Garbage(reason)) => {
                tracing::error!(queue = %ctx.queue, key = %ctx.keys.stream, %reason, "queue consumer got an unreadable reply");
                stop.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        for entry in entries {
            if held.lock().contains(&entry.id) {
                continue;
            }
            let Some(permit) = permits.pop() else {
                break;
            };
            dispatch(&ctx, &held, &acks, &mut tasks, entry, permit, &stop);
        }
    }
    let abandoned = drain(&mut tasks, options.shutdown_timeout).await;
    acks.close();
    acker.join().await;
    if abandoned > 0 {
        tracing::warn!(queue = %ctx.queue, abandoned, "queue consumer stopped with unfinished handlers; their messages will be redelivered");
    } else {
        forget_consumer(&ctx).await;
    }
    ctx.inner.numbers.release(&ctx.queue, ctx.number);
}

enum ReadError {
    Redis(RedisError),
    Garbage(String),
}

async fn read(
    conn: &mut MultiplexedConnection,
    ctx: &ConsumerCtx,
    source: &Source,
    count: usize,
    claim_cursor: &str,
    acks: &[String],
) -> Result<(Vec<Entry>, Option<String>), ReadError> {
    let options = &ctx.inner.options;
    let mut cmd = match source {
        Source::Reclaim => {
            let idle = u64::try_from(options.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&ctx.keys.stream)
                .arg(GROUP)
                .arg(&ctx.consumer)
                .arg(idle)
                .arg(claim_cursor)
                .arg("COUNT")
                .arg(count);
            cmd
        }
        Source::History(_) | Source::New => {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&ctx.consumer)
                .arg("COUNT")
                .arg(count);
            if matches!(source, Source::New) {
                let block = u64::try_from(options.poll_interval.as_millis()).unwrap_or(1000);
                cmd.arg("BLOCK").arg(block.max(1));
            }
            cmd.arg("STREAMS").arg(&ctx.keys.stream);
            cmd
        }
    };
    match source {
        Source::History(cursor) => cmd.arg(cursor),
        Source::New => cmd.arg(">"),
        Source::Reclaim => &mut cmd,
    };
    let v: redis::Value = if acks.is_empty() {
        cmd.query_async(conn).await.map_err(ReadError::Redis)?
    } else {
        let mut pipe = redis::pipe();
        add_acks(&mut pipe, &ctx.keys.stream, acks);
        pipe.add_command(cmd);
        let (v,): (redis::Value,) = pipe.query_async(conn).await.map_err(ReadError::Redis)?;
        v
    };
    let (mut entries, cursor) = match source {
        Source::New => return Ok((parse_xread(v).map_err(ReadError::Garbage)?, None)),
        Source::History(_) => (parse_xread(v).map_err(ReadError::Garbage)?, None),
        Source::Reclaim => {
            let (cursor, entries) = parse_autoclaim(v).map_err(ReadError::Garbage)?;
            if !entries.is_empty() {
                tracing::info!(queue = %ctx.queue, consumer = %ctx.consumer, n = entries.len(), "queue consumer reclaimed messages of an unresponsive consumer");
            }
            (entries, Some(cursor))
        }
    };
    // Redelivered entries: their delivery counters bound poison messages.
    count_deliveries(conn, &ctx.keys, &ctx.consumer, &mut entries)
        .await
        .map_err(ReadError::Redis)?;
    Ok((entries, cursor))
}

fn dispatch(
    ctx: &Arc<ConsumerCtx>,
    held: &Held,
    acks: &Acks,
    tasks: &mut JoinSet<()>,
    entry: Entry,
    permit: OwnedSemaphorePermit,
    stop: &Stop,
) {
    let ctx = ctx.clone();
    let held = held.clone();
    let acks = acks.clone();
    let mut stop = stop.clone();
    held.lock().insert(entry.id.clone());
    tasks.spawn(async move {
        let entry_id = entry.id.clone();
        match entry.fields {
            // Deleted while pending (e.g. its queue was purged): drop it
            // from the group.
            None => {
                drop(permit);
                acks.push(entry_id);
                return;
            }
            Some(fields) => match message_from(&ctx.queue, &entry_id, &fields) {
                Ok(msg) if let Some(n) = exhausted(entry.deliveries, ctx.inner.options.max_deliveries) => {
                    drop(permit);
                    tracing::error!(queue = %ctx.queue, key = %ctx.keys.stream, id = %msg.id, deliveries = n, "poison message moved to dead letters");
                    settle(&ctx, &entry_id, Settle::Dead(msg, poison_error(n))).await;
                }
                Ok(msg) => {
                    let result = run_handler(&ctx.handler, msg.clone()).await;
                    if result.is_ok() {
                        // Queued before the slot is free, so the read the
                        // free slot starts carries it. Whoever sends it
                        // removes it from `held`.
                        acks.push(entry_id);
                        drop(permit);
                        return;
                    }
                    drop(permit);
                    match outcome(&ctx, msg, result, &mut stop).await {
                        Settle::Ack => {
                            acks.push(entry_id);
                            return;
                        }
                        other => settle(&ctx, &entry_id, other).await,
                    }
                }
                Err(reason) => {
                    drop(permit);
                    let payload = super::redis_entries::field(&fields, "payload")
                        .unwrap_or_default()
                        .to_vec();
                    let id = super::redis_entries::field(&fields, "id")
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_else(|| entry_id.clone());
                    let msg = Message {
                        id,
                        queue: ctx.queue.clone(),
                        payload,
                        attempt: 0,
                    };
                    tracing::error!(queue = %ctx.queue, key = %ctx.keys.stream, %reason, "unreadable queue entry moved to dead letters");
                    settle(&ctx, &entry_id, Settle::Dead(msg, format!("unreadable queue entry: {reason}"))).await;
                }
            },
        }
        held.lock().remove(&entry_id);
    });
}

/// Every third of the visibility timeout, reset the idle time of the
/// entries this consumer holds so that no other consumer reclaims them.
async fn heartbeat(ctx: Arc<ConsumerCtx>, held: Held) {
    let every = (ctx.inner.options.visibility_timeout / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<String> = held.lock().iter().cloned().collect();
        if ids.is_empty() {
            continue;
        }
        let mut conn = ctx.conn.clone();
        let r: Result<redis::Value, RedisError> = redis::cmd("XCLAIM")
            .arg(&ctx.keys.stream)
            .arg(GROUP)
            .arg(&ctx.consumer)
            .arg(0)
            .arg(&ids)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            tracing::debug!(queue = %ctx.queue, error = %e, "queue heartbeat failed");
        }
    }
}

/// On a clean stop with nothing pending, remove the consumer from the group
/// so the group lists live consumers only.
async fn forget_consumer(ctx: &ConsumerCtx) {
    let mut conn = ctx.conn.clone();
    let r: Result<i64, RedisError> = Script::new(FORGET_CONSUMER)
        .key(&ctx.keys.stream)
        .arg(GROUP)
        .arg(&ctx.consumer)
        .invoke_async(&mut conn)
        .await;
    if let Err(e) = r {
        tracing::debug!(queue = %ctx.queue, error = %e, "queue consumer could not leave its group");
    }
}
