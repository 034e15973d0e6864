//! Read-only inspection of the sync-signal keys for the console: every
//! channel's stream, its publish counter and each node's cursor and lag.
//! Only SCAN and one pipeline of XINFO STREAM / HGETALL / GET (no writes;
//! the pipeline's commands and the parsing of its replies are
//! [`StreamReads`], so the inspector can merge them into its own pipeline);
//! a key that does not match docs/redis-keys.md is reported as unreadable.
//! Also [`forget_node`], the one writing helper: drop a dead node's cursors.

use super::PubsubError;
use super::envelope::decode_cursor;
use super::keys::{Role, SIGNAL_FAMILY, cursors_pattern, parse_key, stream_key};
use super::reply::{self, bytes, text};
use crate::clock::now_ms;
use crate::config::Namespace;
use ::redis::Value;
use ::redis::aio::ConnectionLike;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One channel as seen in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    /// The channel name (for an unrecognised key: the part after
    /// `<ns>:signal:`).
    pub channel: String,
    /// The stream key, `<ns>:signal:{<channel>}`.
    pub key: String,
    /// Entries in the stream now (0 when the stream does not exist).
    pub length: u64,
    /// The oldest entry still in the stream.
    pub first_id: Option<String>,
    /// The newest entry.
    pub last_id: Option<String>,
    /// Messages ever published on the channel (the `:seq` counter).
    pub published: u64,
    /// Every node with a cursor, by node ID (live or not: filter by the
    /// live node list).
    pub per_node: Vec<NodeLag>,
    /// Keys or fields of this channel that do not match the documented format.
    pub unreadable: Vec<Unreadable>,
}

/// One node's position in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLag {
    /// The node ID.
    pub node: String,
    /// The last entry it handled.
    pub last_id: String,
    /// Messages published after that entry (`published − cursor seq`).
    pub lag: u64,
    /// Milliseconds since its cursor last moved (it is written within the
    /// flush interval of handling; an idle, caught-up node's age grows too).
    pub last_handled_age_ms: u64,
    /// Age of the first entry after its cursor, when it lags; filled by
    /// [`add_oldest_unhandled`] (one more request, only when a node lags).
    pub oldest_unhandled_age_ms: Option<u64>,
}

/// Fill [`NodeLag::oldest_unhandled_age_ms`] of every lagging node: one
/// pipeline of `XRANGE <stream> (<cursor> + COUNT 1` (the first entry it
/// has not handled; its ID's time against `now_ms`, the server clock).
/// Sends nothing when no node lags; a failed read leaves the ages unknown.
pub async fn add_oldest_unhandled<C: ConnectionLike + Send>(
    conn: &mut C,
    streams: &mut [StreamInfo],
    now_ms: u64,
) {
    let mut pipe = ::redis::pipe();
    pipe.ignore_errors();
    let mut at: Vec<(usize, usize)> = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        for (j, n) in s.per_node.iter().enumerate() {
            if n.lag > 0 && s.length > 0 {
                pipe.cmd("XRANGE")
                    .arg(&s.key)
                    .arg(format!("({}", n.last_id))
                    .arg("+")
                    .arg("COUNT")
                    .arg(1);
                at.push((i, j));
            }
        }
    }
    if at.is_empty() {
        return;
    }
    let Ok(replies) = pipe.query_async::<Vec<Value>>(conn).await else {
        return;
    };
    for ((i, j), reply) in at.into_iter().zip(replies) {
        let Value::Array(entries) = reply else {
            continue;
        };
        let id = entries.first().and_then(|e| match e {
            Value::Array(parts) => parts.first().and_then(text),
            _ => None,
        });
        let ms = id.and_then(|id| id.split('-').next()?.parse::<u64>().ok());
        if let (Some(ms), Some(s)) = (ms, streams.get_mut(i))
            && let Some(n) = s.per_node.get_mut(j)
        {
            n.oldest_unhandled_age_ms = Some(now_ms.saturating_sub(ms));
        }
    }
}

/// A key (or one hash field) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The key.
    pub key: String,
    /// The hash field, for one bad cursor.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

