//! The wire format of one sync signal in Redis: stream entry IDs, the JSON
//! envelope (`v`, `sender`, `ts_ms`, `kind`, `payload`) and the per-node
//! cursor value. Decoding never panics: anything else is an error string
//! saying what is wrong, for the log or the inspector.

use super::{Payload, Signal};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The envelope version this code writes and accepts.
pub const ENVELOPE_VERSION: u32 = 1;

/// Stream entry field holding the per-channel publish counter.
pub(crate) const FIELD_SEQ: &str = "seq";
/// Stream entry field holding the JSON envelope.
pub(crate) const FIELD_ENVELOPE: &str = "envelope";

/// A Redis stream entry ID, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// `0-0`, before every entry.
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// Parse `ms-seq` (a bare `ms` means `ms-0`).
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = match text.split_once('-') {
            Some((ms, seq)) => (ms.parse().ok()?, seq.parse().ok()?),
            None => (text.parse().ok()?, 0),
        };
        Some(Self { ms, seq })
    }

    /// The greatest ID below this one (`0-0` stays `0-0`).
    pub fn prev(self) -> Self {
        match (self.ms, self.seq) {
            (0, 0) => self,
            (ms, 0) => Self {
                ms: ms - 1,
                seq: u64::MAX,
            },
            (ms, seq) => Self { ms, seq: seq - 1 },
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    sender: String,
    ts_ms: u64,
    kind: String,
    payload: serde_json::Value,
}

/// The JSON envelope of a message from `sender` sent at `ts_ms`.
pub(crate) fn encode_envelope(sender: &str, ts_ms: u64, payload: &Payload) -> String {
    let (kind, payload) = match payload {
        Payload::Json(v) => ("json", v.clone()),
        Payload::Bytes(b) => ("bytes", serde_json::Value::String(hex::encode(b))),
    };
    let env = Envelope {
        v: ENVELOPE_VERSION,
        sender: sender.to_string(),
        ts_ms,
        kind: kind.to_string(),
        payload,
    };
    // A struct of strings, integers and a `Value` always serializes.
    serde_json::to_string(&env).unwrap_or_default()
}

/// Decode one stream entry (`seq` and `envelope` fields) into a signal and
/// its publish counter.
pub(crate) fn decode_entry(
    channel: &str,
    id: EntryId,
    fields: &[(Vec<u8>, Vec<u8>)],
) -> Result<(Signal, u64), String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let seq = field(FIELD_SEQ).ok_or("no `seq` field")?;
    let seq: u64 = std::str::from_utf8(seq)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("`seq` is not an unsigned integer")?;
    let raw = field(FIELD_ENVELOPE).ok_or("no `envelope` field")?;
    let env: Envelope =
        serde_json::from_slice(raw).map_err(|e| format!("`envelope` is not a v1 envelope: {e}"))?;
    if env.v != ENVELOPE_VERSION {
        return Err(format!(
            "envelope version {} (this node reads {ENVELOPE_VERSION})",
            env.v
        ));
    }
    let payload = match (env.kind.as_str(), env.payload) {
        ("json", v) => Payload::Json(v),
        ("bytes", serde_json::Value::String(h)) => {
            Payload::Bytes(hex::decode(h).map_err(|e| format!("`payload` is not hex: {e}"))?)
        }
        ("bytes", _) => return Err("`payload` of kind bytes is not a hex string".to_string()),
        (other, _) => return Err(format!("unknown payload kind {other:?}")),
    };
    Ok((
        Signal {
            channel: channel.to_string(),
            id: id.to_string(),
            sender: env.sender,
            sent_at_ms: env.ts_ms,
            payload,
        },
        seq,
    ))
}

/// A node's position in one channel: the last entry it handled and the
/// publish counter (`seq`) of the last valid message at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub id: EntryId,
    pub seq: u64,
}

#[derive(Serialize, Deserialize)]
struct CursorJson {
    id: String,
    seq: u64,
    at_ms: u64,
    /// When the node last wrote the cursor (Unix ms): the flusher rewrites
    /// even an unchanged cursor every `CURSOR_REFRESH`, so an old `seen_ms`
    /// means the node stopped writing (the janitor's measure of a dead
    /// reader). Absent in cursors written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen_ms: Option<u64>,
}

