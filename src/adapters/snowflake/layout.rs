//! The snowflake bit layout shared with NocoBase's `@nocobase/snowflake-id`:
//! `(unix seconds - 1605024000) << 21 | worker_id << 16 | sequence`,
//! always below 2^53 so JavaScript numbers hold it exactly.

use crate::clock::rfc3339;
use serde::Serialize;

/// The epoch, unix seconds: 1605024000 = 2020-11-10T16:00:00Z (midnight of
/// 2020-11-11 in UTC+8, NocoBase's first commit).
pub const EPOCH_UNIX_SECONDS: u64 = 1_605_024_000;
/// Bits of the worker ID.
pub const WORKER_BITS: u32 = 5;
/// Bits of the sequence within one second.
pub const SEQUENCE_BITS: u32 = 16;
/// The highest sequence in one second (65,535).
pub const MAX_SEQUENCE: u16 = u16::MAX;
/// Bits of the seconds-since-epoch part, so that IDs stay below 2^53.
pub const TIMESTAMP_BITS: u32 = 53 - WORKER_BITS - SEQUENCE_BITS;
/// The highest seconds-since-epoch value (2^32 - 1).
pub const MAX_OFFSET_SECONDS: u64 = (1 << TIMESTAMP_BITS) - 1;
/// The last unix second IDs can be issued in: 5899991295 =
/// 2156-12-17T22:28:15Z.
pub const LAST_UNIX_SECOND: u64 = EPOCH_UNIX_SECONDS + MAX_OFFSET_SECONDS;
/// The highest ID (2^53 - 1, JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// Build an ID. `unix_second` must be within the epoch..=LAST_UNIX_SECOND
/// range (checked by the generator) and `worker_id` below 32.
#[inline]
pub fn compose(unix_second: u64, worker_id: u8, sequence: u16) -> u64 {
    ((unix_second - EPOCH_UNIX_SECONDS) << (WORKER_BITS + SEQUENCE_BITS))
        | (u64::from(worker_id & 0x1f) << SEQUENCE_BITS)
        | u64::from(sequence)
}

/// The fields of an ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodedId {
    /// The ID itself.
    pub id: u64,
    /// When it was issued, unix seconds.
    pub unix_seconds: u64,
    /// When it was issued, RFC 3339 UTC (`2024-05-01T12:00:00Z`).
    pub timestamp: String,
    /// The worker ID (0..=31).
    pub worker_id: u8,
    /// The sequence within that second (0..=65535).
    pub sequence: u16,
}

/// Why an ID cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a decimal number.
    #[error("{0:?} is not a snowflake ID: expected a decimal number from 0 to 9007199254740991")]
    NotANumber(String),
    /// At or above 2^53.
    #[error("{0} is not a snowflake ID: it is above 2^53 - 1 (9007199254740991)")]
    TooLarge(u128),
}

/// Decode an ID into its fields.
pub fn decode(id: u64) -> Result<DecodedId, DecodeError> {
    if id > MAX_ID {
        return Err(DecodeError::TooLarge(u128::from(id)));
    }
    let unix_seconds = EPOCH_UNIX_SECONDS + (id >> (WORKER_BITS + SEQUENCE_BITS));
    Ok(DecodedId {
        id,
        unix_seconds,
        timestamp: rfc3339(unix_seconds),
        // Masked to 5 and 16 bits: the conversions cannot fail.
        worker_id: u8::try_from((id >> SEQUENCE_BITS) & 0x1f).unwrap_or(0),
        sequence: u16::try_from(id & 0xffff).unwrap_or(0),
    })
}

/// Parse and decode user input (surrounding spaces allowed).
pub fn decode_str(input: &str) -> Result<DecodedId, DecodeError> {
    let s = input.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::NotANumber(input.to_string()));
    }
    match s.parse::<u128>() {
        Ok(n) => match u64::try_from(n) {
            Ok(id) => decode(id),
            Err(_) => Err(DecodeError::TooLarge(n)),
        },
        // Only digits: the only failure left is overflow of u128.
        Err(_) => Err(DecodeError::TooLarge(u128::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_and_the_horizon_format_as_the_documented_dates() {
        assert_eq!(rfc3339(EPOCH_UNIX_SECONDS), "2020-11-10T16:00:00Z");
        assert_eq!(rfc3339(LAST_UNIX_SECOND), "2156-12-17T22:28:15Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_208_000), "2024-02-29T12:00:00Z");
    }

    #[test]
    fn the_largest_id_is_the_largest_safe_javascript_integer() {
        assert_eq!(compose(LAST_UNIX_SECOND, 31, MAX_SEQUENCE), MAX_ID);
        assert_eq!(MAX_ID, 9_007_199_254_740_991);
    }

    #[test]
    fn decode_reverses_compose() {
        for (sec, worker, seq) in [
            (EPOCH_UNIX_SECONDS, 0, 0),
            (1_700_000_000, 7, 1234),
            (LAST_UNIX_SECOND, 31, 65_535),
        ] {
            let id = compose(sec, worker, seq);
            let d = decode(id).unwrap();
            assert_eq!(
                (d.unix_seconds, d.worker_id, d.sequence),
                (sec, worker, seq)
            );
            assert_eq!(d.timestamp, rfc3339(sec));
        }
    }

    #[test]
    fn ids_match_the_nocobase_arithmetic() {
        // NocoBase: (ts - epoch) * 32 * 65536 + workerId * 65536 + sequence.
        let (sec, worker, seq) = (1_717_171_717_u64, 19_u8, 4242_u16);
        let js =
            (sec - EPOCH_UNIX_SECONDS) * 32 * 65_536 + u64::from(worker) * 65_536 + u64::from(seq);
        assert_eq!(compose(sec, worker, seq), js);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert!(matches!(decode_str("abc"), Err(DecodeError::NotANumber(_))));
        assert!(matches!(decode_str("-5"), Err(DecodeError::NotANumber(_))));
        assert!(matches!(decode_str(""), Err(DecodeError::NotANumber(_))));
        assert!(matches!(
            decode_str("9007199254740992"),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(matches!(
            decode_str("99999999999999999999999999999999999999999"),
            Err(DecodeError::TooLarge(_))
        ));
        assert_eq!(decode_str(" 9007199254740991 ").unwrap().worker_id, 31);
    }
}