pub(crate) async fn scan<C: ConnectionLike + Send>(
    conn: &mut C,
    pattern: &str,
) -> Result<BTreeSet<Vec<u8>>, PubsubError> {
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .map_err(|source| PubsubError::Redis {
                key: pattern.to_string(),
                source,
            })?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Every channel under `ns`, with each node's lag, sorted by channel and
/// node. Read-only: SCAN, then one pipeline of XINFO STREAM, HGETALL and GET
/// ([`StreamReads`]).
///
/// Lag of a node = `published` (the channel's `:seq` counter) minus the
/// `seq` recorded in its cursor: the number of messages published after the
/// last one it handled, trimmed ones included. If the counter is below the
/// cursor's (Redis lost its data and the node has handled nothing since),
/// the lag is the counter itself.
pub async fn read_streams<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> Result<Vec<StreamInfo>, PubsubError> {
    let keys = scan(conn, &ns.pattern(&format!("{SIGNAL_FAMILY}*"))).await?;
    let reads = StreamReads::from_keys(ns, keys.iter().map(Vec::as_slice));
    let mut replies: Vec<Value> = Vec::new();
    if reads.commands() > 0 {
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        reads.add_to(&mut pipe);
        replies = pipe
            .query_async(conn)
            .await
            .map_err(|source| PubsubError::Redis {
                key: ns.key(SIGNAL_FAMILY),
                source,
            })?;
    }
    Ok(reads.parse(&replies, now_ms()))
}

/// The per-key half of [`read_streams`]: what to read for the sync-signal
/// keys a SCAN found. [`StreamReads::add_to`] appends one command per key
/// (`XINFO STREAM`, `HGETALL` or `GET`) to a pipeline run with
/// `ignore_errors`; [`StreamReads::parse`] turns the replies into
/// [`StreamInfo`]s. The inspector puts these reads in its one pipeline.
#[derive(Debug, Default)]
pub struct StreamReads {
    /// Per channel, what is known before reading (unrecognised keys).
    channels: BTreeMap<String, StreamInfo>,
    /// The keys to read: channel, key, what the key is.
    reads: Vec<(String, String, Role)>,
    /// The namespace (`None` only for the empty default).
    ns: Option<Namespace>,
}

impl StreamReads {
    /// Sort `keys` (what a SCAN found; duplicates allowed) into the keys of
    /// each channel. Keys not under `<ns>:signal:` are ignored; keys under
    /// it that are not a channel's stream, `:seq` or `:cursors` in the
    /// layout `<ns>:signal:{<channel>}[:cursors|:seq]` are reported as
    /// unreadable, with the reason.
    pub fn from_keys<'a>(ns: &Namespace, keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let prefix = ns.key(SIGNAL_FAMILY);
        let keys: BTreeSet<&[u8]> = keys
            .into_iter()
            .filter(|k| k.starts_with(prefix.as_bytes()))
            .collect();
        let mut channels: BTreeMap<String, StreamInfo> = BTreeMap::new();
        let mut reads: Vec<(String, String, Role)> = Vec::new();
        for raw in keys {
            let key = String::from_utf8_lossy(raw).into_owned();
            match parse_key(ns, &key) {
                Ok((channel, role)) => reads.push((channel.to_string(), key.clone(), role)),
                Err(reason) => {
                    let channel = key.strip_prefix(&prefix).unwrap_or(&key).to_string();
                    let info = channels.entry(channel.clone()).or_default();
                    info.channel = channel;
                    info.unreadable.push(Unreadable {
                        key,
                        field: None,
                        reason: format!("not a sync-signal key: {reason}"),
                    });
                }
            }
        }
        Self {
            channels,
            reads,
            ns: Some(ns.clone()),
        }
    }

    /// How many commands [`StreamReads::add_to`] appends.
    pub fn commands(&self) -> usize {
        self.reads.len()
    }

    /// Append one read per key.
    pub fn add_to(&self, pipe: &mut ::redis::Pipeline) {
        for (_, key, role) in &self.reads {
            match role {
                Role::Stream => pipe.cmd("XINFO").arg("STREAM").arg(key),
                Role::Cursors => pipe.cmd("HGETALL").arg(key),
                Role::Seq => pipe.cmd("GET").arg(key),
            };
        }
    }

    /// The channels, sorted, from the replies of [`StreamReads::add_to`]
    /// (`now_ms`: the clock the cursors' ages are measured against). Never
    /// fails: a reply that does not match the documented format (or is
    /// missing) becomes an unreadable entry naming the key.
    pub fn parse(&self, replies: &[Value], now: u64) -> Vec<StreamInfo> {
        let (mut channels, reads) = (self.channels.clone(), &self.reads);
        let mut cursors: BTreeMap<String, Vec<(String, u64, u64, String)>> = BTreeMap::new();
        // Per channel: the `:seq` counter and the last entry's `seq` (fallback).
        let mut counters: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
        for (i, (channel, key, role)) in reads.iter().enumerate() {
            let info = channels.entry(channel.clone()).or_default();
            info.channel = channel.clone();
            if let Some(ns) = &self.ns {
                info.key = stream_key(ns, channel);
            }
            let bad = |reason: String| Unreadable {
                key: key.clone(),
                field: None,
                reason,
            };
            let value = match replies.get(i) {
                Some(Value::ServerError(e)) => {
                    info.unreadable.push(bad(format!(
                        "cannot be read: {} {}",
                        e.code(),
                        e.details().unwrap_or("")
                    )));
                    continue;
                }
                Some(v) => v,
                None => {
                    info.unreadable.push(bad("no reply from Redis".to_string()));
                    continue;
                }
            };
            match role {
                Role::Stream => match stream_summary(value.clone()) {
                    Ok(Summary {
                        length,
                        first,
                        last,
                        last_seq,
                    }) => {
                        info.length = length;
                        info.first_id = first;
                        info.last_id = last;
                        counters.entry(channel.clone()).or_default().1 = last_seq;
                    }
                    Err(reason) => info.unreadable.push(bad(reason)),
                },
                Role::Seq => match bytes(value)
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(n) => counters.entry(channel.clone()).or_default().0 = Some(n),
                    None => info
                        .unreadable
                        .push(bad("not an integer counter".to_string())),
                },
                Role::Cursors => match reply::pairs(value) {
                    Some(pairs) => {
                        for (field, raw) in pairs {
                            let node = String::from_utf8_lossy(field).into_owned();
                            match decode_cursor(raw) {
                                Ok((pos, at_ms)) => {
                                    cursors.entry(channel.clone()).or_default().push((
                                        node,
                                        pos.seq,
                                        now.saturating_sub(at_ms),
                                        pos.id.to_string(),
                                    ))
                                }
                                Err(reason) => info.unreadable.push(Unreadable {
                                    key: key.clone(),
                                    field: Some(node),
                                    reason,
                                }),
                            }
                        }
                    }
                    None => info.unreadable.push(bad("not a hash".to_string())),
                },
            }
        }
        for (channel, (counter, last_seq)) in counters {
            if let Some(info) = channels.get_mut(&channel) {
                info.published = counter.or(last_seq).unwrap_or(0);
            }
        }
        for (channel, nodes) in cursors {
            let Some(info) = channels.get_mut(&channel) else {
                continue;
            };
            for (node, seq, age, last_id) in nodes {
                let lag = if seq <= info.published {
                    info.published - seq
                } else {
                    info.published
                };
                info.per_node.push(NodeLag {
                    node,
                    last_id,
                    lag,
                    last_handled_age_ms: age,
                    oldest_unhandled_age_ms: None,
                });
            }
            info.per_node.sort_by(|a, b| a.node.cmp(&b.node));
        }
        channels.into_values().collect()
    }
}

