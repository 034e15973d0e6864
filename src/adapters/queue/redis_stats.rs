//! Read-only queue statistics from Redis alone, for the adapter's `stats`
//! and for the inspector: SCAN for the queue keys, then three pipelined
//! rounds (TYPE; XLEN and XINFO GROUPS; XPENDING summary and XINFO
//! CONSUMERS). Nothing is written. A key that is not what the queue writes
//! becomes an entry with `unreadable` set and the key named.

use super::redis_entries::{GROUP, Keys, entry_ms, pairs, text, uint};
use super::{ConsumerStats, QueueError, QueueStats, validate_queue_name};
use crate::config::Namespace;
use redis::Value;
use redis::aio::ConnectionLike;
use std::collections::BTreeSet;

fn scan_err(key: &str) -> impl FnOnce(redis::RedisError) -> QueueError {
    super::redis::redis_err("SCAN", key)
}

/// Every queue under `ns`, with its counts, sorted by name. Keys under
/// `{ns}:queue:` that do not belong to a queue are listed as unreadable.
///
/// `waiting` is `XLEN − pending`: the consumers delete every entry they
/// acknowledge, retry or dead-letter, so the stream holds exactly the
/// waiting and the pending (delivered, unacknowledged) messages.
pub async fn read_queue_stats<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> Result<Vec<QueueStats>, QueueError> {
    let pattern = ns.pattern("queue:*");
    let prefix = ns.key("queue:");
    let mut cursor = 0u64;
    let mut names = BTreeSet::new();
    let mut strays = Vec::new();
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
            for key in keys.iter().filter_map(text) {
                let rest = key.strip_prefix(&prefix).unwrap_or(&key);
                let name = rest.strip_suffix(":dead").unwrap_or(rest);
                if validate_queue_name(name).is_ok() {
                    names.insert(name.to_string());
                } else {
                    strays.push(key);
                }
            }
        }
        if cursor == 0 {
            break;
        }
    }
    let mut out = stats_for(conn, ns, names.into_iter().collect()).await?;
    for key in strays {
        out.push(QueueStats {
            queue: String::new(),
            key,
            unreadable: Some(
                "not a queue key: expected {ns}:queue:{name} or {ns}:queue:{name}:dead".into(),
            ),
            ..QueueStats::default()
        });
    }
    Ok(out)
}

fn server_error(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(format!("{}: {}", e.code(), e.details().unwrap_or(""))),
        _ => None,
    }
}

async fn run_pipe<C: ConnectionLike + Send>(
    conn: &mut C,
    pipe: &redis::Pipeline,
    key: &str,
) -> Result<Vec<Value>, QueueError> {
    if pipe.is_empty() {
        return Ok(Vec::new());
    }
    pipe.query_async(conn)
        .await
        .map_err(super::redis::redis_err("stats pipeline", key))
}

/// What the first two rounds found about one queue.
#[derive(Default)]
struct Found {
    stream_is_stream: bool,
    dead_is_stream: bool,
    len: u64,
    has_group: bool,
}

/// Stats of the named queues, in the given order.
pub(crate) async fn stats_for<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    names: Vec<String>,
) -> Result<Vec<QueueStats>, QueueError> {
    let keys: Vec<Keys> = names.iter().map(|n| Keys::new(ns, n)).collect();
    let mut out: Vec<QueueStats> = names
        .iter()
        .zip(&keys)
        .map(|(n, k)| QueueStats {
            queue: n.clone(),
            key: k.stream.clone(),
            in_flight: Some(0),
            ..QueueStats::default()
        })
        .collect();
    let label = ns.pattern("queue:*");

    // Round 1: the server clock and the key types.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("TIME");
    for k in &keys {
        pipe.cmd("TYPE").arg(&k.stream);
        pipe.cmd("TYPE").arg(&k.dead);
    }
    let r1 = run_pipe(conn, &pipe, &label).await?;
    let now_ms = match r1.first() {
        Some(Value::Array(t)) => t
            .first()
            .and_then(uint)
            .map(|s| s.saturating_mul(1000) + t.get(1).and_then(uint).unwrap_or(0) / 1000),
        _ => None,
    };
    let mut found: Vec<Found> = Vec::new();
    for (i, (k, st)) in keys.iter().zip(out.iter_mut()).enumerate() {
        let mut f = Found::default();
        for (slot, key, is_stream) in [
            (1 + 2 * i, &k.stream, &mut f.stream_is_stream),
            (2 + 2 * i, &k.dead, &mut f.dead_is_stream),
        ] {
            match r1.get(slot).and_then(text).as_deref() {
                Some("stream") => *is_stream = true,
                Some("none") => {}
                Some(other) => {
                    st.unreadable = Some(format!("{key} is a {other}, not a stream"));
                    st.key = key.clone();
                }
                None => st.unreadable = Some(format!("TYPE {key} gave no answer")),
            }
        }
        found.push(f);
    }

    // Round 2: lengths and the consumer group.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (k, f) in keys.iter().zip(&found) {
        if f.stream_is_stream {
            pipe.cmd("XLEN").arg(&k.stream);
            pipe.cmd("XINFO").arg("GROUPS").arg(&k.stream);
        }
        if f.dead_is_stream {
            pipe.cmd("XLEN").arg(&k.dead);
        }
    }
    let r2 = run_pipe(conn, &pipe, &label).await?;
    let mut r2 = r2.into_iter();
    for ((k, f), st) in keys.iter().zip(found.iter_mut()).zip(out.iter_mut()) {
        if f.stream_is_stream {
            let (len, groups) = (r2.next().unwrap_or_default(), r2.next().unwrap_or_default());
            match uint(&len) {
                Some(n) => f.len = n,
                None => st.unreadable = Some(format!("XLEN {} failed", k.stream)),
            }
            match &groups {
                Value::Array(gs) => {
                    for g in gs {
                        let Some(p) = pairs(g) else {
                            st.unreadable = Some(format!("XINFO GROUPS {} is malformed", k.stream));
                            continue;
                        };
                        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                        if get("name").as_ref().and_then(text).as_deref() == Some(GROUP) {
                            f.has_group = true;
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
            st.waiting = f.len;
        }
        if f.dead_is_stream {
            match uint(&r2.next().unwrap_or_default()) {
                Some(n) => st.dead = n,
                None => st.unreadable = Some(format!("XLEN {} failed", k.dead)),
            }
        }
    }

    // Round 3: pending summary and consumers of the group.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (k, f) in keys.iter().zip(&found) {
        if f.has_group {
            pipe.cmd("XPENDING").arg(&k.stream).arg(GROUP);
            pipe.cmd("XINFO").arg("CONSUMERS").arg(&k.stream).arg(GROUP);
        }
    }
    let r3 = run_pipe(conn, &pipe, &label).await?;
    let mut r3 = r3.into_iter();
    for ((k, f), st) in keys.iter().zip(&found).zip(out.iter_mut()) {
        if !f.has_group {
            continue;
        }
        let (pending, consumers) = (r3.next().unwrap_or_default(), r3.next().unwrap_or_default());
        match &pending {
            Value::Array(p) => {
                let count = p.first().and_then(uint).unwrap_or(0);
                st.in_flight = Some(count);
                st.waiting = f.len.saturating_sub(count);
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
        if let Value::Array(cs) = &consumers {
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
    for st in &mut out {
        if st.unreadable.is_some() {
            let keep = (st.queue.clone(), st.key.clone(), st.unreadable.take());
            *st = QueueStats {
                queue: keep.0,
                key: keep.1,
                unreadable: keep.2,
                ..QueueStats::default()
            };
        }
    }
    Ok(out)
}
