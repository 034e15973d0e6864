//! The per-node reader of the Redis backend: one task, one dedicated
//! blocking connection, one `XREAD BLOCK … STREAMS k1 k2 … id1 id2 …` for
//! every subscribed channel at once, dispatching entries to the local
//! subscriptions in stream order.
//!
//! Why one reader per node rather than one per subscription: a node holds
//! one blocking connection whatever its number of channels (Redis sees
//! nodes × 1 clients instead of nodes × channels), one round trip returns
//! news from every channel, and several subscriptions to one channel share
//! one read. The cost is that a new channel must be added to a read that is
//! already blocked: [`RedisSignals::subscribe`](super::RedisSignals) bumps a
//! generation and kicks the reader with `CLIENT UNBLOCK` until the reader's
//! next XREAD includes it (if that command is denied, the reader picks it up
//! when its current read times out, after at most
//! [`RedisSignalsOptions::block`](super::RedisSignalsOptions)). Every read
//! names an explicit last-handled ID per stream, never `$`, so nothing
//! published between two reads is missed, whatever interrupted them.
//!
//! A stream key that another writer replaced by a different type makes the
//! whole XREAD fail with WRONGTYPE: the reader then finds the key with TYPE,
//! logs an error naming it and leaves that channel out of its reads for a
//! while (checking again later), so the other channels keep flowing.
//!
//! When Redis drops the connection (or does not answer within the block time
//! plus a margin), the reader reconnects with exponential backoff (50 ms to
//! 1 s, jittered) and resumes from the last IDs it dispatched.

use super::envelope::{EntryId, Position, decode_entry};
use super::redis::Inner;
use super::reply;
use crate::adapters::redis_conn;
use crate::backoff::Backoff;
use ::redis::Value;
use ::redis::aio::MultiplexedConnection;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Client-side margin over the XREAD block time before the connection is
/// considered dead.
const READ_MARGIN: Duration = Duration::from_secs(3);
/// How long a channel whose key is not a stream is left out of the reads.
const WRONG_TYPE_PAUSE: Duration = Duration::from_secs(10);

/// One stream of a read: channel, key and the ID it reads after.
struct Target {
    channel: String,
    key: String,
    after: EntryId,
}

/// One reader: every channel, or (Redis Cluster) the channels whose stream
/// lives in one hash slot, with what its subscribers wait on.
pub(crate) struct Lane {
    /// `None`: every channel; `Some(slot)`: the channels of that slot.
    slot: Option<u16>,
    /// Generation of the channel set used by the reader's current XREAD.
    pub(crate) generation: AtomicU64,
    /// `CLIENT ID` of the reader's blocking connection (for CLIENT UNBLOCK).
    pub(crate) client: Mutex<Option<i64>>,
    /// The channel set changed (wakes an idle reader).
    pub(crate) changed: Notify,
    /// The reader is about to send a new XREAD.
    pub(crate) started: Notify,
}

impl Lane {
    pub(crate) fn new(slot: Option<u16>) -> Self {
        Self {
            slot,
            generation: AtomicU64::new(0),
            client: Mutex::new(None),
            changed: Notify::new(),
            started: Notify::new(),
        }
    }

    fn reads(&self, key: &str) -> bool {
        self.slot
            .is_none_or(|s| redis_conn::cluster::slot_of(key.as_bytes()) == s)
    }
}

/// The streams of `lane` to read now, the generation they belong to, and
/// when the earliest paused channel may be read again.
fn snapshot(inner: &Inner, lane: &Lane) -> (u64, Vec<Target>, Option<tokio::time::Instant>) {
    let now = tokio::time::Instant::now();
    let st = inner.state.lock();
    let mut resume = None;
    let mut targets = Vec::new();
    for (name, ch) in &st.channels {
        if ch.subs.is_empty() || !lane.reads(&ch.key) {
            continue;
        }
        match ch.paused_until {
            Some(t) if t > now => {
                resume = Some(resume.map_or(t, |r: tokio::time::Instant| r.min(t)));
            }
            _ => targets.push(Target {
                channel: name.clone(),
                key: ch.key.clone(),
                after: ch.pos.id,
            }),
        }
    }
    (st.generation, targets, resume)
}

