//! Read-only queue statistics from Redis alone, for the adapter's `stats`
//! and for the inspector: SCAN for the queue keys, then one pipeline (TYPE,
//! XLEN, XINFO GROUPS, XPENDING summary, XINFO CONSUMERS, the first entry
//! and the pause flag of every queue:
//! [`QueueReads`], which the inspector merges into its own pipeline).
//! Nothing is written. A key that is not what the queue writes
//! becomes an entry with `unreadable` set and the key named.

use super::keys::{QUEUE_FAMILY, queue_name_of};
use super::redis_entries::{GROUP, Keys, entry_ms, pairs, text, uint};
use super::{ConsumerStats, QueueError, QueueStats};
use crate::config::Namespace;
use redis::Value;
use redis::aio::ConnectionLike;
use std::collections::BTreeSet;

fn scan_err(key: &str) -> impl FnOnce(redis::RedisError) -> QueueError {
    super::redis::redis_err("SCAN", key)
}

/// Every queue under `ns`, with its counts, sorted by name. Keys under
/// `<ns>:queue:` that do not belong to a queue are listed as unreadable.
/// SCAN, then one pipeline ([`QueueReads`] plus `TIME`).
///
/// `waiting` is `XLEN − pending`: the consumers delete every entry they
/// acknowledge, retry or dead-letter, so the stream holds exactly the
/// waiting and the pending (delivered, unacknowledged) messages.
pub async fn read_queue_stats<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> Result<Vec<QueueStats>, QueueError> {
    let pattern = ns.pattern(&format!("{QUEUE_FAMILY}*"));
    let mut cursor = 0u64;
    let mut found: Vec<Vec<u8>> = Vec::new();
    loop {
        let reply: Value = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .map_err(scan_err(&pattern))?;
        let Value::Array(parts) = &reply else {
            return Err(QueueError::Unreadable {
                key: pattern,
                reason: "SCAN reply is not an array".into(),
            });
        };
        cursor = parts.first().and_then(uint).unwrap_or(0);
        if let Some(Value::Array(keys)) = parts.get(1) {
            found.extend(keys.iter().filter_map(|k| match k {
                Value::BulkString(b) => Some(b.clone()),
                _ => None,
            }));
        }
        if cursor == 0 {
            break;
        }
    }
    run_with_time(
        conn,
        ns,
        QueueReads::from_keys(ns, found.iter().map(Vec::as_slice)),
    )
    .await
}

/// Stats of the named queues, in the given order (one pipeline).
pub(crate) async fn stats_for<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    names: Vec<String>,
) -> Result<Vec<QueueStats>, QueueError> {
    run_with_time(conn, ns, QueueReads::for_names(ns, names)).await
}

/// `TIME` and `reads` in one pipeline.
async fn run_with_time<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    reads: QueueReads,
) -> Result<Vec<QueueStats>, QueueError> {
    if reads.commands() == 0 {
        return Ok(reads.parse(&[], None));
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("TIME");
    reads.add_to(&mut pipe);
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(super::redis::redis_err(
            "stats pipeline",
            &ns.pattern(&format!("{QUEUE_FAMILY}*")),
        ))?;
    let now_ms = match replies.first() {
        Some(Value::Array(t)) => t
            .first()
            .and_then(uint)
            .map(|s| s.saturating_mul(1000) + t.get(1).and_then(uint).unwrap_or(0) / 1000),
        _ => None,
    };
    Ok(reads.parse(replies.get(1..).unwrap_or(&[]), now_ms))
}

fn server_error(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(format!("{}: {}", e.code(), e.details().unwrap_or(""))),
        _ => None,
    }
}

/// Commands per queue in [`QueueReads::add_to`].
const PER_QUEUE: usize = 9;

