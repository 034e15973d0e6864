//! The Redis layout of the queue (key names, the consumer group, the fields
//! of stream entries) and tolerant parsing of raw replies: anything that does
//! not look like what this module writes becomes an error text, never a
//! panic.

use super::{DeadLetter, Message};
use crate::config::Namespace;
use redis::{RedisError, Value};

/// The one consumer group every node's consumers join.
pub const GROUP: &str = "workers";

/// The keys of one queue.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `<ns>:queue:{<queue>}`: the stream of waiting and pending messages.
    pub stream: String,
    /// `<ns>:queue:{<queue>}:dead`: the stream of dead letters.
    pub dead: String,
    /// `<ns>:queue:{<queue>}:paused`: the pause flag.
    pub paused: String,
}

impl Keys {
    pub(crate) fn new(ns: &Namespace, queue: &str) -> Self {
        Self {
            stream: super::keys::stream_key(ns, queue),
            dead: super::keys::dead_key(ns, queue),
            paused: super::pause::pause_key(ns, queue),
        }
    }
}

/// Field/value pairs of one stream entry, as raw bytes.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One stream entry; `fields` is `None` when the entry was deleted while
/// still pending (XREADGROUP history and XCLAIM return it as nil).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: String,
    pub fields: Option<Fields>,
    /// Times delivered, counting this delivery (the pending entry's
    /// counter), when read for a re-read or reclaimed entry.
    pub deliveries: Option<u64>,
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        _ => None,
    }
}

/// A reply value as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

/// A reply value as an unsigned integer.
pub(crate) fn uint(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Nil => None,
        other => text(other)?.parse().ok(),
    }
}

/// A RESP2 flat array or a RESP3 map as (name, value) pairs.
pub(crate) fn pairs(v: &Value) -> Option<Vec<(String, Value)>> {
    match v {
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|c| Some((text(&c[0])?, c[1].clone())))
            .collect(),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| Some((text(k)?, v.clone())))
            .collect(),
        _ => None,
    }
}

fn owned_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        other => bytes(&other),
    }
}

fn parse_fields(id: &str, items: Vec<(Value, Value)>) -> Result<Fields, String> {
    items
        .into_iter()
        .map(|(k, v)| Some((owned_bytes(k)?, owned_bytes(v)?)))
        .collect::<Option<Fields>>()
        .ok_or_else(|| format!("entry {id} has a field that is not a string"))
}

fn parse_entry(v: Value) -> Result<Entry, String> {
    let Value::Array(parts) = v else {
        return Err("a stream entry is not an array".into());
    };
    let mut parts = parts.into_iter();
    let id = parts
        .next()
        .as_ref()
        .and_then(text)
        .ok_or("a stream entry has no id")?;
    let fields = match parts.next() {
        None | Some(Value::Nil) => None,
        Some(Value::Array(items)) if items.len() % 2 == 0 => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Some(parse_fields(&id, pairs)?)
        }
        Some(Value::Map(items)) => Some(parse_fields(&id, items)?),
        Some(_) => return Err(format!("entry {id} has malformed fields")),
    };
    Ok(Entry {
        id,
        fields,
        deliveries: None,
    })
}

/// An array of entries (XRANGE, the entries of XREADGROUP or XAUTOCLAIM).
pub(crate) fn parse_entries(v: Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items.into_iter().map(parse_entry).collect(),
        _ => Err("a list of stream entries is not an array".into()),
    }
}

/// An XREADGROUP reply for one stream: nil on timeout, else `[[key, entries]]`
/// (RESP2) or `{key: entries}` (RESP3).
pub(crate) fn parse_xread(v: Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(kv) = s else {
                    return Err("an XREADGROUP stream is not an array".into());
                };
                if let Some(entries) = kv.into_iter().nth(1) {
                    out.extend(parse_entries(entries)?);
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in streams {
                out.extend(parse_entries(entries)?);
            }
            Ok(out)
        }
        _ => Err("an XREADGROUP reply is not an array".into()),
    }
}

