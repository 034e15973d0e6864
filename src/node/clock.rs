//! How far a clock is from its coordination Redis: `TIME` read over one
//! round trip, the offset taken at the round trip's midpoint (the NTP
//! estimate), with half the round trip as its uncertainty. The node
//! measures on every heartbeat and writes the result into its registry
//! record; the inspector compares it with the snowflake generator's
//! tolerance (`check`: `clock-skew`).

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One measurement of a clock against Redis `TIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Redis `TIME` minus this clock at the midpoint of the round trip, in
    /// microseconds (the NTP convention): positive when this clock is
    /// behind Redis, negative when it is ahead.
    pub offset_us: i64,
    /// The round trip of the measurement, microseconds; the true offset is
    /// within `rtt_us / 2` of `offset_us` (Redis answered some time during
    /// the round trip).
    pub rtt_us: u64,
    /// Unix ms on this clock when the measurement was taken.
    pub measured_at_ms: u64,
}

impl ClockOffset {
    /// The offset from a send time (unix µs on this clock), the round trip
    /// and the server's time (unix µs).
    pub fn from_round_trip(sent_unix_us: i64, rtt: Duration, server_unix_us: i64) -> Self {
        let rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let midpoint = sent_unix_us.saturating_add(i64::try_from(rtt_us / 2).unwrap_or(i64::MAX));
        Self {
            offset_us: server_unix_us.saturating_sub(midpoint),
            rtt_us,
            measured_at_ms: u64::try_from(sent_unix_us / 1000).unwrap_or(0),
        }
    }

    /// How far this clock is from Redis, whatever the direction.
    pub fn magnitude(&self) -> Duration {
        Duration::from_micros(self.offset_us.unsigned_abs())
    }

    /// Half the round trip: the measurement's uncertainty.
    pub fn uncertainty(&self) -> Duration {
        Duration::from_micros(self.rtt_us / 2)
    }

    /// `3.001 s ahead of Redis TIME (±200 µs)`, `400 µs behind Redis
    /// TIME (±1.2 ms)`: the direction in words.
    pub fn describe(&self) -> String {
        let dir = if self.offset_us > 0 {
            "behind"
        } else {
            "ahead of"
        };
        let abs = self.offset_us.unsigned_abs();
        let size = if abs < 1_000_000 {
            short_us(abs)
        } else {
            seconds(abs)
        };
        format!("{size} {dir} Redis TIME (±{})", short_us(self.rtt_us / 2))
    }
}

/// `3.001 s`, `0.012 s`: microseconds as seconds with ms precision.
fn seconds(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

/// `46 µs`, `1.2 ms`, `12 ms`, `1.5 s`.
fn short_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.1} ms", us as f64 / 1000.0),
        10_000..1_000_000 => format!("{} ms", us / 1000),
        _ => format!("{:.1} s", us as f64 / 1e6),
    }
}

/// Redis `TIME` (`[seconds, microseconds]`) as unix microseconds.
pub fn parse_time(reply: &redis::Value) -> Result<i64, String> {
    let parts: Vec<i64> = match reply {
        redis::Value::Array(items) => items
            .iter()
            .map(|v| redis::from_redis_value::<i64>(v.clone()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
        redis::Value::ServerError(e) => {
            return Err(format!("TIME: {} {}", e.code(), e.details().unwrap_or("")));
        }
        other => return Err(format!("TIME: unexpected reply {other:?}")),
    };
    match parts.as_slice() {
        [s, us] => Ok(s.saturating_mul(1_000_000).saturating_add(*us)),
        _ => Err(format!("TIME: expected 2 numbers, got {}", parts.len())),
    }
}

/// Measure this machine's clock against the Redis behind `conn` (one
/// `TIME`, one round trip).
pub async fn measure<C: ConnectionLike + Send>(conn: &mut C) -> redis::RedisResult<ClockOffset> {
    let sent = crate::clock::now_us();
    let started = Instant::now();
    let reply: redis::Value = redis::cmd("TIME").query_async(conn).await?;
    let rtt = started.elapsed();
    let server = parse_time(&reply)
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Parse, "clock", e)))?;
    Ok(ClockOffset::from_round_trip(sent, rtt, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_at_the_midpoint_of_the_round_trip() {
        // Sent at 1000.000000 s, answered 10 ms later; Redis said 1003.005.
        let c =
            ClockOffset::from_round_trip(1_000_000_000, Duration::from_millis(10), 1_003_005_000);
        assert_eq!(c.offset_us, 3_000_000);
        assert_eq!(c.rtt_us, 10_000);
        assert_eq!(c.uncertainty(), Duration::from_millis(5));
        assert_eq!(c.magnitude(), Duration::from_secs(3));
        assert_eq!(c.measured_at_ms, 1_000_000);
        assert_eq!(c.describe(), "3.000 s behind Redis TIME (±5.0 ms)");
        let ahead = ClockOffset::from_round_trip(1_000_000_000, Duration::ZERO, 998_500_000);
        assert_eq!(ahead.offset_us, -1_500_000);
        assert_eq!(ahead.describe(), "1.500 s ahead of Redis TIME (±0 µs)");
    }

    #[test]
    fn time_replies_parse_or_say_why_not() {
        use redis::Value;
        let ok = Value::Array(vec![
            Value::BulkString(b"1700000000".to_vec()),
            Value::BulkString(b"123456".to_vec()),
        ]);
        assert_eq!(parse_time(&ok), Ok(1_700_000_000_123_456));
        assert!(
            parse_time(&Value::Nil)
                .unwrap_err()
                .contains("unexpected reply")
        );
        let short = Value::Array(vec![Value::BulkString(b"1".to_vec())]);
        assert!(parse_time(&short).unwrap_err().contains("2 numbers"));
    }

    fn node(vars: &[(&str, &str)]) -> crate::node::shared::NodeShared {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = crate::config::Config::from_vars(&vars).unwrap();
        let version = crate::node::version::AppVersion::parse("1").unwrap();
        crate::node::shared::NodeShared::new("n".into(), "h".into(), "a".into(), version, config)
    }

    #[test]
    fn a_memory_only_node_says_n_a_and_a_redis_node_reports_its_offset() {
        let memory = node(&[]).status();
        assert_eq!(memory.clock, "n/a: no Redis configured, no shared clock");
        assert_eq!(memory.clock_offset, None);

        let n = node(&[("REDIS_URL", "redis://127.0.0.1:6379/4")]);
        assert_eq!(
            n.status().clock,
            "not measured yet (Redis TIME of REDIS_URL)"
        );
        let c = ClockOffset::from_round_trip(0, Duration::from_micros(400), -2_500_000);
        *n.clock.write() = Some(c);
        assert_eq!(n.status().clock, "2.500 s ahead of Redis TIME (±200 µs)");
        assert_eq!(n.registry_record().clock_offset, Some(c));
    }

    #[test]
    fn a_record_without_the_offset_still_reads() {
        // A record as a version without clock offsets writes it.
        let old = r#"{"node_id":"a","host":"h","http_addr":"127.0.0.1:1","pid":1,
            "app_version":"1","schema_version":null,"worker_id":null,"state":"running",
            "state_reason":"ready","started_at_ms":1,"heartbeat_at_ms":2,
            "config_fingerprint":"fp"}"#;
        let r: crate::node::registry::NodeRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.clock_offset, None);
    }
}