/// The cursor hash value:
/// `{"id":"<entry id>","seq":<n>,"at_ms":<unix ms>,"seen_ms":<unix ms>}`.
pub(crate) fn encode_cursor(pos: Position, at_ms: u64, seen_ms: u64) -> String {
    let c = CursorJson {
        id: pos.id.to_string(),
        seq: pos.seq,
        at_ms,
        seen_ms: Some(seen_ms),
    };
    serde_json::to_string(&c).unwrap_or_default()
}

/// Decode a cursor hash value into the position and its `at_ms`.
pub(crate) fn decode_cursor(raw: &[u8]) -> Result<(Position, u64), String> {
    decode_cursor_seen(raw).map(|(pos, at_ms, _)| (pos, at_ms))
}

/// Decode a cursor hash value into the position, its `at_ms` and its
/// `seen_ms` (`at_ms` for a cursor written without one).
pub(crate) fn decode_cursor_seen(raw: &[u8]) -> Result<(Position, u64, u64), String> {
    let c: CursorJson =
        serde_json::from_slice(raw).map_err(|e| format!("not a cursor value: {e}"))?;
    let id = EntryId::parse(&c.id).ok_or_else(|| format!("{:?} is not a stream ID", c.id))?;
    let seen = c.seen_ms.unwrap_or(c.at_ms).max(c.at_ms);
    Ok((Position { id, seq: c.seq }, c.at_ms, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_and_step_back_like_redis() {
        let a = EntryId::parse("5-0").unwrap();
        assert_eq!(
            a.prev(),
            EntryId {
                ms: 4,
                seq: u64::MAX
            }
        );
        assert!(a.prev() < a);
        assert_eq!(EntryId::parse("7").unwrap(), EntryId { ms: 7, seq: 0 });
        assert_eq!(EntryId::ZERO.prev(), EntryId::ZERO);
        assert!(EntryId::parse("x-1").is_none());
        assert_eq!(EntryId::parse("12-3").unwrap().to_string(), "12-3");
    }

    #[test]
    fn envelopes_round_trip_and_garbage_is_an_error() {
        let id = EntryId { ms: 1, seq: 2 };
        for p in [
            Payload::Bytes(vec![0, 1, 255]),
            Payload::Json(serde_json::json!({"a": [1, 2]})),
        ] {
            let env = encode_envelope("n1", 42, &p);
            let fields = vec![
                (b"seq".to_vec(), b"9".to_vec()),
                (b"envelope".to_vec(), env.into_bytes()),
            ];
            let (s, seq) = decode_entry("c", id, &fields).unwrap();
            assert_eq!(
                (s.payload, s.sender.as_str(), s.sent_at_ms, seq),
                (p, "n1", 42, 9)
            );
        }
        let wrong_v = br#"{"v":2,"sender":"n","ts_ms":1,"kind":"json","payload":1}"#;
        let fields = vec![
            (b"seq".to_vec(), b"1".to_vec()),
            (b"envelope".to_vec(), wrong_v.to_vec()),
        ];
        assert!(
            decode_entry("c", id, &fields)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(decode_entry("c", id, &[(b"foo".to_vec(), b"bar".to_vec())]).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let pos = Position {
            id: EntryId { ms: 10, seq: 1 },
            seq: 3,
        };
        let raw = encode_cursor(pos, 99, 120);
        assert_eq!(raw, r#"{"id":"10-1","seq":3,"at_ms":99,"seen_ms":120}"#);
        assert_eq!(decode_cursor(raw.as_bytes()).unwrap(), (pos, 99));
        assert_eq!(decode_cursor_seen(raw.as_bytes()).unwrap(), (pos, 99, 120));
        // Written before `seen_ms` existed: seen when it last moved.
        let old = br#"{"id":"10-1","seq":3,"at_ms":77}"#;
        assert_eq!(decode_cursor_seen(old).unwrap(), (pos, 77, 77));
        assert!(decode_cursor(b"10-1|99").is_err());
    }
}
