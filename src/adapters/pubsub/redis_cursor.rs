//! The cursors of the Redis backend: where a node starts reading a channel
//! (its recorded cursor, else the stream's last entry) and the flusher that
//! writes `<ns>:signal:{<channel>}:cursors` field `<node>` when it changed, at
//! most every [`RedisSignalsOptions::cursor_flush_interval`] and once more on
//! shutdown. A cursor never passes a message some local subscription has not
//! finished (see [`super::Subscription`]), so a restarted node resumes at the
//! first message it had not handled (at-least-once for the one in flight).
//!
//! [`RedisSignalsOptions::cursor_flush_interval`]: super::RedisSignalsOptions::cursor_flush_interval

use super::PubsubError;
use super::envelope::{EntryId, Position, decode_cursor, encode_cursor};
use super::redis::{CURSOR_REFRESH, Inner, Written, cursors_key, seq_key, stream_key};
use super::reply::{self, RawEntry};
use crate::clock::now_ms;
use ::redis::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Inner {
    /// Write every cursor that changed since it was last written, and
    /// every unchanged one not written for [`CURSOR_REFRESH`].
    pub(crate) async fn flush_cursors(&self) {
        let now = Instant::now();
        let now_ms = now_ms();
        let changes: Vec<(String, String, Written)> = {
            let st = self.state.lock();
            st.channels
                .iter()
                .filter_map(|(name, ch)| {
                    let pos = ch.cursor();
                    let moved_at_ms = match ch.written {
                        Some(w) if w.pos == pos && now.duration_since(w.at) < CURSOR_REFRESH => {
                            return None;
                        }
                        Some(w) if w.pos == pos => w.moved_at_ms,
                        _ => now_ms,
                    };
                    let w = Written {
                        pos,
                        moved_at_ms,
                        at: now,
                    };
                    Some((name.clone(), cursors_key(&self.ns, name), w))
                })
                .collect()
        };
        if changes.is_empty() {
            return;
        }
        let mut pipe = ::redis::pipe();
        for (_, key, w) in &changes {
            pipe.hset(key, &self.node, encode_cursor(w.pos, w.moved_at_ms, now_ms))
                .ignore();
        }
        match pipe.query_async::<()>(&mut self.conn.clone()).await {
            Ok(()) => {
                if self.flush_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %self.url, "sync-signal cursors are written again");
                }
                let mut st = self.state.lock();
                for (name, _, w) in changes {
                    if let Some(ch) = st.channels.get_mut(&name) {
                        ch.written = Some(w);
                    }
                }
            }
            Err(e) => {
                if !self.flush_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        url = %self.url,
                        key = %changes[0].1,
                        "cannot write sync-signal cursors ({e}); retrying every flush interval"
                    );
                }
            }
        }
    }

    /// Where a node starts reading `channel` when it has no local state:
    /// its recorded cursor if readable, else the stream's last entry.
    pub(crate) async fn resolve_start(&self, channel: &str) -> Result<Position, PubsubError> {
        let key = stream_key(&self.ns, channel);
        let ckey = cursors_key(&self.ns, channel);
        let skey = seq_key(&self.ns, channel);
        let (cursor, first, last, seq): (Option<Vec<u8>>, Value, Value, Option<Vec<u8>>) =
            ::redis::pipe()
                .atomic()
                .hget(&ckey, &self.node)
                .cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .get(&skey)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|source| PubsubError::Redis {
                    key: key.clone(),
                    source,
                })?;
        let first = one_entry(&key, first)?;
        if let Some(raw) = cursor {
            match decode_cursor(&raw) {
                Ok((pos, _)) => {
                    warn_if_trimmed(&key, &self.node, pos, first.as_ref());
                    return Ok(pos);
                }
                Err(reason) => tracing::warn!(
                    key = %ckey,
                    field = %self.node,
                    "unreadable sync-signal cursor ({reason}); reading new messages only"
                ),
            }
        }
        let last = one_entry(&key, last)?.map_or(EntryId::ZERO, |e| e.id);
        let seq = match seq {
            None => 0,
            Some(raw) => std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PubsubError::Unreadable {
                    key: skey,
                    reason: "not an integer counter".to_string(),
                })?,
        };
        Ok(Position { id: last, seq })
    }
}

fn one_entry(key: &str, v: Value) -> Result<Option<RawEntry>, PubsubError> {
    reply::entries(v)
        .map(|e| e.into_iter().next())
        .map_err(|reason| PubsubError::Unreadable {
            key: key.to_string(),
            reason,
        })
}

fn warn_if_trimmed(key: &str, node: &str, cursor: Position, first: Option<&RawEntry>) {
    let Some(first) = first else { return };
    let first_seq = first.fields.as_ref().ok().and_then(|f| {
        f.iter()
            .find(|(k, _)| k.as_slice() == b"seq")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
    });
    if first.id > cursor.id
        && let Some(first_seq) = first_seq
        && first_seq > cursor.seq + 1
    {
        tracing::warn!(
            stream = %key,
            node = %node,
            missed = first_seq - cursor.seq - 1,
            "this node resumes after messages that were already trimmed from the stream"
        );
    }
}

/// The flusher task: runs until the adapter shuts down, then flushes once more.
pub(crate) async fn run_flusher(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut tick = tokio::time::interval(inner.options.cursor_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if stop {
            break;
        }
        inner.flush_cursors().await;
    }
    inner.flush_cursors().await;
}
