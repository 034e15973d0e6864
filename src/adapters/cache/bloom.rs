//! Bloom filter arithmetic shared by both backends: the size `m` and hash
//! count `k` derived from capacity and error rate, and the stable item
//! hashes (SHA-256, double hashing) every node computes identically.

use super::CacheError;
use sha2::{Digest, Sha256};

/// Largest filter, in bits: Redis strings are at most 512 MiB (2^32 bits).
pub const MAX_BLOOM_BITS: u64 = 1 << 32;
/// Most hash functions per item.
pub const MAX_BLOOM_HASHES: u32 = 32;
/// Name of the hashing scheme, stored in the meta hash so that a future
/// scheme is never mixed with this one: SHA-256 of the item, h1 and h2 its
/// first two big-endian u32 words (h2 forced odd), position i = (h1 + i*h2) mod m.
pub const HASH_SCHEME: &str = "sha256-dh32";

/// The parameters of one filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BloomParams {
    /// Items it is sized for.
    pub capacity: u64,
    /// Target false-positive rate under capacity, in (0, 1).
    pub error_rate: f64,
    /// Bits.
    pub bits: u64,
    /// Hash positions per item.
    pub hashes: u32,
}

impl BloomParams {
    /// The optimal `m = -n ln p / (ln 2)^2` and `k = (m / n) ln 2` (rounded,
    /// 1 to [`MAX_BLOOM_HASHES`]).
    pub fn new(name: &str, error_rate: f64, capacity: u64) -> Result<Self, CacheError> {
        let invalid = |reason: String| CacheError::InvalidBloom {
            name: name.to_string(),
            reason,
        };
        if !(error_rate > 0.0 && error_rate < 1.0) {
            return Err(invalid(format!(
                "error rate {error_rate} is not accepted; use a value between 0 and 1, e.g. 0.01"
            )));
        }
        if capacity == 0 {
            return Err(invalid("capacity must be at least 1".to_string()));
        }
        let ln2 = std::f64::consts::LN_2;
        let bits_f = (-(capacity as f64) * error_rate.ln() / (ln2 * ln2)).ceil();
        if !bits_f.is_finite() || bits_f > MAX_BLOOM_BITS as f64 {
            return Err(invalid(format!(
                "capacity {capacity} at error rate {error_rate} needs more than {MAX_BLOOM_BITS} bits; lower the capacity or raise the error rate"
            )));
        }
        let bits = (bits_f as u64).max(8);
        let hashes = ((bits as f64 / capacity as f64) * ln2).round();
        let hashes = (hashes as u32).clamp(1, MAX_BLOOM_HASHES);
        Ok(Self {
            capacity,
            error_rate,
            bits,
            hashes,
        })
    }

    /// `capacity=…, error_rate=…` (for messages).
    pub fn describe(&self) -> String {
        format!("capacity={}, error_rate={}", self.capacity, self.error_rate)
    }
}

/// The two base hashes of an item.
pub(crate) fn item_hashes(item: &[u8]) -> (u32, u32) {
    let digest = Sha256::digest(item);
    let word =
        |i: usize| u32::from_be_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]);
    (word(0), word(4) | 1)
}

/// The `k` bit positions of an item in a filter of `m` bits. The Redis Lua
/// script computes the same positions from the same `(h1, h2)`.
pub(crate) fn positions(h1: u32, h2: u32, m: u64, k: u32) -> impl Iterator<Item = u64> {
    (0..u64::from(k)).map(move |i| (u64::from(h1) + i * u64::from(h2)) % m)
}

/// An in-process filter (the memory backend's).
#[derive(Debug)]
pub(crate) struct BitBloom {
    pub(crate) params: BloomParams,
    words: Vec<u64>,
}

impl BitBloom {
    pub(crate) fn new(params: BloomParams) -> Self {
        let words = params.bits.div_ceil(64) as usize;
        Self {
            params,
            words: vec![0; words],
        }
    }

    /// Set the item's bits; `true` when at least one was unset.
    pub(crate) fn add(&mut self, item: &[u8]) -> bool {
        let (h1, h2) = item_hashes(item);
        let mut added = false;
        for pos in positions(h1, h2, self.params.bits, self.params.hashes) {
            let (w, b) = ((pos / 64) as usize, pos % 64);
            if self.words[w] & (1 << b) == 0 {
                self.words[w] |= 1 << b;
                added = true;
            }
        }
        added
    }

    /// Whether all the item's bits are set.
    pub(crate) fn contains(&self, item: &[u8]) -> bool {
        let (h1, h2) = item_hashes(item);
        positions(h1, h2, self.params.bits, self.params.hashes)
            .all(|pos| self.words[(pos / 64) as usize] & (1 << (pos % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_percent_for_a_thousand_items_gives_the_textbook_size() {
        let p = BloomParams::new("t", 0.01, 1000).unwrap();
        assert_eq!(p.bits, 9586);
        assert_eq!(p.hashes, 7);
    }

    #[test]
    fn nonsense_parameters_are_refused() {
        assert!(BloomParams::new("t", 0.0, 10).is_err());
        assert!(BloomParams::new("t", 1.0, 10).is_err());
        assert!(BloomParams::new("t", f64::NAN, 10).is_err());
        assert!(BloomParams::new("t", 0.01, 0).is_err());
        assert!(BloomParams::new("t", 1e-9, u64::MAX / 2).is_err());
    }

    #[test]
    fn hashes_are_stable_across_builds() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(item_hashes(b"abc"), (0xba78_16bf, 0x8f01_cfeb));
    }

    #[test]
    fn positions_stay_below_m() {
        assert!(positions(u32::MAX, u32::MAX, 97, 32).all(|p| p < 97));
    }
}
