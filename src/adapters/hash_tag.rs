//! Redis Cluster hash tags. In a cluster, every key lives in one of 16384
//! hash slots, and a Lua script, a MULTI/EXEC or a multi-key command may
//! only touch keys of one slot. The slot of a key containing `{tag}` (the
//! first `{`, then the first `}` after it, with something in between) is
//! the slot of `tag` alone, so keys that share a tag share a slot. Every
//! key family that is written together puts its tag in the key
//! (docs/redis-keys.md, "Hash tags and Redis Cluster"); this module holds
//! the helpers the families' key functions and parsers share, and the slot
//! computation the tests check them with.

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// `{part}`: `part` as a hash tag. `part` must not contain `{` or `}`
/// (every name that goes into a tag is validated for that).
pub fn tag(part: &str) -> String {
    format!("{{{part}}}")
}

/// `s` split after its leading hash tag: `{name}rest` gives
/// `(name, rest)`. `None` when `s` does not start with `{`, has no `}`
/// after it, or the tag is empty or contains `{`.
pub fn split_tag(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('{')?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    (!name.is_empty() && !name.contains('{')).then(|| (name, &inner[end + 1..]))
}

/// The reason a key of a tagged family is reported as unreadable when it
/// does not have the family's shape, `shape` being that shape (built with
/// the family's key function, e.g. `clusterops:lock:{<name>}`).
pub fn layout_reason(shape: &str) -> String {
    format!(
        "not in the hash-tagged layout {shape} (left by a clusterops version from before hash \
         tags? see docs/redis-keys.md, \"Hash tags and Redis Cluster\")"
    )
}

/// The part of `key` Redis Cluster hashes: the content of its hash tag
/// when it has a non-empty one, else the whole key.
fn hashed_part(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = &key[open + 1..];
    match after.iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &after[..len],
        _ => key,
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis
/// Cluster assigns slots with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key` in a Redis Cluster (`CLUSTER KEYSLOT`).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` and the cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn a_leading_tag_splits_and_anything_else_does_not() {
        assert_eq!(split_tag("{jobs}"), Some(("jobs", "")));
        assert_eq!(split_tag("{jobs}:dead"), Some(("jobs", ":dead")));
        assert_eq!(split_tag("{a}b}"), Some(("a", "b}")));
        for bad in ["jobs", "{}", "{jobs", "x{jobs}", "{a{b}", ""] {
            assert_eq!(split_tag(bad), None, "{bad}");
        }
        assert_eq!(tag("jobs"), "{jobs}");
    }
}