/// The per-key half of reading queues: which queues, and how to read them.
/// [`QueueReads::add_to`] appends, per queue, `TYPE` of both keys, `XLEN` +
/// `XINFO GROUPS` of the stream, `XLEN` of `:dead`, `XPENDING` (summary)
/// and `XINFO CONSUMERS` of the group, the stream's first entry (`XRANGE -
/// + COUNT 1`: the oldest unhandled message) and `GET` of the pause flag,
/// to a pipeline run with
/// `ignore_errors` (commands on a missing key or group just fail, and
/// their replies are not used); [`QueueReads::parse`] makes them
/// [`QueueStats`].
#[derive(Debug, Clone, Default)]
pub struct QueueReads {
    names: Vec<String>,
    keys: Vec<Keys>,
    /// Keys under the family that are not a queue's, with the reason.
    strays: Vec<(String, String)>,
}

impl QueueReads {
    /// The queues among `keys` (what a SCAN found; duplicates allowed):
    /// keys not under `<ns>:queue:` are ignored, keys under it that do not
    /// fit `<ns>:queue:{<queue>}[:dead]` become unreadable entries.
    pub fn from_keys<'a>(ns: &Namespace, keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let prefix = ns.key(QUEUE_FAMILY);
        let mut names = BTreeSet::new();
        let mut strays = BTreeSet::new();
        for raw in keys {
            if !raw.starts_with(prefix.as_bytes()) {
                continue;
            }
            let Ok(key) = std::str::from_utf8(raw) else {
                let key = String::from_utf8_lossy(raw).into_owned();
                strays.insert((key, "key name is not UTF-8".to_string()));
                continue;
            };
            match queue_name_of(ns, key) {
                Ok(name) => {
                    names.insert(name.to_string());
                }
                Err(reason) => {
                    strays.insert((key.to_string(), reason));
                }
            }
        }
        let mut reads = Self::for_names(ns, names.into_iter().collect());
        reads.strays = strays.into_iter().collect();
        reads
    }

    /// The named queues, in this order.
    pub fn for_names(ns: &Namespace, names: Vec<String>) -> Self {
        Self {
            keys: names.iter().map(|n| Keys::new(ns, n)).collect(),
            names,
            strays: Vec::new(),
        }
    }

    /// How many commands [`QueueReads::add_to`] appends.
    pub fn commands(&self) -> usize {
        self.keys.len() * PER_QUEUE
    }

    /// Append the reads of every queue.
    pub fn add_to(&self, pipe: &mut redis::Pipeline) {
        for k in &self.keys {
            pipe.cmd("TYPE").arg(&k.stream);
            pipe.cmd("TYPE").arg(&k.dead);
            pipe.cmd("XLEN").arg(&k.stream);
            pipe.cmd("XINFO").arg("GROUPS").arg(&k.stream);
            pipe.cmd("XLEN").arg(&k.dead);
            pipe.cmd("XPENDING").arg(&k.stream).arg(GROUP);
            pipe.cmd("XINFO").arg("CONSUMERS").arg(&k.stream).arg(GROUP);
            pipe.cmd("XRANGE")
                .arg(&k.stream)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1);
            pipe.cmd("GET").arg(&k.paused);
        }
    }

    /// The queues (in order, then the stray keys) from the replies of
    /// [`QueueReads::add_to`]; `now_ms` is the server clock for the oldest
    /// pending age (`None`: no age). Never fails: replies that do not fit
    /// (or are missing) make that queue unreadable, naming the key.
    pub fn parse(&self, replies: &[Value], now_ms: Option<u64>) -> Vec<QueueStats> {
        let mut out: Vec<QueueStats> = self
            .names
            .iter()
            .cloned()
            .zip(&self.keys)
            .enumerate()
            .map(|(i, (name, k))| {
                let r = replies.get(i * PER_QUEUE..(i + 1) * PER_QUEUE);
                one_queue(name, k, r, now_ms)
            })
            .collect();
        for (key, reason) in &self.strays {
            out.push(QueueStats {
                queue: String::new(),
                key: key.clone(),
                unreadable: Some(format!("not a queue key: {reason}")),
                ..QueueStats::default()
            });
        }
        out
    }
}