async fn open(inner: &Inner, lane: &Lane, key: &str) -> Result<MultiplexedConnection, String> {
    let mut conn = inner.conn.blocking(key).await.map_err(|e| e.to_string())?;
    let id = tokio::time::timeout(
        redis_conn::RESPONSE_TIMEOUT,
        ::redis::cmd("CLIENT")
            .arg("ID")
            .query_async::<i64>(&mut conn),
    )
    .await
    .map_err(|_| "CLIENT ID timed out".to_string())?
    .map_err(|e| format!("CLIENT ID failed: {e}"))?;
    *lane.client.lock() = Some(id);
    Ok(conn)
}

/// The wait after `failures` failures in a row: from 50 ms doubling, at most
/// 1.25 s, with jitter so that nodes do not reconnect in lockstep.
fn backoff(failures: u32) -> Duration {
    Backoff::jittered(BACKOFF_MIN, BACKOFF_MAX + BACKOFF_MAX / 4).delay(failures)
}

/// The reader task of `lane`: runs until the adapter shuts down.
pub(crate) async fn run(inner: Arc<Inner>, lane: Arc<Lane>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut conn: Option<MultiplexedConnection> = None;
    // The shared connection's generation when `conn` was opened: with
    // Sentinel, a newer one means the master moved and `conn` may still be
    // on the demoted one.
    let mut opened_at = 0u64;
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let changed = lane.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (generation, targets, resume) = snapshot(&inner, &lane);
        if targets.is_empty() {
            lane.generation.store(generation, Ordering::Release);
            lane.started.notify_waiters();
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = &mut changed => continue,
                _ = tokio::time::sleep_until(resume.unwrap_or(far)) => continue,
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match open(&inner, &lane, &targets[0].key).await {
                Ok(c) => {
                    opened_at = inner.conn.generation();
                    if failures > 0 {
                        tracing::info!(url = %inner.url, "sync-signal reader reconnected to Redis");
                    }
                    failures = 0;
                    conn.insert(c)
                }
                Err(e) => {
                    fail(&inner, &lane, &mut failures, &e);
                    if sleep_or_stop(&mut shutdown, backoff(failures)).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(inner.options.batch.max(1))
            .arg("BLOCK")
            .arg(inner.options.block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for t in &targets {
            cmd.arg(&t.key);
        }
        for t in &targets {
            cmd.arg(t.after.to_string());
        }
        lane.generation.store(generation, Ordering::Release);
        lane.started.notify_waiters();
        let limit = inner.options.block + READ_MARGIN;
        let result = tokio::select! {
            r = tokio::time::timeout(limit, cmd.query_async::<Value>(c)) => r,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        if inner.conn.generation() != opened_at {
            tracing::info!(url = %inner.url, "the Redis master moved; the sync-signal reader follows it");
            conn = None;
        }
        match result {
            Ok(Ok(value)) => match dispatch(&inner, &targets, value) {
                // Let the subscriptions just woken run on this worker
                // before the next read is sent: sending it wakes the
                // connection's task, which would push them to the back of
                // the queue (or to another worker thread, which on a busy
                // host may wait milliseconds for a CPU).
                Ok(true) => tokio::task::yield_now().await,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(url = %inner.url, "unexpected XREAD reply ({e}); reading again");
                    if sleep_or_stop(&mut shutdown, BACKOFF_MAX).await {
                        break;
                    }
                }
            },
            Ok(Err(e)) if e.code() == Some("WRONGTYPE") => {
                // A stream key was replaced by another type: stop reading
                // that channel for a while, keep reading the others.
                if !pause_wrong_types(&inner, &targets).await
                    && sleep_or_stop(&mut shutdown, BACKOFF_MAX).await
                {
                    break;
                }
            }
            Ok(Err(e)) => {
                conn = None;
                fail(&inner, &lane, &mut failures, &format!("XREAD failed: {e}"));
                if sleep_or_stop(&mut shutdown, backoff(failures)).await {
                    break;
                }
            }
            Err(_) => {
                conn = None;
                let e = format!("no XREAD reply within {limit:?}");
                fail(&inner, &lane, &mut failures, &e);
            }
        }
    }
    *lane.client.lock() = None;
}

/// Pause the channels whose key is not a stream (checked with TYPE on the
/// shared connection); true when at least one was found.
async fn pause_wrong_types(inner: &Inner, targets: &[Target]) -> bool {
    let mut pipe = ::redis::pipe();
    for t in targets {
        pipe.cmd("TYPE").arg(&t.key);
    }
    let types: Vec<String> = match pipe.query_async(&mut inner.conn.clone()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!("TYPE check of sync-signal streams failed: {e}");
            return false;
        }
    };
    let until = tokio::time::Instant::now() + WRONG_TYPE_PAUSE;
    let mut st = inner.state.lock();
    let mut found = false;
    for (t, kind) in targets.iter().zip(types) {
        if kind == "stream" || kind == "none" {
            continue;
        }
        found = true;
        tracing::error!(
            stream = %t.key,
            "{} holds a {kind}, not a stream: channel {:?} is not read (checked again every {:?}); \
             delete the key to resume",
            t.key,
            t.channel,
            WRONG_TYPE_PAUSE
        );
        if let Some(ch) = st.channels.get_mut(&t.channel) {
            ch.paused_until = Some(until);
        }
    }
    found
}

fn fail(inner: &Inner, lane: &Lane, failures: &mut u32, error: &str) {
    *lane.client.lock() = None;
    if *failures == 0 {
        tracing::warn!(url = %inner.url, "sync-signal reader lost Redis ({error}); reconnecting");
    } else {
        tracing::debug!(url = %inner.url, attempt = *failures, "sync-signal reader: {error}");
    }
    *failures = failures.saturating_add(1);
}

/// Sleep, or return true when the adapter shuts down meanwhile.
async fn sleep_or_stop(shutdown: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

/// Hand the entries of one XREAD reply to the subscriptions, and move each
/// channel's read position past them (unreadable entries included); true
/// when a subscription was given a message.
fn dispatch(inner: &Inner, targets: &[Target], value: Value) -> Result<bool, String> {
    let streams = reply::xread(value)?;
    let mut delivered = false;
    let mut st = inner.state.lock();
    for (key, entries) in streams {
        let Some(target) = targets.iter().find(|t| t.key == key) else {
            continue;
        };
        let Some(ch) = st.channels.get_mut(&target.channel) else {
            continue;
        };
        // The position moved back meanwhile (last subscription dropped with
        // unreturned messages): read again from there instead.
        if ch.subs.is_empty() || ch.pos.id != target.after {
            continue;
        }
        for entry in entries {
            if entry.id <= ch.pos.id {
                continue;
            }
            let decoded = entry
                .fields
                .and_then(|f| decode_entry(&target.channel, entry.id, &f));
            match decoded {
                Ok((signal, seq)) => {
                    let pos = Position { id: entry.id, seq };
                    let own = signal.sender == inner.node;
                    for sub in &ch.subs {
                        if own && !sub.include_own {
                            continue;
                        }
                        let mut pending = sub.pending.lock();
                        pending.push_back(pos);
                        if sub.sender.send(signal.clone()) {
                            delivered = true;
                        } else {
                            pending.pop_back();
                        }
                    }
                    ch.pos = pos;
                }
                Err(reason) => {
                    tracing::warn!(
                        stream = %key,
                        entry = %entry.id,
                        "skipping an unreadable sync-signal entry: {reason}"
                    );
                    ch.pos.id = entry.id;
                }
            }
        }
    }
    Ok(delivered)
}
