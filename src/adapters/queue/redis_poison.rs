//! The bound on poison messages on Redis: the delivery counters of pending
//! entries this consumer re-reads or reclaims (`XPENDING`), so that an entry
//! delivered `max_deliveries` times without an acknowledgement goes to the
//! dead letters instead of to a handler once more.

use super::redis_entries::{Entry, GROUP, Keys, uint};
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use std::collections::HashMap;

/// An entry id (`ms-seq`) as a sortable pair.
fn order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// `id → times delivered` from an extended XPENDING reply
/// (`[[id, consumer, idle ms, deliveries], …]`); unreadable rows are skipped.
fn parse_counts(v: &Value) -> HashMap<String, u64> {
    let Value::Array(rows) = v else {
        return HashMap::new();
    };
    rows.iter()
        .filter_map(|row| match row {
            Value::Array(f) if f.len() >= 4 => {
                Some((super::redis_entries::text(&f[0])?, uint(&f[3])?))
            }
            _ => None,
        })
        .collect()
}

/// Fill `deliveries` of the entries (just claimed by, or re-read by,
/// `consumer`) from the group's pending list. The counter includes the
/// delivery under way.
pub(crate) async fn count_deliveries(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    consumer: &str,
    entries: &mut [Entry],
) -> Result<(), RedisError> {
    let (Some(first), Some(last)) = (
        entries.iter().map(|e| order(&e.id)).min(),
        entries.iter().map(|e| order(&e.id)).max(),
    ) else {
        return Ok(());
    };
    let v: Value = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg(format!("{}-{}", first.0, first.1))
        .arg(format!("{}-{}", last.0, last.1))
        .arg(entries.len().saturating_mul(2).max(100))
        .arg(consumer)
        .query_async(conn)
        .await?;
    let counts = parse_counts(&v);
    for e in entries.iter_mut() {
        e.deliveries = counts.get(&e.id).copied();
    }
    Ok(())
}

/// The deliveries that already failed when an entry comes back with
/// counter `deliveries`, if that exhausts `max_deliveries`.
pub(crate) fn exhausted(deliveries: Option<u64>, max_deliveries: u32) -> Option<u64> {
    let before = deliveries?.checked_sub(1)?;
    (before >= u64::from(max_deliveries.max(1))).then_some(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_and_bound() {
        let row = |id: &str, n: i64| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::BulkString(b"c".to_vec()),
                Value::Int(5),
                Value::Int(n),
            ])
        };
        let v = Value::Array(vec![row("1-0", 2), row("2-1", 4), Value::Int(3)]);
        let c = parse_counts(&v);
        assert_eq!(
            (c.get("1-0"), c.get("2-1"), c.len()),
            (Some(&2), Some(&4), 2)
        );
        assert!(parse_counts(&Value::Nil).is_empty());
        assert_eq!(exhausted(Some(3), 3), None);
        assert_eq!(exhausted(Some(4), 3), Some(3));
        assert_eq!(exhausted(None, 3), None);
        assert_eq!(exhausted(Some(0), 1), None);
        assert!(order("10-2") > order("9-99"));
    }
}