/// One queue from its [`PER_QUEUE`] replies.
fn one_queue(name: String, k: &Keys, r: Option<&[Value]>, now_ms: Option<u64>) -> QueueStats {
    let mut st = QueueStats {
        queue: name,
        key: k.stream.clone(),
        in_flight: Some(0),
        ..QueueStats::default()
    };
    let Some(
        [
            stream_type,
            dead_type,
            len,
            groups,
            dead_len,
            pending,
            consumers,
            first,
            paused,
        ],
    ) = r
    else {
        st.unreadable = Some(format!("no reply from Redis for {}", k.stream));
        return st;
    };
    let (mut stream_is_stream, mut dead_is_stream) = (false, false);
    for (reply, key, is_stream) in [
        (stream_type, &k.stream, &mut stream_is_stream),
        (dead_type, &k.dead, &mut dead_is_stream),
    ] {
        match text(reply).as_deref() {
            Some("stream") => *is_stream = true,
            Some("none") => {}
            Some(other) => {
                st.unreadable = Some(format!("{key} is a {other}, not a stream"));
                st.key = key.clone();
            }
            None => st.unreadable = Some(format!("TYPE {key} gave no answer")),
        }
    }
    let mut has_group = false;
    let mut stream_len = 0;
    if stream_is_stream {
        match uint(len) {
            Some(n) => stream_len = n,
            None => st.unreadable = Some(format!("XLEN {} failed", k.stream)),
        }
        match groups {
            Value::Array(gs) => {
                for g in gs {
                    let Some(p) = pairs(g) else {
                        st.unreadable = Some(format!("XINFO GROUPS {} is malformed", k.stream));
                        continue;
                    };
                    let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                    if get("name").as_ref().and_then(text).as_deref() == Some(GROUP) {
                        has_group = true;
                        st.consumers = get("consumers").as_ref().and_then(uint).unwrap_or(0);
                    }
                }
            }
            other => {
                st.unreadable = Some(format!(
                    "XINFO GROUPS {} failed: {}",
                    k.stream,
                    server_error(other).unwrap_or_else(|| "not an array".into())
                ));
            }
        }
        st.waiting = stream_len;
    }
    if dead_is_stream {
        match uint(dead_len) {
            Some(n) => st.dead = n,
            None => st.unreadable = Some(format!("XLEN {} failed", k.dead)),
        }
    }
    if has_group {
        match pending {
            Value::Array(p) => {
                let count = p.first().and_then(uint).unwrap_or(0);
                st.in_flight = Some(count);
                st.waiting = stream_len.saturating_sub(count);
                let oldest = p.get(1).and_then(text).and_then(|id| entry_ms(&id));
                st.oldest_pending_age_ms = match (now_ms, oldest) {
                    (Some(now), Some(then)) if count > 0 => Some(now.saturating_sub(then)),
                    _ => None,
                };
            }
            other => {
                st.unreadable = Some(format!(
                    "XPENDING {} failed: {}",
                    k.stream,
                    server_error(other).unwrap_or_else(|| "not an array".into())
                ));
            }
        }
        if let Value::Array(cs) = consumers {
            for c in cs {
                let Some(p) = pairs(c) else { continue };
                let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                st.consumer_details.push(ConsumerStats {
                    name: get("name").as_ref().and_then(text).unwrap_or_default(),
                    pending: get("pending").as_ref().and_then(uint).unwrap_or(0),
                    idle_ms: get("idle").as_ref().and_then(uint).unwrap_or(0),
                });
            }
        }
    }
    // The consumers delete what they settle: the stream's first entry is
    // the oldest message waiting or in flight, its ID its enqueue time.
    if stream_is_stream
        && let Value::Array(entries) = first
        && let Some(Value::Array(entry)) = entries.first()
        && let Some(id) = entry.first().and_then(text)
        && let (Some(now), Some(then)) = (now_ms, entry_ms(&id))
    {
        st.oldest_age_ms = Some(now.saturating_sub(then));
    }
    st.paused = match super::pause::parse(paused) {
        Ok(flag) => flag,
        Err(why) => Some(super::PauseFlag {
            by: "unknown".into(),
            reason: format!("unreadable pause flag {}: {why}", k.paused),
            since_ms: 0,
        }),
    };
    if st.unreadable.is_some() {
        return QueueStats {
            queue: st.queue,
            key: st.key,
            unreadable: st.unreadable,
            ..QueueStats::default()
        };
    }
    st
}
