//! The fast `bloom_exists` of a bitmap filter: with the filter's size and
//! hash count known from an earlier call, one transaction reads the meta
//! hash, the data key's type and every bit asked for (`MULTI`, `HMGET`,
//! `TYPE`, `BITFIELD_RO … GET u1 <pos>…`, `EXEC`): one round trip and no
//! Lua. The answer is used only when the meta hash still says what was
//! remembered and the data is a string; anything else (a filter deleted,
//! re-reserved with other parameters, garbage, a server without
//! `BITFIELD_RO`) goes to the checking script, whose errors name the key.

use super::bloom::{HASH_SCHEME, item_hashes, positions};
use parking_lot::Mutex;
use redis::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// A bitmap filter's size and hash count, as its meta hash holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitmapShape {
    pub bits: u64,
    pub hashes: u32,
}

/// What the fast path knows: the shapes seen per filter name, and whether
/// the server refused `BITFIELD_RO` (then it is not tried again).
#[derive(Debug, Default)]
pub(crate) struct ShapeCache {
    shapes: Mutex<HashMap<String, BitmapShape>>,
    unsupported: AtomicBool,
}

impl ShapeCache {
    /// The remembered shape of `name`, if the fast path may be tried.
    pub(crate) fn get(&self, name: &str) -> Option<BitmapShape> {
        if self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        self.shapes.lock().get(name).copied()
    }

    pub(crate) fn remember(&self, name: &str, shape: BitmapShape) {
        self.shapes.lock().insert(name.to_string(), shape);
    }

    pub(crate) fn forget(&self, name: &str) {
        self.shapes.lock().remove(name);
    }

    pub(crate) fn give_up(&self) {
        self.unsupported.store(true, Ordering::Relaxed);
    }
}

/// `HMGET <meta> impl bits hashes hash` reply → the shape, when the hash
/// describes a bitmap filter hashed the way this node hashes.
pub(crate) fn shape_of(reply: &Value) -> Option<BitmapShape> {
    let Value::Array(f) = reply else {
        return None;
    };
    let text = |i: usize| match f.get(i) {
        Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
        Some(Value::SimpleString(s)) => Some(s.as_str()),
        _ => None,
    };
    if text(0)? != "bitmap" || text(3)? != HASH_SCHEME {
        return None;
    }
    let bits: u64 = text(1)?.parse().ok().filter(|b| *b >= 1)?;
    let hashes: u32 = text(2)?.parse().ok().filter(|k| *k >= 1)?;
    Some(BitmapShape { bits, hashes })
}

/// The transaction reading `items` from a filter of `shape`.
pub(crate) fn read_pipe(
    data: &str,
    meta: &str,
    shape: BitmapShape,
    items: &[&[u8]],
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("HMGET")
        .arg(meta)
        .arg("impl")
        .arg("bits")
        .arg("hashes")
        .arg("hash");
    pipe.cmd("TYPE").arg(data);
    let bitfield = pipe.cmd("BITFIELD_RO").arg(data);
    for item in items {
        let (h1, h2) = item_hashes(item);
        for pos in positions(h1, h2, shape.bits, shape.hashes) {
            bitfield.arg("GET").arg("u1").arg(pos);
        }
    }
    pipe
}

/// The answers from the transaction's replies, when they can be trusted:
/// the meta hash still has `shape`, the data is a string, one bit per
/// position came back.
pub(crate) fn answers(replies: &[Value], shape: BitmapShape, items: usize) -> Option<Vec<bool>> {
    let [meta, kind, bits] = replies else {
        return None;
    };
    if shape_of(meta)? != shape {
        return None;
    }
    let is_string = match kind {
        Value::SimpleString(s) => s == "string",
        Value::BulkString(b) => b == b"string",
        _ => false,
    };
    let Value::Array(bits) = bits else {
        return None;
    };
    let k = shape.hashes as usize;
    if !is_string || bits.len() != items.checked_mul(k)? {
        return None;
    }
    let set: Option<Vec<bool>> = bits
        .iter()
        .map(|b| match b {
            Value::Int(v) => Some(*v == 1),
            _ => None,
        })
        .collect();
    Some(set?.chunks(k).map(|c| c.iter().all(|b| *b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn meta(bits: &str, hashes: &str) -> Value {
        Value::Array(vec![
            bulk("bitmap"),
            bulk(bits),
            bulk(hashes),
            bulk(HASH_SCHEME),
        ])
    }

    #[test]
    fn the_answer_needs_the_remembered_shape_and_a_string() {
        let shape = BitmapShape {
            bits: 100,
            hashes: 2,
        };
        let string = Value::SimpleString("string".into());
        let bits = Value::Array(vec![
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            Value::Int(0),
        ]);
        let replies = [meta("100", "2"), string.clone(), bits.clone()];
        assert_eq!(answers(&replies, shape, 2), Some(vec![true, false]));
        // Re-reserved with another size, deleted, garbage: not trusted.
        assert_eq!(
            answers(&[meta("200", "2"), string.clone(), bits.clone()], shape, 2),
            None
        );
        let gone = Value::Array(vec![Value::Nil; 4]);
        assert_eq!(
            answers(&[gone, string.clone(), bits.clone()], shape, 2),
            None
        );
        let list = Value::SimpleString("list".into());
        assert_eq!(
            answers(&[meta("100", "2"), list, bits.clone()], shape, 2),
            None
        );
        assert_eq!(answers(&[meta("100", "2"), string, bits], shape, 3), None);
        assert_eq!(shape_of(&meta("lots", "2")), None);
        assert_eq!(shape_of(&meta("100", "0")), None);
    }

    #[test]
    fn one_transaction_reads_every_bit() {
        let shape = BitmapShape {
            bits: 9586,
            hashes: 7,
        };
        let pipe = read_pipe("d", "m", shape, &[b"a", b"b"]);
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        assert_eq!(packed.matches("\r\nu1\r\n").count(), 14);
        assert!(packed.contains("MULTI") && packed.contains("EXEC"));
    }
}
