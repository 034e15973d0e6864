//! Parsing Redis stream replies (XREAD, XRANGE, XREVRANGE) from raw
//! `redis::Value`s, RESP2 or RESP3, without trusting their shape: one odd
//! entry is reported on its own instead of failing the whole reply.

use super::envelope::EntryId;
use redis::Value;

/// Field/value pairs of one stream entry.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One stream entry: its ID and its fields, or why the fields are unreadable.
pub(crate) struct RawEntry {
    pub id: EntryId,
    pub fields: Result<Fields, String>,
}

/// The bytes of a string-like reply.
pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

/// A string-like reply as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

/// The elements of an array (or the pairs of a map, flattened).
fn items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        Value::Map(m) => Some(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Attribute { data, .. } => items(*data),
        _ => None,
    }
}

fn fields(v: Value) -> Result<Fields, String> {
    let flat = items(v).ok_or("fields are not a list")?;
    if flat.len() % 2 != 0 {
        return Err("odd number of field/value items".to_string());
    }
    flat.chunks(2)
        .map(|kv| match (bytes(&kv[0]), bytes(&kv[1])) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err("a field or value is not a string".to_string()),
        })
        .collect()
}

/// The pairs of a map reply (RESP3 map or RESP2 flat list).
pub(crate) fn value_pairs(v: Value) -> Option<Vec<(Value, Value)>> {
    if let Value::Map(m) = v {
        return Some(m);
    }
    let flat = items(v)?;
    if flat.len() % 2 != 0 {
        return None;
    }
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Some(out)
}

/// The bytes of a string reply, borrowed.
fn byte_ref(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// The field/value pairs of a hash reply (HGETALL, RESP3 map or RESP2
/// flat list), borrowed from it; `None` when it is not a hash of strings.
pub(crate) fn pairs(v: &Value) -> Option<Vec<(&[u8], &[u8])>> {
    fn pair<'v>(k: &'v Value, v: &'v Value) -> Option<(&'v [u8], &'v [u8])> {
        Some((byte_ref(k)?, byte_ref(v)?))
    }
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| pair(k, v)).collect(),
        Value::Array(a) | Value::Set(a) if a.len() % 2 == 0 => {
            a.chunks(2).map(|kv| pair(&kv[0], &kv[1])).collect()
        }
        Value::Attribute { data, .. } => pairs(data),
        _ => None,
    }
}

/// One entry (as in XINFO STREAM's `first-entry`); `None` for nil or garbage.
pub(crate) fn single_entry(v: Value) -> Option<RawEntry> {
    if v == Value::Nil {
        return None;
    }
    entries(Value::Array(vec![v])).ok()?.into_iter().next()
}

/// Entries of an XRANGE/XREVRANGE reply, or of one stream in an XREAD reply.
pub(crate) fn entries(v: Value) -> Result<Vec<RawEntry>, String> {
    if v == Value::Nil {
        return Ok(Vec::new());
    }
    let list = items(v).ok_or("entries are not a list")?;
    list.into_iter()
        .map(|entry| {
            let mut parts = items(entry).ok_or("an entry is not a list")?.into_iter();
            let id = parts
                .next()
                .as_ref()
                .and_then(text)
                .and_then(|t| EntryId::parse(&t))
                .ok_or("an entry has no stream ID")?;
            let fields = match parts.next() {
                Some(f) => fields(f),
                None => Err("the entry has no fields".to_string()),
            };
            Ok(RawEntry { id, fields })
        })
        .collect()
}

/// An XREAD reply: per stream key, its new entries. `Nil` (timeout or
/// CLIENT UNBLOCK) is no streams.
pub(crate) fn xread(v: Value) -> Result<Vec<(String, Vec<RawEntry>)>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => m
            .into_iter()
            .map(|(k, e)| Ok((text(&k).ok_or("a stream key is not text")?, entries(e)?)))
            .collect(),
        other => items(other)
            .ok_or("the reply is not a list")?
            .into_iter()
            .map(|pair| {
                let mut kv = items(pair)
                    .ok_or("a stream reply is not a list")?
                    .into_iter();
                let key = kv.next().as_ref().and_then(text).ok_or("no stream key")?;
                Ok((key, entries(kv.next().unwrap_or(Value::Nil))?))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn resp2_xread_replies_parse_and_odd_entries_stay_separate() {
        let good = Value::Array(vec![
            bulk("1-1"),
            Value::Array(vec![bulk("seq"), bulk("1")]),
        ]);
        let odd = Value::Array(vec![bulk("1-2"), Value::Array(vec![bulk("lonely")])]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("ns:signal:a"),
            Value::Array(vec![good, odd]),
        ])]);
        let streams = xread(reply).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].0, "ns:signal:a");
        let e = &streams[0].1;
        assert_eq!(e[0].id, EntryId { ms: 1, seq: 1 });
        assert_eq!(e[0].fields.as_ref().unwrap()[0].1, b"1".to_vec());
        assert_eq!(e[1].id, EntryId { ms: 1, seq: 2 });
        assert!(e[1].fields.is_err());
        assert!(xread(Value::Nil).unwrap().is_empty());
        assert!(xread(Value::Int(3)).is_err());
    }
}