/// What XINFO STREAM tells about one stream.
struct Summary {
    length: u64,
    first: Option<String>,
    last: Option<String>,
    /// The last entry's `seq` field.
    last_seq: Option<u64>,
}

/// Length, first and last IDs and the last entry's `seq` from XINFO STREAM.
fn stream_summary(value: Value) -> Result<Summary, String> {
    let pairs = reply::value_pairs(value).ok_or("XINFO STREAM reply is not a map")?;
    let mut length = None;
    let (mut first, mut last, mut last_seq) = (None, None, None);
    for (name, v) in pairs {
        match text(&name).as_deref() {
            Some("length") => length = text(&v).and_then(|t| t.parse::<u64>().ok()),
            Some("first-entry") => first = reply::single_entry(v).map(|e| e.id.to_string()),
            Some("last-entry") => {
                if let Some(e) = reply::single_entry(v) {
                    last = Some(e.id.to_string());
                    last_seq = e.fields.ok().and_then(|f| {
                        f.iter()
                            .find(|(k, _)| k.as_slice() == b"seq")
                            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
                    });
                }
            }
            _ => {}
        }
    }
    let length = length.ok_or("XINFO STREAM has no length")?;
    Ok(Summary {
        length,
        first,
        last,
        last_seq,
    })
}

/// Remove node `node`'s cursor from every channel under `ns` (for a node
/// that is gone for good). Returns how many cursors were removed. Writes:
/// keep it out of read-only tools.
pub async fn forget_node<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    node: &str,
) -> Result<u64, PubsubError> {
    let keys = scan(conn, &cursors_pattern(ns)).await?;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut pipe = ::redis::pipe();
    pipe.ignore_errors();
    for key in &keys {
        pipe.hdel(key, node);
    }
    let removed: Vec<::redis::RedisResult<u64>> =
        pipe.query_async(conn)
            .await
            .map_err(|source| PubsubError::Redis {
                key: cursors_pattern(ns),
                source,
            })?;
    Ok(removed.into_iter().filter_map(Result::ok).sum())
}