/// An XAUTOCLAIM reply: the next cursor and the claimed entries (deleted
/// ones are dropped from the PEL by Redis and listed apart; ignored here).
pub(crate) fn parse_autoclaim(v: Value) -> Result<(String, Vec<Entry>), String> {
    let Value::Array(parts) = v else {
        return Err("an XAUTOCLAIM reply is not an array".into());
    };
    let mut parts = parts.into_iter();
    let cursor = parts
        .next()
        .as_ref()
        .and_then(text)
        .ok_or("an XAUTOCLAIM reply has no cursor")?;
    let entries = parts
        .next()
        .map(parse_entries)
        .transpose()?
        .unwrap_or_default();
    Ok((cursor, entries))
}

/// The value of a field.
pub(crate) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn field_text(fields: &Fields, name: &str) -> Result<String, String> {
    let raw = field(fields, name).ok_or_else(|| format!("no field {name:?}"))?;
    String::from_utf8(raw.to_vec()).map_err(|_| format!("field {name:?} is not UTF-8"))
}

fn field_u64(fields: &Fields, name: &str) -> Result<u64, String> {
    field_text(fields, name)?
        .parse()
        .map_err(|_| format!("field {name:?} is not a number"))
}

/// A queue entry (`id`, `attempt`, `payload`, optional `error`) as a message.
pub(crate) fn message_from(queue: &str, entry: &str, fields: &Fields) -> Result<Message, String> {
    let bad = |why: String| format!("entry {entry}: {why}");
    let id = field_text(fields, "id").map_err(bad)?;
    let attempt = u32::try_from(field_u64(fields, "attempt").map_err(bad)?)
        .map_err(|_| format!("entry {entry}: attempt out of range"))?;
    let payload = field(fields, "payload")
        .ok_or_else(|| format!("entry {entry}: no field \"payload\""))?
        .to_vec();
    Ok(Message {
        id,
        queue: queue.to_string(),
        payload,
        attempt: attempt.max(1),
    })
}

/// A dead-letter entry (`id`, `payload`, `error`, `attempts`, `failed_at`).
pub(crate) fn dead_from(queue: &str, entry: &str, fields: &Fields) -> Result<DeadLetter, String> {
    let bad = |why: String| format!("entry {entry}: {why}");
    Ok(DeadLetter {
        id: field_text(fields, "id").map_err(bad)?,
        queue: queue.to_string(),
        payload: field(fields, "payload")
            .ok_or_else(|| format!("entry {entry}: no field \"payload\""))?
            .to_vec(),
        error: String::from_utf8_lossy(field(fields, "error").unwrap_or_default()).into_owned(),
        attempts: u32::try_from(field_u64(fields, "attempts").map_err(bad)?).unwrap_or(u32::MAX),
        failed_at_ms: field_u64(fields, "failed_at").map_err(bad)?,
    })
}

/// The milliseconds part of a stream entry id (`ms-seq`).
pub(crate) fn entry_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

/// True for errors that go away once Redis is back: connection loss,
/// timeouts, a server still loading its data.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    crate::adapters::redis_conn::is_transient(e)
}

/// True when the consumer group (or the stream) is missing, or the stream
/// was deleted under a blocked read.
pub(crate) fn is_nogroup(e: &RedisError) -> bool {
    matches!(e.code(), Some("NOGROUP") | Some("UNBLOCKED"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xread_replies_parse_with_deleted_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("k"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![
                        bulk("id"),
                        bulk("a"),
                        bulk("attempt"),
                        bulk("2"),
                        bulk("payload"),
                        bulk("p"),
                    ]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_xread(reply).unwrap();
        assert_eq!(entries.len(), 2);
        let msg = message_from("q", "1-0", entries[0].fields.as_ref().unwrap()).unwrap();
        assert_eq!(
            (msg.id.as_str(), msg.attempt, msg.payload.as_slice()),
            ("a", 2, &b"p"[..])
        );
        assert!(entries[1].fields.is_none());
        assert!(parse_xread(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_xread(Value::Int(3)).is_err());
        assert!(parse_entries(Value::Array(vec![Value::Int(1)])).is_err());
        let fields: Fields = vec![(b"id".to_vec(), b"x".to_vec())];
        assert!(
            message_from("q", "1-0", &fields)
                .unwrap_err()
                .contains("attempt")
        );
        assert!(dead_from("q", "1-0", &fields).is_err());
        assert_eq!(entry_ms("1700000000000-3"), Some(1_700_000_000_000));
        assert_eq!(entry_ms("garbage"), None);
    }
}
